"""Sampling grids: geometry against s2fft and healpy, quadrature exactness, band
limits, hashing and argument checks."""

import copy
import dataclasses

import numpy as np
import pytest

import sphcnn_kernels as sk
from sphcnn_kernels import grids


def test_equiangular_n_by_n_is_the_transform_grid():
    for n in (4, 8, 64):
        g = grids.equiangular(n, n)
        theta, phi = sk.equiangular_grid(n)
        np.testing.assert_array_equal(g.theta, theta)
        np.testing.assert_allclose(g.coordinates()[1][0], phi, rtol=0, atol=1e-15)
        np.testing.assert_allclose(g.weights, sk.quadrature_weights(n), rtol=1e-14, atol=0)
        assert g.exact_ell_max == n // 2 - 1 and g.shape == (n, n)


@pytest.mark.parametrize("L", [1, 2, 5, 8])
def test_s2fft_samplings(L):
    s2_samples = pytest.importorskip("s2fft.sampling.s2_samples")
    for sampling, g in (("dh", grids.driscoll_healy(L)), ("mw", grids.mw(L)), ("mwss", grids.mwss(L)),
                        ("gl", grids.gauss_legendre(L, 2 * L - 1))):
        assert g.shape == tuple(s2_samples.f_shape(L, sampling)), sampling
        np.testing.assert_allclose(g.theta, s2_samples.thetas(L, sampling), rtol=0, atol=1e-14, err_msg=sampling)
        np.testing.assert_allclose(g.coordinates()[1][0], s2_samples.phis_equiang(L, sampling), rtol=0,
                                   atol=1e-14, err_msg=sampling)


@pytest.mark.parametrize("nside", [1, 2, 8])
def test_healpix_matches_healpy_ring_ordering(nside):
    hp = pytest.importorskip("healpy")
    g = grids.healpix(nside)
    theta, phi = g.coordinates()
    theta_hp, phi_hp = hp.pix2ang(nside, np.arange(12 * nside**2))
    np.testing.assert_allclose(theta, theta_hp, rtol=0, atol=1e-14)
    np.testing.assert_allclose(phi, phi_hp, rtol=0, atol=1e-14)
    start, count, cos_theta, _, _ = hp.ringinfo(nside, np.arange(1, 4 * nside))
    np.testing.assert_array_equal(g.ring_start, start)
    np.testing.assert_array_equal(g.nphi, count)
    np.testing.assert_allclose(np.cos(g.theta), cos_theta, rtol=0, atol=1e-15)
    assert g.shape == (12 * nside**2,) and g.n_rings == 4 * nside - 1
    np.testing.assert_allclose(g.weights, 4 * np.pi * g.nphi / g.n_points, rtol=1e-15)


def test_healpix_with_nside_not_a_power_of_two_matches_s2fft():
    s2_samples = pytest.importorskip("s2fft.sampling.s2_samples")
    g = grids.healpix(3)
    np.testing.assert_allclose(g.theta, s2_samples.thetas(nside=3, sampling="healpix"), rtol=0, atol=1e-14)
    for t in range(g.n_rings):
        assert g.nphi[t] == s2_samples.nphi_ring(t, 3)
        np.testing.assert_allclose(g.phi0[t], s2_samples.phis_ring(t, 3)[0], rtol=0, atol=1e-15)


# (grid, degree D): sum_j w_j x_j^k = 2 pi int_{-1}^{1} x^k dx exactly for every k <= D.
EXACT_DEGREES = [
    (grids.equiangular(9, 8), 8), (grids.equiangular(10, 8), 9), (grids.equiangular(2, 1), 1),
    (grids.gauss_legendre(7, 13), 13), (grids.driscoll_healy(5), 9), (grids.mw(6), 5), (grids.mw(7), 6),
    (grids.mwss(6), 7), (grids.mwss(5), 5),
]


@pytest.mark.parametrize("grid,degree", EXACT_DEGREES, ids=[repr(g) for g, _ in EXACT_DEGREES])
def test_weights_integrate_polynomials_exactly(grid, degree):
    x = np.cos(grid.theta)
    assert grid.weights.dtype == np.float64 and np.all(np.isfinite(grid.weights))
    for k in range(degree + 1):
        exact = 2 * np.pi * (2.0 / (k + 1) if k % 2 == 0 else 0.0)
        assert abs(grid.weights @ x**k - exact) < 1e-13, (k, grid.weights @ x**k, exact)


@pytest.mark.parametrize("L", [3, 8])
def test_weights_equal_s2fft_quadrature(L):
    quadrature = pytest.importorskip("s2fft.utils.quadrature")
    for g, reference in ((grids.driscoll_healy(L), quadrature.quad_weights_dh(L)),
                         (grids.gauss_legendre(L, 2 * L - 1), quadrature.quad_weights_gl(L)),
                         (grids.mw(L), quadrature.quad_weights_mw(L))):
        # s2fft's weights multiply each point; ours the ring mean.
        np.testing.assert_allclose(g.weights / g.nphi, reference, rtol=1e-12, atol=1e-15, err_msg=repr(g))


def test_exact_band_limits_and_methods():
    cases = [(grids.equiangular(721, 1440), 360, "quadrature"), (grids.equiangular(10, 5), 2, "quadrature"),
             (grids.equiangular(11, 64), 5, "quadrature"), (grids.gauss_legendre(7, 13), 6, "quadrature"),
             (grids.gauss_legendre(7, 5), 2, "quadrature"), (grids.driscoll_healy(5), 4, "quadrature"),
             (grids.mw(6), 5, "sampling_theorem"), (grids.mwss(720), 719, "sampling_theorem"),
             (grids.healpix(4), None, "approximate")]
    for g, exact, method in cases:
        assert g.exact_ell_max == exact and g.analysis_method == method, g
    assert grids.mwss(720).shape == grids.equiangular(721, 1440).shape
    np.testing.assert_allclose(grids.mwss(720).theta, grids.equiangular(721, 1440).theta, rtol=0, atol=1e-15)


def test_grids_are_immutable_hashable_values():
    a, b = grids.healpix(4), grids.healpix(4)
    assert a == b and hash(a) == hash(b) and a is not b and {a: 1}[b] == 1
    assert a != grids.healpix(8) and grids.mw(4) != grids.mwss(4)
    assert repr(grids.equiangular(721, 1440)) == "equiangular(nlat=721, nlon=1440)"
    assert copy.deepcopy(a) is a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.kind = "mw"
    with pytest.raises(ValueError):
        a.theta[0] = 1.0  # read-only arrays


def test_coordinates_and_ring_layout():
    g = grids.equiangular(5, 4)
    theta, phi = g.coordinates()
    assert theta.shape == phi.shape == (5, 4)
    np.testing.assert_allclose(theta[:, 0], np.pi * np.arange(5) / 4)
    np.testing.assert_allclose(phi[2], np.pi * np.arange(4) / 2)
    h = grids.healpix(2)
    assert h.n_points == 48 and int(h.ring_start[-1] + h.nphi[-1]) == 48 and not h.is_latlon


@pytest.mark.parametrize("build,message", [
    (lambda: grids.equiangular(1, 4), "equiangular: argument 'nlat' must be >= 2, got 1"),
    (lambda: grids.equiangular(4.0, 4), "equiangular: argument 'nlat' must be an integer, got 4.0"),
    (lambda: grids.gauss_legendre(4, 0), "gauss_legendre: argument 'nlon' must be >= 1, got 0"),
    (lambda: grids.healpix(True), "healpix: argument 'nside' must be an integer"),
    (lambda: grids.mw(0), "mw: argument 'L' must be >= 1, got 0"),
    (lambda: grids.Grid("lat_lon", (4, 4)), "argument 'kind' is 'lat_lon'; expected one of"),
    (lambda: grids.Grid("mw", (4, 4)), "a mw grid takes the tuple \\('L',\\)"),
])
def test_arguments_are_checked(build, message):
    with pytest.raises(ValueError, match=message):
        build()
