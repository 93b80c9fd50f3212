"""Placing values at static positions without scatter, gather or concatenate.

Layers write a few values into a larger array at positions known when the model
is built: a bias into some spins, an offset into the constant coefficient a_00.
Written as `.at[].add` these lower to scatters (and their gradients to gathers),
which on a GPU are separate kernels that break the fusion of the elementwise
work around them. Here the positions become NumPy 0/1 constants and the
placement a broadcast product, which XLA folds into the neighbouring
elementwise fusion; the gradient is the same product transposed (a reduction).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def spin_rows(values: jax.Array, positions: tuple[int, ...], total: int) -> jax.Array:
    """(total, C): row positions[k] holds values[k] (values (K, C)), every other row 0."""
    onehot = np.zeros((total, len(positions), 1), np.float32)
    onehot[list(positions), np.arange(len(positions)), 0] = 1.0
    return jnp.sum(jnp.asarray(onehot, values.real.dtype) * values[None], axis=1)


def spin_mask(position: int, total: int) -> np.ndarray:
    """(total, 1) bool, True on the spin axis at `position` (broadcasts over channels)."""
    return (np.arange(total) == position)[:, None]


def constant_coefficient(ell_max: int, spin: int | None, n_spins: int, ndim: int, degree_axis: int, dtype) -> np.ndarray:
    """sqrt(4 pi) at the constant coefficient (l = 0, m = 0) of one spin, 0 elsewhere,
    shaped to broadcast against coefficients of `ndim` axes whose degree axis is
    `degree_axis` (0: degree-major (L, batch..., 2L - 1, S, C); 1: batch-major
    (batch, L, 2L - 1, S, C)), orders on axis -3, spins on axis -2. A constant
    function c has a_00 = sqrt(4 pi) c; spin=None marks every spin."""
    shape = [1] * ndim
    shape[degree_axis], shape[-3], shape[-2] = ell_max + 1, 2 * ell_max + 1, n_spins
    constant = np.zeros(shape, dtype)
    index = [0] * ndim
    index[-3] = ell_max
    spins = range(n_spins) if spin is None else (spin,)
    for s in spins:
        index[-2] = s
        constant[tuple(index)] = math.sqrt(4 * math.pi)
    return constant
