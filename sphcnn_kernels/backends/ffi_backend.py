"""XLA FFI backend: one custom call per transform, with one contract on every
platform (the C++ kernels of ``_cpu`` on CPUs, the CUDA kernels of ``_cuda`` on
NVIDIA GPUs; csrc/include/sphcnn/contract.h).

Targets ``sphcnn_analysis`` and ``sphcnn_synthesis``:
  operands   input: maps (B..., n, n, S, C) for analysis (complex, or real when
             every spin is 0), coefficients in either layout for synthesis;
             ring_scale (n,) in the real dtype of the data; the plan's packed
             lambda table, or an empty array when the kernels generate lambda;
  results    output (coefficients or maps, complex), scratch (uint8, the size
             the module's ``scratch_bytes`` gives; the kernels' work space);
  attributes spins (int64[S]), sign (int32 enum, -1 or +1), degree_major (bool),
             lambda_source (int32 enum: 0 table, 1 on the fly).

The fused targets (activated analysis and its gradient, affine synthesis and
its gradient, mixing analysis and its gradient) take the same trailing
operands and attributes; each is described, and called, in its op
(:mod:`sphcnn_kernels.ops`), and the activation's operands and attributes
come from :func:`activation_attributes`.

Targets are registered with ``jax.ffi.register_ffi_target`` the first time a
computation is lowered for that platform; ``_cuda`` is never imported on a
machine that does not lower for CUDA.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.backends import cuda_runtime
from sphcnn_kernels.ops.device_varying import varying_axes
from sphcnn_kernels.plan import Plan

WRITES_DEGREE_MAJOR = True
_MODULES = {"cpu": "sphcnn_kernels._cpu", "cuda": "sphcnn_kernels._cuda"}
_FFI_PLATFORM = {"cpu": "cpu", "cuda": "CUDA"}
LAMBDA_SOURCES = {"table": 0, "onthefly": 1}
# mode="auto" on CUDA: the table while it is small enough.
TABLE_LIMIT_BYTES = 256 << 20
TABLE_LIMIT_ELL = 256
_registered: set[str] = set()


def extension(platform: str):
    """The kernel module of a platform, its FFI targets registered. On CUDA the
    first call also checks that the installed driver can run the module's CUDA
    runtime (RuntimeError naming both versions otherwise)."""
    module = importlib.import_module(_MODULES[platform])
    if platform not in _registered:
        if platform == "cuda":
            cuda_runtime.check_driver(module)
        for name, capsule in module.registrations().items():
            jax.ffi.register_ffi_target(name, capsule, platform=_FFI_PLATFORM[platform])
        _registered.add(platform)
    return module


def lambda_source(plan: Plan, mode: str, platform: str) -> str:
    """'table' or 'onthefly': mode, with 'auto' resolved for the platform (the CPU
    kernels generate lambda inside their schedule; the CUDA kernels read the table
    while it takes at most 256 MiB and ell_max < 256)."""
    if mode != "auto":
        return mode
    if platform == "cpu":
        return "onthefly"
    small = plan.packed_table_bytes <= TABLE_LIMIT_BYTES
    return "table" if plan.ell_max < TABLE_LIMIT_ELL and small else "onthefly"


def scratch_bytes(module, plan: Plan, source: str, batch: int, channels: int, analysis: bool) -> int:
    """Bytes of the scratch result of a transform call (or of a fused target
    with a transform's work space) of this geometry."""
    return module.scratch_bytes(analysis, plan.n, plan.ell_max, len(plan.spins), batch, channels,
                                plan.real_dtype == np.float64, LAMBDA_SOURCES[source])


def _varying_alike(operands: tuple) -> tuple:
    """Inside shard_map, the operands of one call marked as varying over the
    same mesh axes (a custom call takes operands of one type: the constants
    and replicated parameters vary over none, a batch shard over its axes)."""
    axes = [varying_axes(o) or frozenset() for o in operands]  # a NumPy constant varies over none
    union = frozenset().union(*axes)
    if not union:
        return operands
    return tuple(jax.lax.pcast(jnp.asarray(o), tuple(sorted(union - have)), to="varying") if union - have else o
                 for o, have in zip(operands, axes))


def contract_call(target: str, operands: tuple, results: tuple, scratch: int, *, plan: Plan, sign: int,
                   weighted: bool, layout: str, source: str, **attributes) -> list[jax.Array]:
    """One call of a target of the contract: operands, then ring_scale and the
    table; results (ShapeDtypeStructs), then the scratch; the transform
    attributes and `attributes`. Returns the results without the scratch."""
    table = plan.packed_table if source == "table" else np.zeros((0,), plan.real_dtype)
    call = jax.ffi.ffi_call(target, (*results, jax.ShapeDtypeStruct((scratch,), np.uint8)))
    *outs, _ = call(*_varying_alike((*operands, plan.ring_scale(weighted), table)),
                    spins=np.asarray(plan.spins, np.int64),
                    sign=np.int32(sign), degree_major=layout == "degree_major",
                    lambda_source=np.int32(LAMBDA_SOURCES[source]), **attributes)
    return outs


def activation_attributes(plan: Plan, bias: jax.Array, taps: np.ndarray, leaky_spin: int, pool: bool,
                           epsilon: float, slope: float) -> tuple[tuple, dict]:
    """The fused boundary's operands after the maps (bias, taps in the real dtype) and attributes."""
    operands = (bias.astype(plan.real_dtype), np.asarray(taps, plan.real_dtype))
    return operands, dict(leaky_spin=np.int64(leaky_spin), pool=bool(pool), epsilon=np.float64(epsilon),
                          slope=np.float64(slope))


def _call(direction: str, operand: jax.Array, out_shape: tuple[int, ...], batch: int, channels: int, *,
          plan: Plan, sign: int, weighted: bool, layout: str, mode: str, platform: str) -> jax.Array:
    module = extension(platform)
    source = lambda_source(plan, mode, platform)
    (out,) = contract_call(f"sphcnn_{direction}", (operand,), (jax.ShapeDtypeStruct(out_shape, plan.dtype),),
                            scratch_bytes(module, plan, source, batch, channels, direction == "analysis"), plan=plan,
                            sign=sign, weighted=weighted, layout=layout, source=source)
    return out


def analysis(x: jax.Array, *, plan: Plan, sign: int, weighted: bool, layout: str, mode: str, platform: str,
             **_) -> jax.Array:
    out_shape = plan.spectral_shape(x.shape[:-4], *x.shape[-2:], layout)
    return _call("analysis", x, out_shape, int(np.prod(x.shape[:-4])), x.shape[-1], plan=plan, sign=sign,
                 weighted=weighted, layout=layout, mode=mode, platform=platform)


def synthesis(a: jax.Array, *, plan: Plan, sign: int, weighted: bool, layout: str, mode: str, platform: str,
              **_) -> jax.Array:
    leading = plan.spectral_batch(a.shape, layout)
    out_shape = leading + plan.spatial_core_shape + a.shape[-2:]
    return _call("synthesis", a, out_shape, int(np.prod(leading)), a.shape[-1], plan=plan, sign=sign,
                 weighted=weighted, layout=layout, mode=mode, platform=platform)
