"""The longitude part of the transforms in plain JAX, shared by the backends whose
kernels do only the Legendre stage (XLA everywhere, FFI and Triton on GPUs).
The longitude axis is axis -3 of (..., n_lat, n_lon, S, C).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def longitude_dft(z: jax.Array, sign: int, n: int) -> jax.Array:
    """sum_k z_k exp(sign 2 pi i m k / n) along axis -3, for every bin m."""
    return jnp.fft.fft(z, axis=-3) if sign < 0 else jnp.fft.ifft(z, axis=-3) * n


def bins_to_orders(f: jax.Array, ell_max: int) -> jax.Array:
    """(..., n bins, S, C) -> (..., 2 ell_max + 1, S, C), orders m = -ell_max..ell_max."""
    n = f.shape[-3]
    return jnp.concatenate([f[..., n - ell_max :, :, :], f[..., : ell_max + 1, :, :]], axis=-3)


def orders_to_bins(g: jax.Array, n: int) -> jax.Array:
    """(..., 2 ell_max + 1, S, C) -> (..., n bins, S, C), zero outside |m| <= ell_max."""
    ell_max = (g.shape[-3] - 1) // 2
    zeros = jnp.zeros(g.shape[:-3] + (n - 2 * ell_max - 1,) + g.shape[-2:], g.dtype)
    return jnp.concatenate([g[..., ell_max:, :, :], zeros, g[..., :ell_max, :, :]], axis=-3)


def forward_rings(x: jax.Array, sign: int, ell_max: int) -> jax.Array:
    """Grid (..., n, n, S, C) -> Fourier rings (..., n, 2 ell_max + 1, S, C)."""
    return bins_to_orders(longitude_dft(x, sign, x.shape[-3]), ell_max)


def rings_to_grid(g: jax.Array, sign: int, n: int) -> jax.Array:
    """Fourier rings (..., n, 2 ell_max + 1, S, C) -> grid (..., n, n, S, C)."""
    return longitude_dft(orders_to_bins(g, n), sign, n)
