"""Rotations in the spectral domain against sampling the rotated function."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sphcnn_kernels as sk
from references import euler_matrix, euler_zyz, frames, random_coefficients, spherical_sylm


def random_angles(rng):
    return rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)


@pytest.mark.parametrize("spin", [0, 1, -2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotate_then_inverse_samples_rotated_function(spin, seed):
    # f'(theta, phi) = exp(-i s psi') f(theta', phi') with (phi', theta', psi') the
    # z-y-z Euler angles of R^-1 R_z(phi) R_y(theta); f evaluated with `spherical`.
    rng = np.random.default_rng(seed)
    n, ell_max = 16, 7
    a = random_coefficients(rng, (), ell_max, (spin,), 1)
    alpha, beta, gamma = random_angles(rng)
    rotated = sk.rotate(a, alpha, beta, gamma, [spin])
    got = np.asarray(sk.inverse(rotated, [spin]))[..., 0, 0]
    theta, phi = sk.equiangular_grid(n)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    moved = np.einsum("ij,...jk->...ik", euler_matrix(alpha, beta, gamma).T, frames(t, p))
    new_phi, new_theta, psi = euler_zyz(moved)
    values = np.einsum("...lm,lm->...", spherical_sylm(ell_max, spin, new_theta, np.mod(new_phi, 2 * np.pi)), a[..., 0, 0])
    np.testing.assert_allclose(got, np.exp(-1j * spin * psi) * values, atol=1e-12)


def test_composition_is_product_rotation():
    rng = np.random.default_rng(5)
    spins = (0, 1, -1)
    a = random_coefficients(rng, (2,), 9, spins, 2)
    first, second = random_angles(rng), random_angles(rng)
    twice = sk.rotate(sk.rotate(a, *first, spins), *second, spins)
    product = euler_zyz(euler_matrix(*second) @ euler_matrix(*first))
    np.testing.assert_allclose(np.asarray(twice), np.asarray(sk.rotate(a, *product, spins)), atol=1e-12)


def test_rotation_preserves_norm_and_inverts():
    rng = np.random.default_rng(6)
    spins = (2,)
    a = random_coefficients(rng, (), 11, spins, 3)
    angles = random_angles(rng)
    r = np.asarray(sk.rotate(a, *angles, spins))
    np.testing.assert_allclose(np.sum(np.abs(r) ** 2, axis=(0, 1)), np.sum(np.abs(a) ** 2, axis=(0, 1)), rtol=1e-13)
    alpha, beta, gamma = angles
    back = np.asarray(sk.rotate(r, -gamma, -beta, -alpha, spins))
    np.testing.assert_allclose(back, a, atol=1e-12)


def test_z_rotation_is_longitude_shift():
    # rotating by 2 pi k / n about z shifts the grid by k longitudes, exactly
    rng = np.random.default_rng(7)
    n, spins = 16, (0, 1)
    a = random_coefficients(rng, (), 7, spins, 2)
    f = np.asarray(sk.inverse(a, spins))
    shifted = np.asarray(sk.inverse(sk.rotate(a, 2 * np.pi * 3 / n, 0.0, 0.0, spins), spins))
    np.testing.assert_allclose(shifted, np.roll(f, 3, axis=1), atol=1e-13)


def test_traced_angles_jit_vmap_and_grad():
    rng = np.random.default_rng(8)
    a = jnp.asarray(random_coefficients(rng, (), 5, (0,), 1))
    angles = jnp.asarray([[0.1, 0.2, 0.3], [1.0, 2.0, 0.5]])
    batched = jax.jit(jax.vmap(lambda g: sk.rotate(a, g[0], g[1], g[2], [0])))(angles)
    for i in range(2):
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(sk.rotate(a, *map(float, angles[i]), [0])), atol=1e-13)
    # the l = 1, m = 0 coefficient of a rotated l = 1, m = 0 harmonic is cos(beta)
    y10 = jnp.zeros((2, 3, 1, 1), complex).at[1, 1, 0, 0].set(1.0)
    g = jax.grad(lambda b: jnp.real(sk.rotate(y10, 0.0, b, 0.0, [0])[1, 1, 0, 0]))(0.7)
    np.testing.assert_allclose(g, -np.sin(0.7), rtol=1e-12)


def test_bad_arguments():
    a = jnp.zeros((4, 7, 1, 1), complex)
    with pytest.raises(ValueError, match="'coeffs'"):
        sk.rotate(jnp.zeros((4, 6, 1, 1), complex), 0.0, 0.0, 0.0, [0])
    with pytest.raises(ValueError, match="'coeffs'"):
        sk.rotate(a, 0.0, 0.0, 0.0, [0, 1])
    with pytest.raises(ValueError, match="'beta'"):
        sk.rotate(a, 0.0, jnp.zeros(2), 0.0, [0])
    with pytest.raises(ValueError, match="'spins'"):
        sk.rotate(a, 0.0, 0.0, 0.0, [0.5])


@pytest.mark.parametrize("angle, message", [
    (float("nan"), r"'alpha' must be a finite angle \(radians\), got nan"),
    (float("inf"), r"'alpha' must be a finite angle"),
    (np.float32(-np.inf), r"'alpha' must be a finite angle"),
    ("0.3", r"'alpha' must be a real number \(radians\), got '0.3' \(str\)"),
    (None, r"'alpha' must be a real number"),
    (1j, r"'alpha' must be a real number"),
    (jnp.asarray(jnp.nan), r"'alpha' must be a finite angle"),
])
def test_concrete_angles_must_be_real_and_finite(angle, message):
    with pytest.raises(ValueError, match=message):
        sk.rotate(jnp.zeros((4, 7, 1, 1), complex), angle, 0.0, 0.0, [0])


def test_traced_angles_are_not_checked_but_must_be_scalars():
    a = jnp.asarray(np.random.default_rng(0).standard_normal((4, 7, 1, 1)) + 0j)
    out = jax.jit(lambda t: sk.rotate(a, t, 0.2, 0.3, [0]))(jnp.nan)
    assert np.all(np.isnan(np.asarray(out)[1:]))  # the documented cost of a NaN traced angle
    with pytest.raises(ValueError, match=r"'gamma' must be a scalar angle"):
        jax.jit(lambda t: sk.rotate(a, 0.0, 0.0, t, [0]))(jnp.zeros(3))


def test_spins_beyond_the_band_limit_are_rejected():
    with pytest.raises(ValueError, match=r"spins \(0, 5\) need coefficients up to ell_max >= 5.*holds ell_max = 3"):
        sk.rotate(jnp.zeros((4, 7, 2, 1), complex), 0.1, 0.2, 0.3, [0, 5])
