"""Spin-weighted spherical harmonics from the C++ recurrence against `spherical`
and scipy, at random points."""

import numpy as np
import pytest
from scipy.special import sph_harm_y

import sphcnn_kernels as sk
from references import spherical_sylm


@pytest.mark.parametrize("spin", [-3, -2, -1, 0, 1, 2, 3])
def test_agree_with_spherical_at_random_points(spin):
    rng = np.random.default_rng(10 + spin)
    theta = np.concatenate([rng.uniform(0, np.pi, 200), [0.0, np.pi, 1e-9, np.pi - 1e-9]])
    phi = rng.uniform(0, 2 * np.pi, theta.size)
    ours = sk.spin_spherical_harmonics(24, spin, theta, phi)
    np.testing.assert_allclose(ours, spherical_sylm(24, spin, theta, phi), atol=1e-12)


def test_spin_zero_is_scipy_condon_shortley():
    rng = np.random.default_rng(3)
    theta, phi = rng.uniform(0, np.pi, 50), rng.uniform(0, 2 * np.pi, 50)
    ours = sk.spin_spherical_harmonics(10, 0, theta, phi)
    for ell in range(11):
        for m in range(-ell, ell + 1):
            np.testing.assert_allclose(ours[:, ell, 10 + m], sph_harm_y(ell, m, theta, phi), atol=1e-13)


def test_high_degree_near_pole_agrees_with_spherical():
    # Near the poles and at large |m| the start values underflow double precision;
    # the scaled recurrence must still give the right (tiny or not) values.
    theta = np.array([1e-3, 0.02, 0.3, np.pi - 0.02])
    phi = np.zeros_like(theta)
    for spin in (0, 2):
        ours = sk.spin_spherical_harmonics(300, spin, theta, phi)
        np.testing.assert_allclose(ours, spherical_sylm(300, spin, theta, phi), atol=5e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="'theta'"):
        sk.spin_spherical_harmonics(4, 0, np.array([4.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="same shape"):
        sk.spin_spherical_harmonics(4, 0, np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match=r"'spin' must be an integer, got 0.5"):
        sk.spin_spherical_harmonics(4, 0.5, np.zeros(3), np.zeros(3))
