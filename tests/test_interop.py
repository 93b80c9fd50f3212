"""Coefficient converters against the libraries themselves: healpy (spin 0 and
spin fields, alm2map / alm2map_spin / map2alm), ducc0, s2fft; torch-harmonics
(not installed here) against a NumPy implementation of the formulas of its
RealSHT and InverseRealSHT."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from sphcnn_kernels import grid_transforms as gt
from sphcnn_kernels import grids, interop


def random_healpy(rng, lmax, mmax=None):
    mmax = lmax if mmax is None else mmax
    size = interop.healpy_size(lmax, mmax)
    alm = rng.standard_normal(size) + 1j * rng.standard_normal(size)
    alm[: lmax + 1] = alm[: lmax + 1].real  # m = 0 entries of a real field
    return alm


def random_real_field(rng, ell_max):
    """Our (ell_max + 1, 2 ell_max + 1) coefficients of a real field."""
    return interop.from_healpy(random_healpy(rng, ell_max))


def test_healpy_spin_zero_maps_and_round_trips():
    hp = pytest.importorskip("healpy")
    nside, lmax = 4, 9
    rng = np.random.default_rng(0)
    alm = random_healpy(rng, lmax)
    a = interop.from_healpy(alm)
    assert isinstance(a, np.ndarray) and a.shape == (lmax + 1, 2 * lmax + 1) and a.dtype == np.complex128
    x = np.asarray(gt.inverse(a[..., None, None], grids.healpix(nside)))[:, 0, 0]
    np.testing.assert_allclose(x, hp.alm2map(alm, nside, lmax=lmax), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(interop.to_healpy(a), alm)
    np.testing.assert_array_equal(interop.to_healpy(interop.from_healpy(alm, real=True), real=True), alm)
    # healpy's own index function and lmax/mmax variants
    ell, m = hp.Alm.getlm(lmax)
    np.testing.assert_array_equal(interop.to_healpy(a)[hp.Alm.getidx(lmax, ell, m)], a[ell, lmax + m])
    small = random_healpy(rng, 6, mmax=3)
    b = interop.from_healpy(small, lmax=6, mmax=3)
    assert np.all(b[:, : 6 - 3] == 0) and np.all(b[:, 6 + 4:] == 0)
    np.testing.assert_array_equal(interop.to_healpy(b, mmax=3), small)
    padded = interop.to_healpy(a, lmax=lmax + 2)
    np.testing.assert_array_equal(interop.from_healpy(padded)[: lmax + 1, 2: -2], a)


def test_healpy_analysis_with_iterations_equals_ours():
    hp = pytest.importorskip("healpy")
    nside, lmax = 4, 8
    f = np.random.default_rng(1).standard_normal(12 * nside**2)
    ours = gt.forward(f[:, None, None], grids.healpix(nside), ell_max=lmax, iterations=2, real=True)[..., 0, 0]
    np.testing.assert_allclose(interop.to_healpy(np.asarray(ours), real=True),
                               hp.map2alm(f, lmax=lmax, iter=2, use_weights=False), rtol=0, atol=1e-12)


@pytest.mark.parametrize("spin", [1, 2, 3, -1, -2, -3])
def test_healpy_spin_fields(spin):
    hp = pytest.importorskip("healpy")
    nside, lmax = 4, 9
    rng = np.random.default_rng(2)
    eb = np.stack([random_healpy(rng, lmax), random_healpy(rng, lmax)])
    q, u = hp.alm2map_spin(list(eb), nside, abs(spin), lmax)
    a = interop.from_healpy_spin(eb, spin)
    assert a.shape == (lmax + 1, 2 * lmax + 1) and np.all(a[: abs(spin)] == 0)
    x = np.asarray(gt.inverse(a[..., None, None], grids.healpix(nside), (spin,)))[:, 0, 0]
    np.testing.assert_allclose(x, q + 1j * np.sign(spin) * u, rtol=0, atol=1e-12)
    eb[:, np.concatenate([np.arange(m, lmax + 1) < abs(spin) for m in range(lmax + 1)])] = 0
    np.testing.assert_allclose(interop.to_healpy_spin(a, spin), eb, rtol=0, atol=1e-15)


def test_healpy_polarization_is_spin_two():
    hp = pytest.importorskip("healpy")
    nside, lmax = 4, 9
    rng = np.random.default_rng(3)
    t, e, b = (random_healpy(rng, lmax) for _ in range(3))
    _, q, u = hp.alm2map([t, e, b], nside, lmax=lmax, pol=True)
    x = gt.inverse(interop.from_healpy_spin(np.stack([e, b]), 2)[..., None, None], grids.healpix(nside), (2,))
    np.testing.assert_allclose(np.asarray(x)[:, 0, 0], q + 1j * u, rtol=0, atol=1e-12)


def test_ducc0_analysis_of_spin_maps():
    ducc0 = pytest.importorskip("ducc0")
    lmax, grid = 6, grids.gauss_legendre(7, 16)
    rng = np.random.default_rng(4)
    a = interop.from_healpy_spin(np.stack([random_healpy(rng, lmax), random_healpy(rng, lmax)]), 2)
    x = np.asarray(gt.inverse(a[..., None, None], grid, (2,)))[..., 0, 0]
    eb = ducc0.sht.experimental.analysis_2d(map=np.stack([x.real, x.imag]), spin=2, lmax=lmax, geometry="GL")
    ours = np.asarray(gt.forward(x[..., None, None], grid, (2,)))[..., 0, 0]
    np.testing.assert_allclose(interop.to_healpy_spin(ours, 2), eb, rtol=0, atol=1e-12)


def test_jax_arrays_stay_jax_and_differentiable():
    rng = np.random.default_rng(5)
    alm = jnp.asarray(random_healpy(rng, 5).astype(np.complex64))
    a = interop.from_healpy(alm)
    assert isinstance(a, jax.Array) and a.dtype == np.complex64
    np.testing.assert_allclose(np.asarray(a), interop.from_healpy(np.asarray(alm)), rtol=1e-7)
    pair = jnp.stack([alm, alm])
    b = jax.jit(lambda v: interop.from_healpy_spin(v, -2))(pair)
    assert b.dtype == np.complex64
    np.testing.assert_allclose(np.asarray(b), interop.from_healpy_spin(np.asarray(pair), -2), rtol=2e-6, atol=1e-6)
    g = jax.jit(jax.grad(lambda v: jnp.sum(jnp.abs(interop.to_healpy_spin(interop.from_healpy_spin(v, 2), 2)) ** 2)))
    kept = np.concatenate([np.arange(m, 6) >= 2 for m in range(6)])  # l >= |s| in healpy's order
    np.testing.assert_allclose(np.asarray(g(pair.real)), 2 * np.asarray(pair.real) * kept, rtol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # s2fft's recursions divide by zero at the poles
def test_s2fft_any_spin():
    s2fft = pytest.importorskip("s2fft")
    L = 7
    grid = grids.mw(L)
    rng = np.random.default_rng(6)
    spins = (0, 1, -2, 3)
    shape = (L, 2 * L - 1, len(spins), 1)
    x = np.asarray(gt.inverse(np.zeros(shape, complex) + 0, grid, spins))  # zeros: the layout only
    assert x.shape == grid.shape + (len(spins), 1)
    for s in spins:
        flm = rng.standard_normal((L, 2 * L - 1)) + 1j * rng.standard_normal((L, 2 * L - 1))
        flm *= (np.arange(L)[:, None] >= np.maximum(np.abs(np.arange(1 - L, L))[None, :], abs(s)))
        f = np.asarray(s2fft.inverse(flm, L, spin=s, sampling="mw", method="numpy"))
        ours = np.asarray(gt.forward(f[..., None, None], grid, (s,)))[..., 0, 0]
        np.testing.assert_allclose(interop.to_s2fft(ours), flm, rtol=0, atol=1e-12, err_msg=f"spin {s}")
        np.testing.assert_allclose(interop.from_s2fft(flm), ours, rtol=0, atol=1e-12)
        f_back = s2fft.inverse(np.asarray(interop.to_s2fft(ours, L=L + 2)), L + 2, spin=s, sampling="mw",
                               method="numpy")
        x = np.asarray(gt.inverse(interop.from_s2fft(flm, ell_max=L + 1)[..., None, None], grids.mw(L + 2), (s,)))
        np.testing.assert_allclose(x[..., 0, 0], f_back, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(interop.from_s2fft(interop.to_s2fft(ours, L=3), ell_max=L - 1)[:3, L - 3: L + 2],
                                  ours[:3, L - 3: L + 2])


# torch-harmonics' scalar transforms written out in NumPy from the formulas of its source
# (torch_harmonics/sht.py RealSHT and InverseRealSHT; torch_harmonics/legendre.py legpoly):
# the forward multiplies 2 pi rfft(f, norm="forward") by quadrature weights and
# (-1)^m c_l Pbar_l^m(cos theta); the inverse sums x_lm Pbar_l^m / c_l with irfft(norm="forward").
def torch_harmonics_legendre(lmax, mmax, theta, norm, csphase, inverse):
    """(mmax, lmax, len(theta)): the Legendre factor of torch-harmonics (c_l or 1 / c_l)."""
    ell = np.arange(lmax)[None, :, None]
    m = np.arange(mmax)[:, None, None]
    # scipy's sph_legendre_p is orthonormal and includes (-1)^m (Condon-Shortley)
    with_phase = np.where(ell >= m, scipy.special.sph_legendre_p(ell, m, theta[None, None, :])[0], 0.0)
    values = with_phase if csphase else with_phase * (-1.0) ** m
    c = {"ortho": np.ones_like(ell, dtype=float), "four-pi": np.full(ell.shape, np.sqrt(4 * np.pi)),
         "schmidt": np.sqrt(4 * np.pi / (2 * ell + 1.0))}[norm]
    return values / c if inverse else values * c


def torch_harmonics_forward(f, lmax, mmax, norm, csphase):
    nlat, nlon = f.shape
    x, w = np.polynomial.legendre.leggauss(nlat)
    theta = np.arccos(x[::-1])  # its grid="legendre-gauss", flipped to north first
    spectrum = 2 * np.pi * np.fft.rfft(f, axis=-1) / nlon  # (nlat, nlon // 2 + 1)
    table = torch_harmonics_legendre(lmax, mmax, theta, norm, csphase, inverse=False) * w[::-1]
    return np.einsum("km,mlk->lm", spectrum[:, :mmax], table)


def torch_harmonics_inverse(x, nlat, nlon, norm, csphase):
    lmax, mmax = x.shape
    theta = np.arccos(np.polynomial.legendre.leggauss(nlat)[0][::-1])
    rings = np.einsum("lm,mlk->km", x, torch_harmonics_legendre(lmax, mmax, theta, norm, csphase, inverse=True))
    rings[:, 0] = rings[:, 0].real
    return np.fft.irfft(rings, n=nlon, axis=-1) * nlon


@pytest.mark.parametrize("norm", interop.TORCH_HARMONICS_NORMS)
@pytest.mark.parametrize("csphase", [True, False])
def test_torch_harmonics_formulas(norm, csphase):
    ell_max, nlat, nlon = 6, 7, 16
    grid = grids.gauss_legendre(nlat, nlon)
    rng = np.random.default_rng(7)
    a = random_real_field(rng, ell_max)
    f = np.asarray(gt.inverse(a[..., None, None], grid))[..., 0, 0].real
    x = interop.to_torch_harmonics(a, norm=norm, csphase=csphase)
    assert x.shape == (ell_max + 1, ell_max + 1)
    np.testing.assert_allclose(x, torch_harmonics_forward(f, ell_max + 1, ell_max + 1, norm, csphase),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(torch_harmonics_inverse(x, nlat, nlon, norm, csphase), f, rtol=0, atol=1e-12)
    np.testing.assert_allclose(interop.from_torch_harmonics(x, norm=norm, csphase=csphase), a, rtol=0, atol=1e-14)
    half = interop.from_torch_harmonics(x[:, :4], norm=norm, csphase=csphase, real=True)
    np.testing.assert_allclose(half[:, :4], a[:, ell_max: ell_max + 4], rtol=0, atol=1e-14)
    assert np.all(half[:, 4:] == 0)
    np.testing.assert_allclose(interop.to_torch_harmonics(a, lmax=5, mmax=3, norm=norm, csphase=csphase),
                               x[:5, :3], rtol=0, atol=0)
    if norm == "ortho" and csphase:  # its default: the m >= 0 half itself
        np.testing.assert_array_equal(x, a[:, ell_max:])


@pytest.mark.parametrize("call,message", [
    (lambda: interop.to_healpy(np.zeros((3, 4))),
     r"argument 'coeffs' has shape \(3, 4\); expected the core layout \(\.\.\., ell_max \+ 1, 2 ell_max \+ 1\): "
     r"take coeffs\[\.\.\., s, c\]"),
    (lambda: interop.from_healpy(np.zeros(7)), r"argument 'alm' has 7 coefficients on its last axis, which is no "
                                               r"healpy size"),
    (lambda: interop.from_healpy(np.zeros(10), lmax=4), r"lmax=4, mmax=4 take 15"),
    (lambda: interop.to_healpy(np.zeros((3, 5)), mmax=4), r"argument 'mmax' is 4; expected mmax <= lmax = 2"),
    (lambda: interop.from_healpy_spin(np.zeros((2, 6)), 0), r"argument 'spin' is 0; expected a nonzero integer"),
    (lambda: interop.from_healpy_spin(np.zeros(6), 2), r"expected \(\.\.\., 2, n_alm\)"),
    (lambda: interop.from_s2fft(np.zeros((3, 4))), r"expected \(\.\.\., L, 2L - 1\)"),
    (lambda: interop.to_torch_harmonics(np.zeros((3, 5)), norm="unit"), r"argument 'norm' is 'unit'; expected one"),
    (lambda: interop.from_torch_harmonics(np.zeros((3, 4))), r"expected \(\.\.\., lmax, mmax\) with 1 <= mmax"),
])
def test_arguments_are_checked(call, message):
    with pytest.raises(ValueError, match=message):
        call()
