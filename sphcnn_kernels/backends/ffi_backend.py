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

Targets ``sphcnn_grid_analysis`` and ``sphcnn_grid_synthesis`` take the
same operands, results and attributes on the nlat x nlon rings of a quadrature
grid (``grids.equiangular``, ``gauss_legendre``, ``driscoll_healy``): maps
(B..., nlat, nlon, S, C), batch-major coefficients, ring_scale (nlat,), always
the empty table (lambda_source 1: on the fly), a scratch of the module's
``grid_scratch_bytes`` (0 on CPUs), and one
more operand after the table, ring_theta ((2, nlat) in the real dtype: each
ring's colatitude in radians as the sum of the two entries of its column,
:func:`ring_theta`), and one more attribute, mirrored (bool, :func:`mirrored`:
rings j and nlat - 1 - j are mirror images for every j < nlat / 2, their
colatitudes summing to pi within 1e-13, the north one above the equator; the
kernels then pair them as on the n x n grid: the CPU ones check it against
ring_theta, the CUDA ones, which cannot read ring_theta on the host, take it as
given); they require nlon >= 2 ell_max + 1 (:func:`grid_analysis`,
:func:`grid_synthesis`).

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

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.backends import cuda_runtime
from sphcnn_kernels.grid_transforms import ring_scale
from sphcnn_kernels.grids import Grid
from sphcnn_kernels.ops.device_varying import varying_axes
from sphcnn_kernels.plan import Plan

WRITES_DEGREE_MAJOR = True
_MODULES = {"cpu": "sphcnn_kernels._cpu", "cuda": "sphcnn_kernels._cuda"}
_FFI_PLATFORM = {"cpu": "cpu", "cuda": "CUDA"}
LAMBDA_SOURCES = {"table": 0, "onthefly": 1}
# mode="auto" on CUDA: the table while it is small enough.
TABLE_LIMIT_BYTES = 256 << 20
TABLE_LIMIT_ELL = 256
# Rings whose colatitudes sum to pi within this are mirror images (sphcnn/contract.h kMirrorTolerance).
MIRROR_TOLERANCE = 1e-13
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


def ring_call(target: str, operands: tuple, results: tuple, scratch: int, *, ring_scale: np.ndarray,
              table: np.ndarray, spins: tuple[int, ...], sign: int, layout: str, source: str, trailing: tuple = (),
              **attributes) -> list[jax.Array]:
    """One call of a target of the contract with its trailing operands given.

    Args:
        target: the FFI target's name.
        operands: the leading operands (arrays).
        results: the results before the scratch (ShapeDtypeStructs).
        scratch: bytes of the scratch result.
        ring_scale: the ring_scale operand (n_rings,), the data's real dtype.
        table: the packed lambda table, or an empty array of the real dtype.
        spins: the spins attribute.
        sign: the sign attribute, -1 or +1.
        layout: 'batch_major' or 'degree_major' (the degree_major attribute).
        source: 'table' or 'onthefly' (the lambda_source attribute).
        trailing: operands after the table (the grid targets' ring_theta).
        attributes: the target's further attributes.

    Returns:
        The results without the scratch.
    """
    call = jax.ffi.ffi_call(target, (*results, jax.ShapeDtypeStruct((scratch,), np.uint8)))
    *outs, _ = call(*_varying_alike((*operands, ring_scale, table, *trailing)), spins=np.asarray(spins, np.int64),
                    sign=np.int32(sign), degree_major=layout == "degree_major",
                    lambda_source=np.int32(LAMBDA_SOURCES[source]), **attributes)
    return outs


def contract_call(target: str, operands: tuple, results: tuple, scratch: int, *, plan: Plan, sign: int,
                   weighted: bool, layout: str, source: str, **attributes) -> list[jax.Array]:
    """One call of a target of the contract on the plan's grid: operands, then
    the plan's ring_scale and table; results (ShapeDtypeStructs), then the
    scratch; the transform attributes and `attributes`. Returns the results
    without the scratch."""
    table = plan.packed_table if source == "table" else np.zeros((0,), plan.real_dtype)
    return ring_call(target, operands, results, scratch, ring_scale=plan.ring_scale(weighted), table=table,
                     spins=plan.spins, sign=sign, layout=layout, source=source, **attributes)


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


@functools.lru_cache(maxsize=None)
def ring_theta(grid: Grid, dtype: str) -> np.ndarray:
    """The ring_theta operand of the grid targets: the float64 colatitudes as the
    sum of two values of the data's precision, so that complex64 data needs no
    float64 operand (which JAX narrows to float32 when jax_enable_x64 is off).

    Args:
        grid: the grid.
        dtype: 'complex64' or 'complex128'.

    Returns:
        Read-only (2, nlat) of the real dtype: row 0 the colatitudes rounded to
        it, row 1 what that rounding dropped (zeros for float64); radians.
    """
    real = np.finfo(dtype).dtype
    high = grid.theta.astype(real)
    out = np.stack([high, (grid.theta - high.astype(np.float64)).astype(real)])
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=None)
def mirrored(grid: Grid, dtype: str) -> bool:
    """The mirrored attribute of the grid targets: whether rings j and nlat - 1 - j
    are mirror images for every j < nlat / 2 (sphcnn/contract.h mirrored_rings),
    decided on the colatitudes the kernels read, those of :func:`ring_theta`
    summed in float64 and kept in [0, pi], so that it is what the CPU kernels
    find.

    Args:
        grid: the grid.
        dtype: 'complex64' or 'complex128'.

    Returns:
        True when theta_j + theta_{nlat-1-j} = pi within 1e-13 and theta_j < pi / 2
        for every j < nlat / 2 (so for nlat = 1).
    """
    parts = ring_theta(grid, dtype).astype(np.float64)
    theta = np.clip(parts[0] + parts[1], 0.0, np.pi)
    half = len(theta) // 2
    north, south = theta[:half], theta[::-1][:half]
    return bool(np.all(np.abs(north + south - np.pi) <= MIRROR_TOLERANCE) and np.all(north < 0.5 * np.pi))


def _grid_call(direction: str, operand: jax.Array, out_shape: tuple[int, ...], *, grid: Grid, ell_max: int,
               spins: tuple[int, ...], dtype: str, sign: int, weighted: bool, platform: str) -> jax.Array:
    module = extension(platform)
    maps_shape = operand.shape if direction == "analysis" else out_shape
    scratch = module.grid_scratch_bytes(direction == "analysis", *grid.shape, ell_max, len(spins),
                                        int(np.prod(maps_shape[:-4])), maps_shape[-1], dtype == "complex128")
    (out,) = ring_call(f"sphcnn_grid_{direction}", (operand,), (jax.ShapeDtypeStruct(out_shape, dtype),), scratch,
                       ring_scale=ring_scale(grid, weighted, dtype), table=np.zeros((0,), np.finfo(dtype).dtype),
                       spins=spins, sign=sign, layout="batch_major", source="onthefly",
                       trailing=(ring_theta(grid, dtype),), mirrored=mirrored(grid, dtype))
    return out


def grid_analysis(x: jax.Array, *, grid: Grid, ell_max: int, spins: tuple[int, ...], dtype: str, sign: int,
                  weighted: bool, platform: str, **_) -> jax.Array:
    """sphcnn_grid_analysis: :func:`sphcnn_kernels.grid_transforms.ring_analysis`
    in one call (CPU; requires nlon >= 2 ell_max + 1).

    Args:
        x: maps (..., nlat, nlon, S, C), complex, or real when every spin is 0.
        grid: their equiangular, gauss_legendre or driscoll_healy grid.
        ell_max: band limit of the result.
        spins: the spin of each entry of the spin axis.
        dtype: 'complex64' or 'complex128'.
        sign: -1 or +1.
        weighted: ring scale grid.weights / nlon if True, else 1.
        platform: the platform lowered for.

    Returns:
        Batch-major coefficients (..., ell_max + 1, 2 ell_max + 1, S, C) of dtype.
    """
    real = not jnp.iscomplexobj(x) and not any(spins)
    x = x.astype(np.finfo(dtype).dtype if real else dtype)
    out_shape = x.shape[:-4] + (ell_max + 1, 2 * ell_max + 1) + x.shape[-2:]
    return _grid_call("analysis", x, out_shape, grid=grid, ell_max=ell_max, spins=spins, dtype=dtype, sign=sign,
                      weighted=weighted, platform=platform)


def grid_synthesis(a: jax.Array, *, grid: Grid, ell_max: int, spins: tuple[int, ...], dtype: str, sign: int,
                   weighted: bool, platform: str, **_) -> jax.Array:
    """sphcnn_grid_synthesis: :func:`sphcnn_kernels.grid_transforms.ring_synthesis`
    in one call (CPU; requires nlon >= 2 ell_max + 1).

    Args:
        a: batch-major coefficients (..., ell_max + 1, 2 ell_max + 1, S, C).
        grid: the equiangular, gauss_legendre or driscoll_healy grid of the result.
        ell_max: band limit of a.
        spins: the spin of each entry of the spin axis.
        dtype: 'complex64' or 'complex128'.
        sign: -1 or +1.
        weighted: ring scale grid.weights / nlon if True, else 1.
        platform: the platform lowered for.

    Returns:
        Maps (..., nlat, nlon, S, C) of dtype.
    """
    out_shape = a.shape[:-4] + grid.shape + a.shape[-2:]
    return _grid_call("synthesis", a.astype(dtype), out_shape, grid=grid, ell_max=ell_max, spins=spins, dtype=dtype,
                      sign=sign, weighted=weighted, platform=platform)
