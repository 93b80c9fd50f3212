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

Target ``sphcnn_activated_analysis`` (CPU and CUDA): the analysis with a prologue, a
block's magnitude nonlinearity and optionally the stride-2 spatial pooling of the
next block applied to the rings as they are read (csrc/include/sphcnn/activation.h):
  operands   maps (B..., p n, p n, S, C) complex (p = 2 when pooling, else 1),
             bias (S, C) and taps (n, 4) (empty without pooling) in the real
             dtype, then ring_scale and table as above;
  results    as the analysis;
  attributes those of the analysis, leaky_spin (int64, -1: none), pool (bool),
             epsilon and slope (float64).

Target ``sphcnn_activated_gradient`` (CPU and CUDA): its gradient, the transposed
analysis (a synthesis) with the transposed pooling and the nonlinearity's
derivative applied to each ring it writes:
  operands   ct (the coefficients' cotangent), then maps, bias, taps, ring_scale
             and table as above;
  results    ct_maps (the maps' shape and dtype), ct_bias (S, C) real, scratch;
  attributes those of sphcnn_activated_analysis.

Target ``sphcnn_affine_synthesis`` (CPU and CUDA): the synthesis of the
coefficients factor a + sqrt(4 pi) offset at a_00 (a batch norm's apply folded
into the synthesis that follows it; the factor scales the rings of each (spin,
channel), the offset enters the m = 0 ring of spin 0):
  operands   coefficients, factor (S, C) and offset (S, C) in the data's complex
             dtype, then ring_scale and table as above;
  results    as the synthesis; attributes those of the synthesis.

Targets are registered with ``jax.ffi.register_ffi_target`` the first time a
computation is lowered for that platform; ``_cuda`` is never imported on a
machine that does not lower for CUDA.
"""

from __future__ import annotations

import importlib

import jax
import numpy as np

from sphcnn_kernels.backends import cuda_runtime
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


def _scratch(module, plan: Plan, source: str, batch: int, channels: int, analysis: bool) -> int:
    """Bytes of the scratch result of a transform call of this geometry."""
    return module.scratch_bytes(analysis, plan.n, plan.ell_max, len(plan.spins), batch, channels,
                                plan.real_dtype == np.float64, LAMBDA_SOURCES[source])


def _contract_call(target: str, operands: tuple, results: tuple, scratch: int, *, plan: Plan, sign: int,
                   weighted: bool, layout: str, source: str, **attributes) -> list[jax.Array]:
    """One call of a target of the contract: operands, then ring_scale and the
    table; results (ShapeDtypeStructs), then the scratch; the transform
    attributes and `attributes`. Returns the results without the scratch."""
    table = plan.packed_table if source == "table" else np.zeros((0,), plan.real_dtype)
    call = jax.ffi.ffi_call(target, (*results, jax.ShapeDtypeStruct((scratch,), np.uint8)))
    *outs, _ = call(*operands, plan.ring_scale(weighted), table, spins=np.asarray(plan.spins, np.int64),
                    sign=np.int32(sign), degree_major=layout == "degree_major",
                    lambda_source=np.int32(LAMBDA_SOURCES[source]), **attributes)
    return outs


def _activation_attributes(plan: Plan, bias: jax.Array, taps: np.ndarray, leaky_spin: int, pool: bool,
                           epsilon: float, slope: float) -> tuple[tuple, dict]:
    """The fused boundary's operands after the maps (bias, taps in the real dtype) and attributes."""
    operands = (bias.astype(plan.real_dtype), np.asarray(taps, plan.real_dtype))
    return operands, dict(leaky_spin=np.int64(leaky_spin), pool=bool(pool), epsilon=np.float64(epsilon),
                          slope=np.float64(slope))


def _call(direction: str, operand: jax.Array, out_shape: tuple[int, ...], batch: int, channels: int, *,
          plan: Plan, sign: int, weighted: bool, layout: str, mode: str, platform: str) -> jax.Array:
    module = extension(platform)
    source = lambda_source(plan, mode, platform)
    (out,) = _contract_call(f"sphcnn_{direction}", (operand,), (jax.ShapeDtypeStruct(out_shape, plan.dtype),),
                            _scratch(module, plan, source, batch, channels, direction == "analysis"), plan=plan,
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


def activated_analysis(maps: jax.Array, bias: jax.Array, taps: np.ndarray, *, plan: Plan, sign: int, weighted: bool,
                       layout: str, mode: str, platform: str, leaky_spin: int, pool: bool, epsilon: float,
                       slope: float) -> jax.Array:
    """The analysis of the activated (and, with pool, pooled) maps in one call of
    sphcnn_activated_analysis; taps: the (n, 4) ring taps of the pooling (n the
    plan's grid), an empty array without pooling. CPU and CUDA."""
    module = extension(platform)
    source = lambda_source(plan, mode, platform)
    scratch = _scratch(module, plan, source, int(np.prod(maps.shape[:-4])), maps.shape[-1], True)
    extra, attributes = _activation_attributes(plan, bias, taps, leaky_spin, pool, epsilon, slope)
    out_shape = plan.spectral_shape(maps.shape[:-4], *maps.shape[-2:], layout)
    (out,) = _contract_call("sphcnn_activated_analysis", (maps, *extra), (jax.ShapeDtypeStruct(out_shape, plan.dtype),),
                            scratch, plan=plan, sign=sign, weighted=weighted, layout=layout, source=source,
                            **attributes)
    return out


def activated_gradient(ct: jax.Array, maps: jax.Array, bias: jax.Array, taps: np.ndarray, *, plan: Plan, sign: int,
                       weighted: bool, layout: str, mode: str, platform: str, leaky_spin: int, pool: bool,
                       epsilon: float, slope: float) -> tuple[jax.Array, jax.Array]:
    """(ct_maps, ct_bias), the gradient of activated_analysis with the same
    arguments for the cotangent ct of its coefficients, in one call of
    sphcnn_activated_gradient. CPU and CUDA."""
    module = extension(platform)
    source = lambda_source(plan, mode, platform)
    scratch = module.activated_gradient_scratch_bytes(plan.n, plan.ell_max, len(plan.spins),
                                                      int(np.prod(maps.shape[:-4])), maps.shape[-1],
                                                      plan.real_dtype == np.float64, LAMBDA_SOURCES[source], pool)
    extra, attributes = _activation_attributes(plan, bias, taps, leaky_spin, pool, epsilon, slope)
    results = (jax.ShapeDtypeStruct(maps.shape, maps.dtype), jax.ShapeDtypeStruct(bias.shape, plan.real_dtype))
    ct_maps, ct_bias = _contract_call("sphcnn_activated_gradient", (ct, maps, *extra), results, scratch, plan=plan,
                                      sign=sign, weighted=weighted, layout=layout, source=source, **attributes)
    return ct_maps, ct_bias


def affine_synthesis(a: jax.Array, factor: jax.Array, offset: jax.Array, *, plan: Plan, sign: int, weighted: bool,
                     layout: str, mode: str, platform: str) -> jax.Array:
    """The synthesis of factor a + sqrt(4 pi) offset at a_00 (factor, offset (S, C)
    complex) in one call of sphcnn_affine_synthesis. CPU and CUDA."""
    module = extension(platform)
    source = lambda_source(plan, mode, platform)
    leading = plan.spectral_batch(a.shape, layout)
    scratch = _scratch(module, plan, source, int(np.prod(leading)), a.shape[-1], False)
    result = jax.ShapeDtypeStruct(leading + plan.spatial_core_shape + a.shape[-2:], plan.dtype)
    (out,) = _contract_call("sphcnn_affine_synthesis", (a, factor.astype(plan.dtype), offset.astype(plan.dtype)),
                            (result,), scratch, plan=plan, sign=sign, weighted=weighted, layout=layout, source=source)
    return out


def mixing_analysis_scratch(plan: Plan, mode: str, batch: int, channels: int, out_spins: int,
                            out_channels: int) -> int | None:
    """Bytes of the scratch result of sphcnn_mixing_analysis (CUDA) for this
    geometry, or None where the target does not apply (lambda on the fly, more
    spins than one launch of the Legendre stage takes)."""
    module = extension("cuda")
    source = lambda_source(plan, mode, "cuda")
    return module.mixing_analysis_scratch_bytes(plan.n, plan.ell_max, len(plan.spins), batch, channels, out_spins,
                                                out_channels, plan.real_dtype == np.float64, LAMBDA_SOURCES[source])


def mixing_analysis(maps: jax.Array, bias: jax.Array, taps: np.ndarray, filters: jax.Array, *, plan: Plan,
                    sign: int, weighted: bool, layout: str, mode: str, platform: str, leaky_spin: int, pool: bool,
                    epsilon: float, slope: float, activate: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(b, a, energy) in one call of sphcnn_mixing_analysis (CUDA): a the analysis
    of the maps (activated and pooled as activated_analysis when activate; else
    bias and taps are empty), b[l, m, o, d] = sum_{i, c} a[l, m, i, c]
    filters[l, i, o, c, d] over |m| <= l, energy (batch..., S_out, C_out) the sum
    over (l, m) of |b|^2. The caller checks mixing_analysis_scratch is not None."""
    extension(platform)
    batch_shape = maps.shape[:-4]
    out_spins, out_channels = filters.shape[2], filters.shape[4]
    source = lambda_source(plan, mode, platform)
    scratch = mixing_analysis_scratch(plan, mode, int(np.prod(batch_shape)), maps.shape[-1], out_spins, out_channels)
    extra, attributes = _activation_attributes(plan, bias, taps, leaky_spin, pool, epsilon, slope)
    a_shape = plan.spectral_shape(batch_shape, *maps.shape[-2:], layout)
    results = (jax.ShapeDtypeStruct(a_shape[:-2] + (out_spins, out_channels), plan.dtype),
               jax.ShapeDtypeStruct(a_shape, plan.dtype),
               jax.ShapeDtypeStruct(batch_shape + (out_spins, out_channels), plan.real_dtype))
    b, a, energy = _contract_call("sphcnn_mixing_analysis", (maps, *extra, filters.astype(plan.dtype)), results,
                                  scratch, plan=plan, sign=sign, weighted=weighted, layout=layout, source=source,
                                  activate=bool(activate), **attributes)
    return b, a, energy


def mixing_gradient_scratch(plan: Plan, mode: str, batch: int, channels: int, pool: bool) -> int | None:
    """Bytes of the scratch result of sphcnn_mixing_gradient (CUDA), or None where
    the target does not apply (as mixing_analysis_scratch)."""
    module = extension("cuda")
    source = lambda_source(plan, mode, "cuda")
    return module.mixing_gradient_scratch_bytes(plan.n, plan.ell_max, len(plan.spins), batch, channels,
                                                plan.real_dtype == np.float64, LAMBDA_SOURCES[source], pool)


def mixing_gradient(ct_b: jax.Array, filters: jax.Array, maps: jax.Array, bias: jax.Array, taps: np.ndarray, *,
                    plan: Plan, sign: int, weighted: bool, layout: str, mode: str, platform: str, leaky_spin: int,
                    pool: bool, epsilon: float, slope: float) -> tuple[jax.Array, jax.Array]:
    """(ct_maps, ct_bias): activated_gradient for the cotangent ct_a[l, m, i, c] =
    sum_{o, d} ct_b[l, m, o, d] filters[l, i, o, c, d] of the analysis's
    coefficients, in one call of sphcnn_mixing_gradient (CUDA: the transposed
    product is the prologue of the Legendre stage of the synthesis). The caller checks
    mixing_gradient_scratch is not None."""
    extension(platform)
    source = lambda_source(plan, mode, platform)
    scratch = mixing_gradient_scratch(plan, mode, int(np.prod(maps.shape[:-4])), maps.shape[-1], pool)
    extra, attributes = _activation_attributes(plan, bias, taps, leaky_spin, pool, epsilon, slope)
    results = (jax.ShapeDtypeStruct(maps.shape, maps.dtype), jax.ShapeDtypeStruct(bias.shape, plan.real_dtype))
    ct_maps, ct_bias = _contract_call("sphcnn_mixing_gradient", (ct_b, filters.astype(plan.dtype), maps, *extra),
                                      results, scratch, plan=plan, sign=sign, weighted=weighted, layout=layout,
                                      source=source, **attributes)
    return ct_maps, ct_bias


def affine_gradient_scratch(plan: Plan, mode: str, batch: int, channels: int) -> int | None:
    """Bytes of the scratch result of sphcnn_affine_gradient (CUDA), or None where
    the target does not apply (lambda on the fly)."""
    module = extension("cuda")
    source = lambda_source(plan, mode, "cuda")
    return module.affine_gradient_scratch_bytes(plan.n, plan.ell_max, len(plan.spins), batch, channels,
                                                plan.real_dtype == np.float64, LAMBDA_SOURCES[source])


def affine_gradient(ct: jax.Array, a: jax.Array, factor: jax.Array, *, plan: Plan, sign: int, weighted: bool,
                    layout: str, mode: str, platform: str) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(ct_a, products, constant) in one call of sphcnn_affine_gradient (CUDA): u
    the analysis of the maps' cotangent ct with this sign and ring scale (the
    affine synthesis's transpose), ct_a = factor u, products = sum over (l, m) of
    u a and constant = u at l = 0, m = 0, both (batch..., S, C). The caller checks
    affine_gradient_scratch is not None."""
    extension(platform)
    batch_shape = ct.shape[:-4]
    source = lambda_source(plan, mode, platform)
    scratch = affine_gradient_scratch(plan, mode, int(np.prod(batch_shape)), ct.shape[-1])
    moments = jax.ShapeDtypeStruct(batch_shape + ct.shape[-2:], plan.dtype)
    results = (jax.ShapeDtypeStruct(a.shape, plan.dtype), moments, moments)
    ct_a, products, constant = _contract_call("sphcnn_affine_gradient", (ct, a, factor.astype(plan.dtype)), results,
                                              scratch, plan=plan, sign=sign, weighted=weighted, layout=layout,
                                              source=source)
    return ct_a, products, constant
