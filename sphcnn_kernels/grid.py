"""The sampling grid and its exact quadrature.

Grid: n x n equiangular points including both poles (Huffenberger & Wandelt,
ApJS 189, 255, 2010): colatitude theta_j = pi j / (n - 1), longitude
phi_k = 2 pi k / n, for j, k = 0 .. n - 1, n even; band limit ell_max = n/2 - 1.

Quadrature: Clenshaw-Curtis weights in theta (exact for cos(k theta) sin(theta),
k <= n - 1) times the trapezoid rule in phi (exact for |m| <= n - 1). The product
of two functions band-limited to ell_max = n/2 - 1 has, for each order m, an even
trigonometric polynomial of degree <= n - 2 in theta and orders |m| <= n - 2 in
phi, so the quadrature integrates it exactly: the forward transform is exact for
band-limited functions.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.validation import grid_size


def equiangular_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Colatitudes and longitudes of the n x n grid.

    Args:
        n: grid size, even, >= 4.

    Returns:
        (theta, phi), float64 arrays of shape (n,) in radians: theta_j = pi j /
        (n - 1) (both poles included), phi_k = 2 pi k / n.

    Raises:
        ValueError: n is not an even integer >= 4.
    """
    n = grid_size("equiangular_grid", "n", n)
    theta = np.pi * np.arange(n) / (n - 1)
    phi = 2.0 * np.pi * np.arange(n) / n
    return theta, phi


@functools.lru_cache(maxsize=None)
def _ring_weights(n: int) -> np.ndarray:
    # Clenshaw-Curtis weights for int_{-1}^{1} g(x) dx at x_j = cos(pi j / N), N = n - 1
    # (e.g. Waldvogel, BIT 46, 195, 2006), times 2 pi for the longitude integral.
    big_n = n - 1
    j = np.arange(n)
    k = np.arange(1, big_n // 2 + 1)
    b = np.where(2 * k == big_n, 1.0, 2.0)
    c = np.where((j == 0) | (j == big_n), 1.0, 2.0)
    w = c / big_n * (1.0 - (b / (4.0 * k * k - 1.0)) @ np.cos(2.0 * np.pi * np.outer(k, j) / big_n))
    w = np.pi * (w + w[::-1])  # 2 pi times w, made exactly symmetric (theta <-> pi - theta)
    w.setflags(write=False)
    return w


def quadrature_weights(n: int) -> np.ndarray:
    """Per-ring quadrature weights of the n x n grid.

    ``integral of f over the sphere = sum_j q_j * mean_k f(theta_j, phi_k)``,
    exactly for f band-limited to degree n - 2 (e.g. the product of two functions
    band-limited to n/2 - 1).

    Args:
        n: grid size, even, >= 4.

    Returns:
        q, float64 of shape (n,): positive, summing to 4 pi (steradians).

    Raises:
        ValueError: n is not an even integer >= 4.
    """
    n = grid_size("quadrature_weights", "n", n)
    return _ring_weights(n).copy()


def spherical_mean(x: jax.Array) -> jax.Array:
    """Mean over the sphere of spatial maps, with the exact quadrature.

    Args:
        x: (..., n, n, n_spins, n_channels), real or complex, on the equiangular
            grid.

    Returns:
        (..., n_spins, n_channels): (1 / 4 pi) * integral of x over the sphere,
        in x's precision.

    Raises:
        ValueError: x is not a float or complex array of that shape.
    """
    x = jnp.asarray(x)
    if x.ndim < 4 or x.shape[-4] != x.shape[-3]:
        raise ValueError(
            f"spherical_mean: argument 'x' has shape {x.shape}; expected (..., n, n, n_spins, n_channels)"
        )
    n = grid_size("spherical_mean", "x.shape[-4]", x.shape[-4])
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        raise ValueError(f"spherical_mean: argument 'x' must be a float or complex array, got dtype {x.dtype}")
    weights = jnp.asarray(_ring_weights(n) / (4.0 * np.pi * n), dtype=jnp.finfo(x.dtype).dtype)
    return jnp.sum(x * weights[:, None, None, None], axis=(-4, -3))
