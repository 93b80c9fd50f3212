"""Triton kernels of the Legendre stage (called by :mod:`triton_backend`).

Both kernels work on real views of complex arrays. With B the flattened batch,
C the channels and R = 2 (real, imaginary part), a "map" p = (b, c, r) indexes
P = B * 2C independent columns; for one spin s and one order index mi every
kernel is a real matrix product over the table block T[s, mi] (L, n):

  analysis:  out[b, l, mi, s, q] = sum_j T[s, mi, l, j] scale_j f[b, j, mi, s, q]
             f (B, n, M, S, 2C) -> out (B, L, M, S, 2C)
  synthesis: out[b, j, mi, s, q] = scale_j sum_l T[s, mi, l, j] a[b, l, mi, s, q]
             a (B, L, M, S, 2C) -> out (B, n, M, S, 2C)

with q = 2c + r. The map columns of one (mi, s) are at offset
(p // 2C) * batch_stride + p % 2C + (mi * S + s) * 2C of a row, rows are
M * S * 2C elements apart. Rows l < lmin[s, mi] = max(|m|, |s|) of the table
are zero: analysis skips blocks of l entirely below lmin and writes exact zeros
there; synthesis starts its l-loop at lmin (coefficients below are never read).

One program per (block of l resp. j, block of maps, (s, mi)), flattened into a
1-D grid of cdiv(rows, BLOCK_ROWS) * cdiv(P, BLOCK_P) * S * M programs with the
row block varying fastest (neighbouring programs read the same input columns).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _program_coordinates(n_rows, n_maps, n_orders, BLOCK_ROWS: tl.constexpr, BLOCK_P: tl.constexpr):
    """(row block, map block, s * M + mi, s, mi) of this program."""
    pid = tl.program_id(0)
    row_blocks = tl.cdiv(n_rows, BLOCK_ROWS)
    map_blocks = tl.cdiv(n_maps, BLOCK_P)
    row_block = pid % row_blocks
    rest = pid // row_blocks
    map_block = rest % map_blocks
    spin_order = rest // map_blocks
    return row_block, map_block, spin_order, spin_order // n_orders, spin_order % n_orders


@triton.jit
def _map_block(map_block, n_maps, pair_width, BLOCK_P: tl.constexpr):
    """(batch index b as int64, q = 2c + r, mask) of the BLOCK_P maps of a block."""
    maps = map_block * BLOCK_P + tl.arange(0, BLOCK_P)
    return (maps // pair_width).to(tl.int64), maps % pair_width, maps < n_maps


@triton.jit
def legendre_analysis_kernel(
    f_ptr,
    table_ptr,
    scale_ptr,
    lmin_ptr,
    n_rings,
    n_degrees,
    n_orders,
    n_spins,
    pair_width,
    n_maps,
    in_batch_stride,
    out_batch_stride,
    out_ptr,
    BLOCK_L: tl.constexpr,
    BLOCK_J: tl.constexpr,
    BLOCK_P: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """out (B, L, M, S, 2C) = sum over rings j of T[s, mi, l, j] scale_j f (B, n, M, S, 2C).

    table (S, M, L, n), scale (n,), lmin (S, M) int32; all arrays contiguous.
    PRECISION: tl.dot input precision, "ieee" or "tf32".
    """
    l_block, map_block, spin_order, s, mi = _program_coordinates(n_degrees, n_maps, n_orders, BLOCK_L, BLOCK_P)
    lmin = tl.load(lmin_ptr + spin_order)
    row_stride = n_orders * n_spins * pair_width
    column = (mi * n_spins + s) * pair_width
    batch, pair, map_mask = _map_block(map_block, n_maps, pair_width, BLOCK_P)
    in_maps = batch * in_batch_stride + pair + column
    out_maps = batch * out_batch_stride + pair + column

    degrees = l_block * BLOCK_L + tl.arange(0, BLOCK_L)
    degree_mask = degrees < n_degrees
    table_rows = table_ptr + (spin_order.to(tl.int64) * n_degrees + degrees[:, None]) * n_rings
    acc = tl.zeros((BLOCK_L, BLOCK_P), dtype=out_ptr.dtype.element_ty)
    # Blocks entirely below lmin have a zero table: no ring loop.
    ring_stop = tl.where(l_block * BLOCK_L + BLOCK_L > lmin, n_rings, 0)
    for j0 in range(0, ring_stop, BLOCK_J):
        rings = j0 + tl.arange(0, BLOCK_J)
        ring_mask = rings < n_rings
        scale = tl.load(scale_ptr + rings, mask=ring_mask, other=0.0)
        t = tl.load(table_rows + rings[None, :], mask=degree_mask[:, None] & ring_mask[None, :], other=0.0)
        f = tl.load(
            f_ptr + in_maps[None, :] + rings[:, None].to(tl.int64) * row_stride,
            mask=ring_mask[:, None] & map_mask[None, :],
            other=0.0,
        )
        acc = tl.dot(t * scale[None, :], f, acc, input_precision=PRECISION, out_dtype=acc.dtype)
    acc = tl.where(degrees[:, None] >= lmin, acc, 0.0)

    tl.store(
        out_ptr + out_maps[None, :] + degrees[:, None].to(tl.int64) * row_stride,
        acc,
        mask=degree_mask[:, None] & map_mask[None, :],
    )


@triton.jit
def legendre_synthesis_kernel(
    a_ptr,
    table_ptr,
    scale_ptr,
    lmin_ptr,
    n_rings,
    n_degrees,
    n_orders,
    n_spins,
    pair_width,
    n_maps,
    in_batch_stride,
    out_batch_stride,
    out_ptr,
    BLOCK_J: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_P: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """out (B, n, M, S, 2C) = scale_j sum over l >= lmin of T[s, mi, l, j] a (B, L, M, S, 2C).

    table (S, M, L, n), scale (n,), lmin (S, M) int32; all arrays contiguous.
    PRECISION: tl.dot input precision, "ieee" or "tf32".
    """
    j_block, map_block, spin_order, s, mi = _program_coordinates(n_rings, n_maps, n_orders, BLOCK_J, BLOCK_P)
    lmin = tl.load(lmin_ptr + spin_order)
    row_stride = n_orders * n_spins * pair_width
    column = (mi * n_spins + s) * pair_width
    batch, pair, map_mask = _map_block(map_block, n_maps, pair_width, BLOCK_P)
    in_maps = batch * in_batch_stride + pair + column
    out_maps = batch * out_batch_stride + pair + column

    rings = j_block * BLOCK_J + tl.arange(0, BLOCK_J)
    ring_mask = rings < n_rings
    table_block = table_ptr + spin_order.to(tl.int64) * n_degrees * n_rings + rings[:, None]
    acc = tl.zeros((BLOCK_J, BLOCK_P), dtype=out_ptr.dtype.element_ty)
    for l0 in range(lmin, n_degrees, BLOCK_L):
        degrees = l0 + tl.arange(0, BLOCK_L)
        degree_mask = degrees < n_degrees
        # (BLOCK_J, BLOCK_L) block of the transposed table T[s, mi]^T.
        t = tl.load(table_block + degrees[None, :] * n_rings, mask=ring_mask[:, None] & degree_mask[None, :], other=0.0)
        a = tl.load(
            a_ptr + in_maps[None, :] + degrees[:, None].to(tl.int64) * row_stride,
            mask=degree_mask[:, None] & map_mask[None, :],
            other=0.0,
        )
        acc = tl.dot(t, a, acc, input_precision=PRECISION, out_dtype=acc.dtype)
    acc *= tl.load(scale_ptr + rings, mask=ring_mask, other=0.0)[:, None]

    tl.store(
        out_ptr + out_maps[None, :] + rings[:, None].to(tl.int64) * row_stride,
        acc,
        mask=ring_mask[:, None] & map_mask[None, :],
    )
