"""Pooling and readout for spatial features (batch, n, n, S, C).

spatial_pool: area-weighted mean over stride x stride cells (n -> n / stride);
  cheap but only approximately rotation-equivariant on a grid. Measured relative
  error of forward(pool(R f)) against rotate(forward(pool(f))) up to the band
  limit of the pooled grid, random rotations R, random band-limited f with a flat
  spectrum up to n/4 - 1 (asserted in tests/test_equivariance.py):
  MEASURED_LEVELS_PLACEHOLDER
spectral_pool: drop the degrees above (n/2)/2 - 1 and sample on the n/2 grid;
  exactly equivariant.
spherical_readout: rotation-invariant global features: the spherical mean of
  spin 0 and the spherical mean of |f| for every other spin.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import sphcnn_kernels as sk


def _check_spatial(func: str, x: jax.Array) -> int:
    if x.ndim != 5 or x.shape[1] != x.shape[2]:
        raise ValueError(f"{func}: input has shape {tuple(x.shape)}; expected (batch, n, n, n_spins, channels)")
    return x.shape[1]


def spatial_pool(x: jax.Array, stride: int = 2) -> jax.Array:
    """Mean over stride x stride cells weighted by the cell areas (quadrature
    weights of their rings): (batch, n, n, S, C) -> (batch, n/stride, n/stride, S, C)."""
    n = _check_spatial("spatial_pool", x)
    if not isinstance(stride, int) or stride < 1 or n % stride or (n // stride) % 2 or n // stride < 4:
        raise ValueError(
            f"spatial_pool: stride {stride!r} must divide n = {n} into an even grid of at least 4"
        )
    ring = jnp.asarray(sk.quadrature_weights(n), jnp.finfo(x.dtype).dtype).reshape(n // stride, stride)
    share = (ring / jnp.sum(ring, axis=1, keepdims=True)).astype(x.dtype)  # area share of each ring in its cell
    b, _, _, s, c = x.shape
    cells = x.reshape(b, n // stride, stride, n // stride, stride, s, c)
    return jnp.sum(cells * (share / stride)[None, :, :, None, None, None, None], axis=(2, 4))


def spectral_pool(x: jax.Array, spins, backend: str = "auto") -> jax.Array:
    """Band-limit to (n/2)/2 - 1 and resample on the n/2 grid (exactly equivariant)."""
    n = _check_spatial("spectral_pool", x)
    if n % 4:
        raise ValueError(f"spectral_pool: needs n divisible by 4, got {n}")
    a = sk.forward(x, spins, ell_max=n // 4 - 1, backend=backend)
    return sk.inverse(a, spins, n=n // 2, backend=backend)


def spherical_readout(x: jax.Array, spins) -> jax.Array:
    """Rotation-invariant features (batch, S, C), real: Re of the spherical mean
    for spin 0 (its l = 0 coefficient / sqrt(4 pi)) and the spherical mean of |f|
    for every other spin."""
    _check_spatial("spherical_readout", x)
    spins = tuple(spins)
    if x.shape[3] != len(spins):
        raise ValueError(f"spherical_readout: input has {x.shape[3]} spins, argument 'spins' names {len(spins)}")
    is_zero = jnp.asarray([s == 0 for s in spins])[None, None, None, :, None]
    values = jnp.where(is_zero, jnp.real(x), jnp.abs(x))
    return sk.spherical_mean(values)
