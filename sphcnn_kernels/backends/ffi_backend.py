"""XLA FFI backend: the C++ kernels on CPU and the CUDA kernels on NVIDIA GPUs.

CPU: one fused custom call per transform (longitude FFT + Legendre stage).
CUDA: the longitude FFT is jnp.fft (cuFFT through XLA) and the custom call is the
Legendre stage, with lambda read from a device table or generated in the kernel.

Targets are registered with ``jax.ffi.register_ffi_target`` the first time a
computation is lowered for that platform; ``_cuda`` is never imported on a
machine that does not lower for CUDA.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.backends.fourier import forward_rings, rings_to_grid
from sphcnn_kernels.plan import Plan

_EXTENSION = {"cpu": "sphcnn_kernels._cpu", "cuda": "sphcnn_kernels._cuda"}
# Platforms whose kernels read and write degree-major coefficients themselves.
DEGREE_MAJOR_PLATFORMS = ("cpu",)
_FFI_PLATFORM = {"cpu": "cpu", "cuda": "CUDA"}
_registered: set[str] = set()

# The CUDA kernels' lambda source (attribute `mode`).
_CUDA_MODES = {"table": 1, "onthefly": 2}
_TABLE_LIMIT_BYTES = 256 << 20
_TABLE_LIMIT_ELL = 256


def _register(platform: str) -> None:
    if platform in _registered:
        return
    module = importlib.import_module(_EXTENSION[platform])
    for name, capsule in module.registrations().items():
        jax.ffi.register_ffi_target(name, capsule, platform=_FFI_PLATFORM[platform])
    _registered.add(platform)


def cuda_mode(plan: Plan) -> str:
    """'table' or 'onthefly' for the CUDA kernels ('auto' resolved by table size)."""
    if plan.mode != "auto":
        return plan.mode
    table_bytes = len(plan.spins) * (2 * plan.ell_max + 1) * (plan.n // 2) * (plan.ell_max + 1)
    table_bytes *= plan.real_dtype.itemsize
    return "table" if plan.ell_max < _TABLE_LIMIT_ELL and table_bytes <= _TABLE_LIMIT_BYTES else "onthefly"


def _attributes(plan: Plan) -> dict:
    return {"spins": np.asarray(plan.spins, dtype=np.int64)}


def _cpu_call(kind: str, operand: jax.Array, out_shape, plan: Plan, sign: int, weighted: bool) -> jax.Array:
    """The fused C++ kernel (longitude FFT + Legendre stage)."""
    _register("cpu")
    scale = jnp.asarray(plan.ring_scale(weighted), dtype=plan.real_dtype)
    call = jax.ffi.ffi_call(f"sphcnn_{kind}", jax.ShapeDtypeStruct(out_shape, operand.dtype))
    degree_major = np.int64(plan.layout == "degree_major")
    return call(operand, scale, sign=np.int64(sign), degree_major=degree_major, **_attributes(plan))


def _cuda_legendre(kind: str, operand: jax.Array, out_shape, plan: Plan, weighted: bool) -> jax.Array:
    """The CUDA Legendre stage between (..., n, 2 ell_max + 1, S, C) Fourier rings
    and (..., ell_max + 1, 2 ell_max + 1, S, C) coefficients."""
    _register("cuda")
    scale = jnp.asarray(plan.ring_scale(weighted), dtype=plan.real_dtype)
    call = jax.ffi.ffi_call(f"sphcnn_legendre_{kind}_cuda", jax.ShapeDtypeStruct(out_shape, operand.dtype))
    return call(operand, scale, mode=np.int64(_CUDA_MODES[cuda_mode(plan)]), **_attributes(plan))


def analysis(x: jax.Array, *, plan: Plan, sign: int, weighted: bool, platform: str) -> jax.Array:
    out_shape = plan.spectral_shape(x.shape[:-4], *x.shape[-2:])
    if platform == "cpu":
        return _cpu_call("analysis", x, out_shape, plan, sign, weighted)
    return _cuda_legendre("analysis", forward_rings(x, sign, plan.ell_max), out_shape, plan, weighted)


def synthesis(a: jax.Array, *, plan: Plan, sign: int, weighted: bool, platform: str) -> jax.Array:
    out_shape = plan.spectral_batch(a.shape) + plan.spatial_core_shape + a.shape[-2:]
    if platform == "cpu":
        return _cpu_call("synthesis", a, out_shape, plan, sign, weighted)
    rings = a.shape[:-4] + (plan.n, 2 * plan.ell_max + 1) + a.shape[-2:]
    g = _cuda_legendre("synthesis", a, rings, plan, weighted)
    return rings_to_grid(g, sign, plan.n)
