"""Grid, quadrature and spherical mean."""

import jax.numpy as jnp
import numpy as np
import pytest

import sphcnn_kernels as sk
from references import spherical_sylm


@pytest.mark.parametrize("n", [4, 6, 8, 32, 64])
def test_grid_points(n):
    theta, phi = sk.equiangular_grid(n)
    np.testing.assert_allclose(theta, np.pi * np.arange(n) / (n - 1), rtol=0, atol=0)
    np.testing.assert_allclose(phi, 2 * np.pi * np.arange(n) / n, rtol=0, atol=0)
    assert theta[0] == 0.0 and theta[-1] == np.pi


@pytest.mark.parametrize("n", [4, 6, 8, 10, 32, 64, 256])
def test_weights_positive_symmetric_sum_to_4pi(n):
    w = sk.quadrature_weights(n)
    assert w.shape == (n,) and w.dtype == np.float64
    assert np.all(w > 0)
    np.testing.assert_array_equal(w, w[::-1])
    np.testing.assert_allclose(w.sum(), 4 * np.pi, rtol=1e-14)


@pytest.mark.parametrize("n", [4, 8, 16, 64])
def test_weights_exact_for_cosines(n):
    # int_0^pi cos(k t) sin(t) dt = 2 / (1 - k^2) for even k, 0 for odd k; the grid
    # integrates every k <= n - 1 exactly.
    theta, _ = sk.equiangular_grid(n)
    w = sk.quadrature_weights(n) / (2 * np.pi)
    for k in range(n):
        exact = 2.0 / (1.0 - k * k) if k % 2 == 0 else 0.0
        assert abs(w @ np.cos(k * theta) - exact) < 1e-14


@pytest.mark.parametrize("n,spin", [(8, 0), (12, 1), (16, -2)])
def test_quadrature_orthonormality_of_harmonics(n, spin):
    # sum over the grid of sY_lm conj(sY_l'm') = delta: products of band-limited
    # harmonics are integrated exactly.
    ell_max = n // 2 - 1
    theta, phi = sk.equiangular_grid(n)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    y = spherical_sylm(ell_max, spin, t, p).reshape(n, n, -1)  # (n, n, L*M)
    keep = np.abs(y).max(axis=(0, 1)) > 0
    y = y[..., keep]
    w = sk.quadrature_weights(n) / n
    gram = np.einsum("j,jka,jkb->ab", w, y, np.conj(y))
    np.testing.assert_allclose(gram, np.eye(y.shape[-1]), atol=1e-13)


def test_spherical_mean_of_band_limited_function():
    # mean of Y_00 * c + (higher harmonics) = c / sqrt(4 pi), for real and complex
    n = 16
    theta, phi = sk.equiangular_grid(n)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    y = spherical_sylm(7, 0, t, p)
    f = 3.0 * y[..., 0, 7] + (1 - 2j) * y[..., 5, 9] + 0.5 * y[..., 7, 0]
    x = f[None, :, :, None, None] * np.array([1.0, -2.0])[None, None, None, None, :]
    got = np.asarray(sk.spherical_mean(jnp.asarray(x)))
    np.testing.assert_allclose(got, (3.0 / np.sqrt(4 * np.pi)) * np.array([[[1.0, -2.0]]]), atol=1e-14)
    real = np.asarray(sk.spherical_mean(jnp.asarray(np.ones((2, n, n, 1, 3), np.float32))))
    np.testing.assert_allclose(real, np.ones((2, 1, 3)), rtol=1e-6)


@pytest.mark.parametrize("bad", [3, 5, 2, 0, -4, 7.0, "8", True])
def test_bad_grid_size(bad):
    with pytest.raises(ValueError, match="'n'"):
        sk.quadrature_weights(bad)
    with pytest.raises(ValueError, match="'n'"):
        sk.equiangular_grid(bad)


def test_spherical_mean_bad_input():
    with pytest.raises(ValueError, match="'x'"):
        sk.spherical_mean(jnp.ones((8, 6, 1, 1)))
    with pytest.raises(ValueError, match="'x'"):
        sk.spherical_mean(jnp.ones((8, 8, 1)))
    with pytest.raises(ValueError, match="dtype"):
        sk.spherical_mean(jnp.ones((8, 8, 1, 1), jnp.int32))
