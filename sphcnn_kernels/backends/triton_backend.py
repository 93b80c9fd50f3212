"""Triton backend (NVIDIA GPUs): the longitude FFT is jnp.fft (cuFFT through XLA),
as in the CUDA path of the FFI backend, and the Legendre stage is one Triton
kernel per direction (:mod:`triton_kernels`) called through jax-triton.

The complex operand is viewed as real with a trailing (re, im) axis and its
leading axes are flattened, so the kernel sees (B, rows, M, S, 2C) arrays and
contracts the rows with the lambda table for every (spin, order) pair. The table
(S, M, L, n) is the plan's dense table, embedded as a constant, as in the XLA
backend. ``jax_triton`` (and with it the kernels) is imported only when a
computation is lowered for a CUDA device. Writes batch-major coefficients only;
never chosen by backend="auto" (measured slower than xla, see
:mod:`sphcnn_kernels.auto`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.backends.fourier import forward_rings, rings_to_grid
from sphcnn_kernels.plan import Plan

NUM_WARPS = 4
WRITES_DEGREE_MAJOR = False


class Blocks(NamedTuple):
    """Tile sizes of one kernel launch: output rows (l for analysis, j for
    synthesis), contracted rows per loop step, maps (columns)."""

    rows: int
    contracted: int
    maps: int


def _tile(size: int, largest: int) -> int:
    """The power of two >= size, between 16 (tl.dot's smallest) and largest."""
    return min(largest, max(16, 1 << max(0, size - 1).bit_length()))


def block_sizes(rows: int, contracted: int, maps: int, real_dtype: np.dtype) -> Blocks:
    """Tiles for an output of `rows` x `maps` contracted over `contracted` rows:
    up to 64 x 64 (32 x 64 in float64) output tiles, 32-row steps."""
    wide = np.dtype(real_dtype).itemsize == 4
    return Blocks(_tile(rows, 64 if wide else 32), _tile(contracted, 32), _tile(maps, 64))


def dot_precision(plan: Plan, precision: str) -> str:
    """tl.dot input precision: TF32 only for precision='fast' in float32."""
    return "tf32" if precision == "fast" and plan.real_dtype == np.float32 else "ieee"


def lowest_degrees(plan: Plan) -> np.ndarray:
    """int32 (S, M): max(|m|, |s|), the first degree with a nonzero table row."""
    orders = np.abs(np.arange(-plan.ell_max, plan.ell_max + 1))
    return np.maximum(orders[None, :], np.abs(np.asarray(plan.spins))[:, None]).astype(np.int32)


def _legendre(kind: str, z: jax.Array, rows_out: int, plan: Plan, weighted: bool, precision: str) -> jax.Array:
    """The Legendre stage on complex z (..., rows_in, M, S, C) -> (..., rows_out, M, S, C);
    `kind` is 'analysis' (rows n -> L) or 'synthesis' (rows L -> n)."""
    import jax_triton

    from sphcnn_kernels.backends import triton_kernels

    *batch, rows_in, n_orders, n_spins, channels = z.shape
    out_shape = (*batch, rows_out, n_orders, n_spins, channels)
    n_batch = math.prod(batch)
    pair_width = 2 * channels
    n_maps = n_batch * pair_width
    if n_maps == 0:
        return jnp.zeros(out_shape, z.dtype)

    real_dtype = plan.real_dtype
    pairs = jnp.stack([z.real, z.imag], axis=-1).reshape(n_batch, rows_in, n_orders, n_spins, pair_width)
    n_degrees = plan.ell_max + 1
    if kind == "analysis":
        kernel = triton_kernels.legendre_analysis_kernel
        blocks = block_sizes(n_degrees, plan.n, n_maps, real_dtype)
        tiles = {"BLOCK_L": blocks.rows, "BLOCK_J": blocks.contracted}
    else:
        kernel = triton_kernels.legendre_synthesis_kernel
        blocks = block_sizes(plan.n, n_degrees, n_maps, real_dtype)
        tiles = {"BLOCK_J": blocks.rows, "BLOCK_L": blocks.contracted}
    row_size = n_orders * n_spins * pair_width
    grid = math.ceil(rows_out / blocks.rows) * math.ceil(n_maps / blocks.maps) * n_spins * n_orders

    out = jax_triton.triton_call(
        pairs,
        jnp.asarray(plan.dense_table),
        jnp.asarray(plan.ring_scale(weighted)),
        jnp.asarray(lowest_degrees(plan)),
        plan.n,
        n_degrees,
        n_orders,
        n_spins,
        pair_width,
        n_maps,
        rows_in * row_size,
        rows_out * row_size,
        kernel=kernel,
        out_shape=jax.ShapeDtypeStruct((n_batch, rows_out, n_orders, n_spins, pair_width), real_dtype),
        grid=(grid,),
        num_warps=NUM_WARPS,
        BLOCK_P=blocks.maps,
        PRECISION=dot_precision(plan, precision),
        **tiles,
    )
    out = out.reshape(*out_shape, 2)
    return jax.lax.complex(out[..., 0], out[..., 1])


def analysis(x: jax.Array, *, plan: Plan, sign: int, weighted: bool, precision: str, **_) -> jax.Array:
    """Grid (..., n, n, S, C) -> coefficients (..., L, M, S, C): FFT, then the kernel
    (ring weights applied by the kernel as its scale)."""
    rings = forward_rings(x.astype(plan.dtype), sign, plan.ell_max)
    return _legendre("analysis", rings, plan.ell_max + 1, plan, weighted, precision)


def synthesis(a: jax.Array, *, plan: Plan, sign: int, weighted: bool, precision: str, **_) -> jax.Array:
    """Coefficients (..., L, M, S, C) -> grid (..., n, n, S, C): the kernel, then the FFT."""
    return rings_to_grid(_legendre("synthesis", a, plan.n, plan, weighted, precision), sign, plan.n)
