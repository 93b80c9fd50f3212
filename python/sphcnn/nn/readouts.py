"""Readouts: rotation-invariant features of spatial maps (batch..., n, n, S, C)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import sphcnn_kernels as sk
from sphcnn.nn.pooling import check_spatial


def spherical_readout(x: jax.Array, spins) -> jax.Array:
    """Rotation-invariant features (batch..., S, C), real: Re of the spherical mean
    for spin 0 (its l = 0 coefficient / sqrt(4 pi)) and the spherical mean of |f|
    for every other spin.

    Args:
      x: spatial maps (batch..., n, n, S, C) on the equiangular grid, real or
        complex.
      spins: the spin of each entry of the spin axis (S of them).

    Returns:
      (batch..., S, C), the real dtype of x (float32 for complex64 x).

    Raises:
      ValueError: if x is not (batch..., n, n, S, C) or spins does not name S
        spins.
    """
    check_spatial("spherical_readout", x)
    spins = tuple(spins)
    if x.shape[-2] != len(spins):
        raise ValueError(f"spherical_readout: input has {x.shape[-2]} spins, argument 'spins' names {len(spins)}")
    is_zero = jnp.asarray([s == 0 for s in spins])[:, None]
    values = jnp.where(is_zero, jnp.real(x), jnp.abs(x))
    return sk.spherical_mean(values)


def invariant_magnitudes(x: jax.Array, spins) -> jax.Array:
    """Rotation-invariant features (batch..., S C), real, spin-major (index s C + c):
    |spherical mean| for spin 0 (the modulus of a complex mean, invariant under
    rotation) and the spherical mean of |f| for every other spin. The per-atom
    features of the Scaling Spherical CNNs QM9 models (google-research/
    spherical-cnn, molecules/models.py, _spin_mean_real).

    Args:
      x: spatial maps (batch..., n, n, S, C) on the equiangular grid, real or
        complex.
      spins: the spin of each entry of the spin axis (S of them).

    Returns:
      (batch..., S C), the real dtype of x (float32 for complex64 x).

    Raises:
      ValueError: if x is not (batch..., n, n, S, C) or spins does not name S
        spins.
    """
    check_spatial("invariant_magnitudes", x)
    spins = tuple(spins)
    if x.shape[-2] != len(spins):
        raise ValueError(f"invariant_magnitudes: input has {x.shape[-2]} spins, argument 'spins' names {len(spins)}")
    is_zero = jnp.asarray([s == 0 for s in spins])[:, None]
    means = sk.spherical_mean(jnp.where(is_zero, x, jnp.abs(x).astype(x.dtype)))
    features = jnp.abs(means)
    return features.reshape(features.shape[:-2] + (-1,))
