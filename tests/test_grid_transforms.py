"""Transforms on every grid against independent references: ducc0, healpy and
s2fft (each skipped when absent), and the direct sum of our harmonics as a
cross-check; round trips to the exact band limit, the HEALPix iterations, the
real (rfft) path, aliased orders, gradients and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sphcnn_kernels as sk
from sphcnn_kernels import grid_transforms as gt
from sphcnn_kernels import grids

SPINS = (0, 1, -2, 3)
EXACT_GRIDS = [grids.equiangular(9, 8), grids.equiangular(12, 17), grids.gauss_legendre(6, 11),
               grids.driscoll_healy(5), grids.mw(6), grids.mwss(6)]
TOLERANCE = {np.complex64: 2e-5, np.complex128: 1e-12}


def random_coefficients(rng, ell_max, spins, batch=(), channels=1, dtype=np.complex128):
    """(*batch, ell_max + 1, 2 ell_max + 1, S, channels), zero where l < max(|m|, |s|)."""
    shape = batch + (ell_max + 1, 2 * ell_max + 1, len(spins), channels)
    a = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    ell = np.arange(ell_max + 1)[:, None, None]
    m = np.arange(-ell_max, ell_max + 1)[None, :, None]
    valid = (ell >= np.abs(m)) & (ell >= np.abs(np.asarray(spins))[None, None, :])
    return (a * valid[..., None]).astype(dtype)


def direct_synthesis(a, grid, spins):
    """sum_lm a_lm sY_lm at the grid points, float64 (our harmonics: a cross-check)."""
    theta, phi = grid.coordinates()
    ell_max = a.shape[-4] - 1
    out = []
    for i, s in enumerate(spins):
        harmonics = sk.spin_spherical_harmonics(ell_max, s, theta.ravel(), phi.ravel())  # (P, L + 1, M)
        values = np.einsum("plm,...lmc->...pc", harmonics, a[..., i, :])
        out.append(values.reshape(values.shape[:-2] + grid.shape + values.shape[-1:]))
    return np.stack(out, axis=-2)


def full_from_healpy(alm, lmax):
    """(lmax + 1, 2 lmax + 1) from healpy's m >= 0 packing, a_{l,-m} = (-1)^m conj(a_lm)."""
    out = np.zeros((lmax + 1, 2 * lmax + 1), complex)
    for m in range(lmax + 1):
        for ell in range(m, lmax + 1):
            value = alm[m * (2 * lmax + 1 - m) // 2 + ell]
            out[ell, lmax + m] = value
            out[ell, lmax - m] = (-1) ** m * np.conj(value)
    return out


def random_healpy(rng, lmax):
    size = (lmax + 1) * (lmax + 2) // 2
    alm = rng.standard_normal(size) + 1j * rng.standard_normal(size)
    alm[: lmax + 1] = alm[: lmax + 1].real  # m = 0 entries of a real field
    return alm


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("grid", EXACT_GRIDS, ids=repr)
def test_round_trip_to_the_exact_band_limit(grid, dtype):
    rng = np.random.default_rng(0)
    ell_max = grid.exact_ell_max
    a = random_coefficients(rng, ell_max, SPINS, batch=(2,), channels=2, dtype=dtype)
    x = gt.inverse(a, grid, SPINS)
    assert x.shape == (2,) + grid.shape + (len(SPINS), 2) and x.dtype == dtype
    b = gt.forward(x, grid, SPINS)
    assert b.shape == a.shape and b.dtype == dtype
    np.testing.assert_allclose(np.asarray(b), a, rtol=0, atol=TOLERANCE[dtype])
    if dtype == np.complex128:  # cross-check against the direct sum of the harmonics
        np.testing.assert_allclose(np.asarray(x), direct_synthesis(a, grid, SPINS), rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # s2fft's recursions divide by zero at the poles
@pytest.mark.parametrize("sampling", ["mw", "mwss", "dh", "gl", "healpix"])
def test_against_s2fft(sampling):
    s2fft = pytest.importorskip("s2fft")
    L, nside = 8, 4
    grid = {"mw": grids.mw(L), "mwss": grids.mwss(L), "dh": grids.driscoll_healy(L),
            "gl": grids.gauss_legendre(L, 2 * L - 1), "healpix": grids.healpix(nside)}[sampling]
    # s2fft 1.5.0's HEALPix transforms of spin != 0 are wrong (astro-informatics/s2fft
    # pull request 387); our HEALPix spins are checked against healpy and ducc0 below.
    spins = (0,) if sampling == "healpix" else SPINS
    rng = np.random.default_rng(1)
    a = random_coefficients(rng, L - 1, spins)
    ours = np.asarray(gt.inverse(a, grid, spins))
    for i, s in enumerate(spins):
        f = np.asarray(s2fft.inverse(a[..., i, 0], L, spin=s, nside=nside, sampling=sampling, method="numpy"))
        np.testing.assert_allclose(ours[..., i, 0], f, rtol=0, atol=1e-12, err_msg=f"spin {s}")
        if sampling != "healpix":
            flm = np.asarray(s2fft.forward(f, L, spin=s, sampling=sampling, method="numpy"))
            ours_flm = np.asarray(gt.forward(f[..., None, None], grid, (s,)))[..., 0, 0]
            np.testing.assert_allclose(ours_flm, flm, rtol=0, atol=1e-12, err_msg=f"spin {s}")
    if sampling == "healpix":  # s2fft's iterated analysis against ours, same iterations
        flm = np.asarray(s2fft.forward(ours[..., 0, 0], L, nside=nside, sampling="healpix", method="numpy",
                                       iter=2))
        ours_flm = np.asarray(gt.forward(ours, grid, ell_max=L - 1, iterations=2))[..., 0, 0]
        np.testing.assert_allclose(ours_flm, flm, rtol=0, atol=1e-11)


def ducc0_grid_case(name):
    """(grid, ducc0 geometry, ntheta, nphi, ell_max)."""
    return {"CC": (grids.equiangular(11, 13), "CC", 11, 13, 5),
            "CC_mwss": (grids.mwss(6), "CC", 7, 12, 5),
            "GL": (grids.gauss_legendre(7, 16), "GL", 7, 16, 6),
            "F1": (grids.driscoll_healy(6), "F1", 12, 11, 5),
            "MW": (grids.mw(7), "MW", 7, 13, 6)}[name]


@pytest.mark.parametrize("name", ["CC", "CC_mwss", "GL", "F1", "MW"])
def test_against_ducc0_2d(name):
    ducc0 = pytest.importorskip("ducc0")
    grid, geometry, ntheta, nphi, lmax = ducc0_grid_case(name)
    rng = np.random.default_rng(2)
    for spin in (0, 1, 2, 3):
        if spin == 0:
            alm = random_healpy(rng, lmax)[None]
            ours = full_from_healpy(alm[0], lmax)
        else:  # healpy/ducc0 gradient and curl: our spin-s field Q + iU has a_lm = -(E_lm + i B_lm)
            alm = np.stack([random_healpy(rng, lmax), random_healpy(rng, lmax)])
            ours = -(full_from_healpy(alm[0], lmax) + 1j * full_from_healpy(alm[1], lmax))
            ours[:spin] = 0
            alm[:, :] *= np.concatenate([np.arange(m, lmax + 1) >= spin for m in range(lmax + 1)])
        maps = ducc0.sht.experimental.synthesis_2d(alm=alm, spin=spin, lmax=lmax, geometry=geometry,
                                                   ntheta=ntheta, nphi=nphi)
        field = maps[0] if spin == 0 else maps[0] + 1j * maps[1]
        x = np.asarray(gt.inverse(ours[..., None, None], grid, (spin,)))[..., 0, 0]
        np.testing.assert_allclose(x, field, rtol=0, atol=1e-12, err_msg=f"spin {spin}")
        back = ducc0.sht.experimental.analysis_2d(map=maps, spin=spin, lmax=lmax, geometry=geometry)
        b = np.asarray(gt.forward(field[..., None, None], grid, (spin,), ell_max=lmax))[..., 0, 0]
        reference = full_from_healpy(back[0], lmax) if spin == 0 else \
            -(full_from_healpy(back[0], lmax) + 1j * full_from_healpy(back[1], lmax))
        np.testing.assert_allclose(b, reference, rtol=0, atol=1e-12, err_msg=f"spin {spin}")


@pytest.mark.parametrize("grid", [grids.healpix(2), grids.equiangular(6, 5)], ids=repr)
def test_synthesis_against_ducc0_general_geometry(grid):
    """ducc0.sht.experimental.synthesis on the grid's own rings, spins 1..3, with
    ell_max beyond what the rings resolve (aliased orders)."""
    ducc0 = pytest.importorskip("ducc0")
    lmax = 7
    rng = np.random.default_rng(3)
    for spin in (1, 2, 3):
        alm = np.stack([random_healpy(rng, lmax), random_healpy(rng, lmax)])
        ours = -(full_from_healpy(alm[0], lmax) + 1j * full_from_healpy(alm[1], lmax))
        ours[:spin] = 0
        alm *= np.concatenate([np.arange(m, lmax + 1) >= spin for m in range(lmax + 1)])
        maps = ducc0.sht.experimental.synthesis(alm=alm, theta=grid.theta, nphi=grid.nphi.astype(np.uint64),
                                                phi0=grid.phi0, ringstart=grid.ring_start.astype(np.uint64),
                                                spin=spin, lmax=lmax)
        x = np.asarray(gt.inverse(ours[..., None, None], grid, (spin,))).reshape(-1)
        np.testing.assert_allclose(x, maps[0] + 1j * maps[1], rtol=0, atol=1e-12, err_msg=f"spin {spin}")


def test_healpix_against_healpy_and_iterations_improve():
    hp = pytest.importorskip("healpy")
    nside, lmax = 4, 8
    grid = grids.healpix(nside)
    rng = np.random.default_rng(4)
    alm = random_healpy(rng, lmax)
    truth = full_from_healpy(alm, lmax)
    f = hp.alm2map(alm, nside, lmax=lmax)
    x = np.asarray(gt.inverse(truth[..., None, None], grid))[..., 0, 0]
    np.testing.assert_allclose(x, f, rtol=0, atol=1e-12)
    errors = []
    for iterations in (0, 1, 3):
        reference = full_from_healpy(hp.map2alm(f, lmax=lmax, iter=iterations, use_weights=False), lmax)
        b = np.asarray(gt.forward(f[:, None, None], grid, ell_max=lmax, iterations=iterations))[..., 0, 0]
        np.testing.assert_allclose(b, reference, rtol=0, atol=1e-12)
        errors.append(np.abs(b - truth).max())
        if iterations == 1:
            half = np.asarray(gt.forward(f[:, None, None], grid, ell_max=lmax, iterations=1, real=True))
            np.testing.assert_allclose(half[..., 0, 0], b[:, lmax:], rtol=0, atol=1e-12)
    assert errors[1] < errors[0] / 4 and errors[2] < errors[1] / 10, errors


def test_healpix_spin_iterations_improve():
    grid = grids.healpix(4)
    rng = np.random.default_rng(5)
    a = random_coefficients(rng, 8, (2, -1))
    x = gt.inverse(a, grid, (2, -1))
    errors = [float(jnp.abs(gt.forward(x, grid, (2, -1), ell_max=8, iterations=k) - a).max()) for k in (0, 2, 4)]
    assert errors[0] > 10 * errors[1] > 100 * errors[2], errors


@pytest.mark.parametrize("precision", [np.float32, np.float64])
@pytest.mark.parametrize("grid", [grids.equiangular(10, 9), grids.mw(5), grids.healpix(2)], ids=repr)
def test_real_path_equals_the_complex_path(grid, precision):
    complex_dtype = np.complex64 if precision == np.float32 else np.complex128
    ell_max = 4
    rng = np.random.default_rng(6)
    half = np.tril(rng.standard_normal((ell_max + 1, ell_max + 1)) + 1j * rng.standard_normal((ell_max + 1,) * 2))
    half[:, 0] = half[:, 0].real
    full = np.concatenate([np.conj(half[:, :0:-1]) * (-1.0) ** np.arange(ell_max, 0, -1), half], axis=1)
    x = gt.inverse(half[..., None, None].astype(complex_dtype), grid, real=True)
    assert x.dtype == precision and x.shape == grid.shape + (1, 1)
    reference = np.asarray(gt.inverse(full[..., None, None].astype(complex_dtype), grid))
    atol = 1e-5 if precision == np.float32 else 1e-13
    np.testing.assert_allclose(np.asarray(x), reference.real, rtol=0, atol=atol)
    assert np.abs(reference.imag).max() < atol
    a = gt.forward(x, grid, ell_max=ell_max, real=True)
    assert a.shape == (ell_max + 1, ell_max + 1, 1, 1) and a.dtype == complex_dtype
    b = np.asarray(gt.forward(x, grid, ell_max=ell_max))
    np.testing.assert_allclose(np.asarray(a), b[:, ell_max:], rtol=0, atol=atol)
    if grid.exact_ell_max is not None:
        np.testing.assert_allclose(np.asarray(a)[..., 0, 0], half, rtol=0, atol=10 * atol)


@pytest.mark.parametrize("grid", [grids.equiangular(8, 3), grids.equiangular(8, 1), grids.healpix(1)], ids=repr)
def test_orders_beyond_the_longitudes_alias_in_synthesis(grid):
    """Order m lands at bin m mod n_j: the inverse stays exact at the grid points."""
    rng = np.random.default_rng(7)
    a = random_coefficients(rng, 5, (0, 2))
    np.testing.assert_allclose(np.asarray(gt.inverse(a, grid, (0, 2))), direct_synthesis(a, grid, (0, 2)),
                               rtol=0, atol=1e-12)
    half = a[:, 5:, :1]
    half[:, 0] = half[:, 0].real
    full = np.concatenate([np.conj(half[:, :0:-1]) * (-1.0) ** np.arange(5, 0, -1)[:, None, None], half], axis=1)
    np.testing.assert_allclose(np.asarray(gt.inverse(half, grid, real=True)),
                               direct_synthesis(full, grid, (0,)).real, rtol=0, atol=1e-12)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(8)
    for grid, iterations in ((grids.mw(4), 0), (grids.healpix(1), 1)):
        x = jnp.asarray(rng.standard_normal(grid.shape + (1, 1)))
        c = jnp.asarray(rng.standard_normal((4, 7, 1, 1)) + 1j * rng.standard_normal((4, 7, 1, 1)))

        @jax.jit
        def loss(v, grid=grid, iterations=iterations, c=c):
            a = gt.forward(v, grid, ell_max=3, iterations=iterations)
            return jnp.sum(jnp.abs(a - c) ** 2) + jnp.sum(jnp.real(gt.inverse(a, grid)) * v)

        g = jax.jit(jax.grad(loss))(x)
        d = jnp.asarray(rng.standard_normal(x.shape))
        eps = 1e-6
        numeric = (loss(x + eps * d) - loss(x - eps * d)) / (2 * eps)
        np.testing.assert_allclose(float(jnp.sum(g * d)), float(numeric), rtol=1e-6)


def test_jit_vmap_and_a_first_call_inside_jit():
    grid = grids.gauss_legendre(5, 9)
    rng = np.random.default_rng(9)
    a = random_coefficients(rng, 4, (1,), batch=(3,))
    jitted = jax.jit(lambda c: gt.forward(gt.inverse(c, grid, (1,)), grid, (1,)))
    np.testing.assert_allclose(np.asarray(jitted(a)), a, rtol=0, atol=1e-12)
    mapped = jax.vmap(lambda c: gt.inverse(c, grid, (1,)))(a)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(gt.inverse(a, grid, (1,))), rtol=0, atol=1e-14)


def test_float_maps_for_spin_zero_and_input_dtypes():
    grid = grids.equiangular(6, 7)
    x = np.random.default_rng(10).standard_normal((6, 7, 1, 1)).astype(np.float32)
    a = gt.forward(x, grid)
    assert a.dtype == np.complex64 and a.shape == (3, 5, 1, 1)
    np.testing.assert_allclose(np.asarray(gt.forward(x.astype(np.complex64), grid)), np.asarray(a), atol=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda: gt.forward(np.zeros((721, 1440)), grids.equiangular(721, 1440), ell_max=8),
     r"argument 'x' has shape \(721, 1440\); expected \(\.\.\., 721, 1440, n_spins, n_channels\) for "
     r"equiangular\(nlat=721, nlon=1440\) with n_spins = 1 for spins \(0,\); a single map of shape "
     r"\(721, 1440\) becomes x\[\.\.\., None, None\]"),
    (lambda: gt.forward(np.zeros(192), grids.healpix(4)),
     r"argument 'x' has shape \(192,\); expected \(\.\.\., 192, n_spins, n_channels\) for healpix\(nside=4\) "
     r"with n_spins = 1 for spins \(0,\); a single map of shape \(192,\) becomes x\[\.\.\., None, None\]"),
    (lambda: gt.forward(np.zeros((8, 8, 2, 1), np.complex64), grids.equiangular(8, 8), (0,)),
     r"n_spins = 1 for spins \(0,\)"),
    (lambda: gt.forward(np.zeros((9, 64, 1, 1)), grids.equiangular(9, 64), ell_max=5),
     r"ell_max = 5 exceeds the exact band limit 4 of equiangular\(nlat=9, nlon=64\) \(grid.exact_ell_max\); "
     r"pass ell_max <= 4, or sample the data on a grid with more rings or longitudes"),
    (lambda: gt.forward(np.zeros((17, 3, 1, 1)), grids.equiangular(17, 3), ell_max=2),
     r"ell_max = 2 exceeds the exact band limit 1 of equiangular\(nlat=17, nlon=3\) \(grid.exact_ell_max\); "
     r"its 3 longitudes resolve orders \|m\| <= 1 only \(2 ell_max \+ 1 <= nlon\); pass ell_max <= 1"),
    (lambda: gt.forward(np.zeros((9, 8, 1, 1)), grids.equiangular(9, 8), iterations=2),
     r"iterations = 2 refine the approximate HEALPix analysis only"),
    (lambda: gt.forward(np.zeros((9, 8, 1, 1)), grids.equiangular(9, 8), ell_max=-1),
     r"argument 'ell_max' is -1; expected an integer >= max\|s\| = 0"),
    (lambda: gt.forward(np.zeros((9, 8, 1, 1)), grids.equiangular(9, 8), (0, 1)),
     r"argument 'x' has dtype float64; expected one of \('complex64', 'complex128'\) \(spins \(0, 1\) are not"),
    (lambda: gt.forward(np.zeros((9, 8, 2, 1)), grids.equiangular(9, 8), (0, 1), real=True),
     r"real=True takes spins \(0,\) only"),
    (lambda: gt.forward(np.zeros((9, 8, 1, 1), np.complex64), grids.equiangular(9, 8), real=True),
     r"argument 'x' has dtype complex64; expected one of \('float32', 'float64'\)"),
    (lambda: gt.forward(np.zeros((9, 8, 1, 1)), (9, 8)), r"argument 'grid' is \(9, 8\); expected a "),
    (lambda: gt.forward(np.zeros((9, 8, 1, 1)), grids.equiangular(9, 8), (0, 0)),
     r"argument 'spins' is \(0, 0\); expected a non-empty sequence of distinct integers"),
    (lambda: gt.inverse(np.zeros((4, 7), np.complex64), grids.mw(4)),
     r"argument 'coeffs' has shape \(4, 7\); expected \(\.\.\., ell_max \+ 1, 2 ell_max \+ 1, n_spins, "
     r"n_channels\) with n_spins = 1 for spins \(0,\) \(maps on mw\(L=4\) will be \(\.\.\., 4, 7, n_spins, "
     r"n_channels\)\); add spin and channel axes to a single coefficient array with coeffs\[\.\.\., None, None\]"),
    (lambda: gt.inverse(np.zeros((2, 3, 1, 1), np.complex64), grids.mw(4), (2,)),
     r"ell_max = 1 < max\|s\| = 2"),
])
def test_arguments_are_checked(call, message):
    with pytest.raises(ValueError, match=message):
        call()
