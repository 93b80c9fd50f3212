"""Forward and inverse transforms: exactness, round trips, Parseval, agreement
between backends, pooling and upsampling, on every backend available here."""

import numpy as np
import pytest

import sphcnn_kernels as sk
from references import band_limited_mask, random_coefficients, random_maps, spherical_sylm
from numerics import relative_error

BACKENDS = sk.available_backends()
TOL = {np.complex128: 1e-12, np.complex64: 1e-5}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("n", [26, 32, 40])
@pytest.mark.parametrize("spin", [-3, -2, -1, 0, 1, 2, 3])
def test_forward_of_harmonic_is_unit_coefficient(backend, dtype, n, spin):
    # sY_lm sampled on the grid (values from the `spherical` package) for every
    # l <= 12, |m| <= l, l >= |s|, one per channel: forward gives exactly one
    # nonzero coefficient, equal to 1, at [l, ell_max + m].
    ell_max = n // 2 - 1
    theta, phi = sk.equiangular_grid(n)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    y = spherical_sylm(12, spin, t, p)  # (n, n, 13, 25)
    pairs = [(ell, m) for ell in range(abs(spin), 13) for m in range(-ell, ell + 1)]
    x = np.stack([y[:, :, ell, 12 + m] for ell, m in pairs], axis=-1)[None, :, :, None, :]
    got = np.asarray(sk.forward(x.astype(dtype), [spin], backend=backend))
    want = np.zeros(got.shape, np.complex128)
    for c, (ell, m) in enumerate(pairs):
        want[0, ell, ell_max + m, 0, c] = 1.0
    assert np.abs(got - want).max() < TOL[dtype]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("n", [4, 8, 16, 64, 128, 256])
def test_round_trip_coefficients(backend, dtype, n):
    rng = np.random.default_rng(n)
    ell_max = n // 2 - 1
    spins = (0, 1) if n < 8 else (-2, 0, 1, 3)
    if n == 256:
        spins = (0, 1)
    batch, channels = ((2,), 3) if n <= 64 else ((1,), 2)
    a = random_coefficients(rng, batch, ell_max, spins, channels, dtype)
    back = sk.forward(sk.inverse(a, spins, backend=backend), spins, backend=backend)
    assert back.dtype == dtype
    assert relative_error(back, a) < TOL[dtype]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("n", [4, 8, 16, 64])
def test_round_trip_band_limited_maps(backend, dtype, n):
    rng = np.random.default_rng(100 + n)
    spins = (0, -1)
    f = np.asarray(sk.inverse(random_coefficients(rng, (2,), n // 2 - 1, spins, 2), spins, backend="xla"))
    f = f.astype(dtype)
    back = sk.inverse(sk.forward(f, spins, backend=backend), spins, backend=backend)
    assert relative_error(back, f) < TOL[dtype]


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_zeros_below_spin_and_order(backend):
    rng = np.random.default_rng(7)
    spins = (0, 2, -3)
    x = random_maps(rng, (2,), 16, spins, 3)
    a = np.asarray(sk.forward(x, spins, backend=backend))
    mask = band_limited_mask(7, spins)[None, ..., None]
    assert np.all(a[~np.broadcast_to(mask, a.shape)] == 0)
    assert np.all(a[np.broadcast_to(mask, a.shape)] != 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inverse_ignores_entries_below_spin_and_order(backend):
    rng = np.random.default_rng(8)
    spins = (1, -2)
    a = random_coefficients(rng, (), 7, spins, 2)
    noisy = a + (~band_limited_mask(7, spins))[..., None] * (1 + 1j)
    np.testing.assert_array_equal(np.asarray(sk.inverse(noisy, spins, backend=backend)),
                                  np.asarray(sk.inverse(a, spins, backend=backend)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_parseval(backend):
    rng = np.random.default_rng(9)
    spins, n = (0, 1, -2), 32
    a = random_coefficients(rng, (2,), n // 2 - 1, spins, 3)
    f = np.asarray(sk.inverse(a, spins, backend=backend))
    w = sk.quadrature_weights(n) / n
    energy = np.einsum("j,bjksc->bsc", w, np.abs(f) ** 2)
    np.testing.assert_allclose(energy, np.sum(np.abs(a) ** 2, axis=(1, 2)), rtol=1e-12)


def test_forward_is_integral_against_conjugate_harmonics():
    # Direct quadrature in float64 with `spherical` harmonics, for a map that is
    # not band-limited: forward is exactly sum_j q_j mean_k f conj(sY).
    rng = np.random.default_rng(11)
    n, spin = 12, 1
    x = random_maps(rng, (), n, (spin,), 1)
    theta, phi = sk.equiangular_grid(n)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    y = spherical_sylm(n // 2 - 1, spin, t, p)
    want = np.einsum("j,jk,jklm->lm", sk.quadrature_weights(n) / n, x[..., 0, 0], np.conj(y))
    for backend in BACKENDS:
        got = np.asarray(sk.forward(x, [spin], backend=backend))[..., 0, 0]
        np.testing.assert_allclose(got, want, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("n,spins,ell_max", [(8, (0,), 3), (16, (0, 1), 7), (16, (2, -1, 0), 4), (18, (1,), 8), (32, (0, 3), 15)])
def test_backends_agree(dtype, n, spins, ell_max):
    rng = np.random.default_rng(n + ell_max)
    x = random_maps(rng, (2, 1), n, spins, 3, dtype)
    a = random_coefficients(rng, (2, 1), ell_max, spins, 3, dtype)
    forward = {b: np.asarray(sk.forward(x, spins, ell_max=ell_max, backend=b)) for b in BACKENDS}
    inverse = {b: np.asarray(sk.inverse(a, spins, n=n, backend=b)) for b in BACKENDS}
    for b in BACKENDS:
        assert relative_error(forward[b], forward["xla"]) < TOL[dtype]
        assert relative_error(inverse[b], inverse["xla"]) < TOL[dtype]


@pytest.mark.parametrize("backend", BACKENDS)
def test_spectral_pooling_is_truncation(backend):
    rng = np.random.default_rng(12)
    spins = (0, 1)
    x = random_maps(rng, (2,), 32, spins, 2)
    full = np.asarray(sk.forward(x, spins, backend=backend))
    pooled = np.asarray(sk.forward(x, spins, ell_max=7, backend=backend))
    assert pooled.shape == (2, 8, 15, 2, 2)
    np.testing.assert_allclose(pooled, full[:, :8, 15 - 7 : 15 + 8], atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spectral_upsampling_samples_same_function(backend):
    rng = np.random.default_rng(13)
    spins = (0, -2)
    a = random_coefficients(rng, (2,), 7, spins, 2)
    fine = np.asarray(sk.inverse(a, spins, n=32, backend=backend))
    padded = np.zeros((2, 16, 31, 2, 2), complex)
    padded[:, :8, 8:23] = a
    np.testing.assert_allclose(fine, np.asarray(sk.inverse(padded, spins, backend=backend)), atol=1e-12)
    theta, phi = sk.equiangular_grid(32)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    want = np.einsum("jklm,blmc->bjkc", spherical_sylm(7, -2, t, p), a[..., 1, :])
    np.testing.assert_allclose(fine[..., 1, :], want, atol=1e-12)
    np.testing.assert_allclose(np.asarray(sk.forward(fine, spins, ell_max=7, backend=backend)), a, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_input_for_spin_zero(backend):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 16, 16, 1, 3))
    got = sk.forward(x, [0], backend=backend)
    assert got.dtype == np.complex128
    np.testing.assert_allclose(np.asarray(got), np.asarray(sk.forward(x.astype(complex), [0], backend=backend)), atol=0)
    assert sk.forward(x.astype(np.float32), [0], backend=backend).dtype == np.complex64


@pytest.mark.parametrize("backend", BACKENDS)
def test_any_number_of_leading_axes(backend):
    rng = np.random.default_rng(15)
    spins = (0, 1)
    x = random_maps(rng, (2, 3, 2), 8, spins, 2)
    got = np.asarray(sk.forward(x, spins, backend=backend))
    flat = np.asarray(sk.forward(x.reshape((12, 8, 8, 2, 2)), spins, backend=backend))
    np.testing.assert_array_equal(got.reshape(flat.shape), flat)
    single = np.asarray(sk.forward(x[1, 2, 0], spins, backend=backend))
    np.testing.assert_allclose(single, got[1, 2, 0], atol=1e-14)


@pytest.mark.parametrize("batch", [1, 3, 8, 17])
@pytest.mark.parametrize("n,spins,channels", [(8, (0,), 1), (16, (0, 1), 3), (32, (-2, 0, 1), 2)])
def test_cpu_schedules_agree_with_xla(batch, n, spins, channels):
    # The C++ kernels process small batches by orders and large ones by chunks of
    # the batch (see csrc/cpu/transforms_cpu.cc); both against the xla backend.
    if "ffi" not in BACKENDS:
        pytest.skip("no ffi backend")
    rng = np.random.default_rng(batch * n)
    x = random_maps(rng, (batch,), n, spins, channels, np.complex128)
    a = random_coefficients(rng, (batch,), n // 2 - 1, spins, channels)
    for layout in ("batch_major", "degree_major"):
        coeffs = a if layout == "batch_major" else np.moveaxis(a, 1, 0)
        want_a = np.asarray(sk.forward(x, spins, backend="xla", layout=layout))
        got_a = np.asarray(sk.forward(x, spins, backend="ffi", layout=layout))
        assert relative_error(got_a, want_a) < 1e-12
        want_x = np.asarray(sk.inverse(coeffs, spins, backend="xla", layout=layout))
        got_x = np.asarray(sk.inverse(coeffs, spins, backend="ffi", layout=layout))
        assert relative_error(got_x, want_x) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_degree_major_layout_is_a_moved_axis(backend):
    rng = np.random.default_rng(16)
    spins = (0, 1)
    x = random_maps(rng, (2, 3), 16, spins, 2)
    a = np.asarray(sk.forward(x, spins, backend=backend))
    d = np.asarray(sk.forward(x, spins, backend=backend, layout="degree_major"))
    assert d.shape == (8, 2, 3, 15, 2, 2)
    np.testing.assert_array_equal(d, np.moveaxis(a, -4, 0))
    np.testing.assert_array_equal(np.asarray(sk.inverse(d, spins, backend=backend, layout="degree_major")),
                                  np.asarray(sk.inverse(a, spins, backend=backend)))
