"""The CUDA kernels (ffi backend on a CUDA device) against the xla backend.

Every test needs a CUDA GPU and is skipped without one (see conftest.py, which
also enables float64). The reference is the xla backend in complex128 (float64
table), so the complex64 kernels are checked against an accurate result.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import sphcnn_kernels as sk
from references import band_limited_mask, random_coefficients
from sphcnn_kernels.backends import ffi_backend
from sphcnn_kernels.plan import get_plan
from sphcnn_kernels.primitives import analysis, synthesis

# Error relative to the largest reference value.
TOL = {"complex64": 1e-5, "complex128": 1e-12}
MODES = ("table", "onthefly")

# (n, ell_max, spins, batch shape, channels)
CASES = [
    (4, 1, (0,), (), 1),
    (8, 3, (0, 1), (2,), 3),
    (16, 7, (-2, 1, 3), (2, 1), 33),
    (16, 5, (0, 1, -3), (3,), 1),  # pooled: ell_max < n/2 - 1
    (64, 31, (0, 1), (2,), 3),
    (64, 20, (-2, 1, 3), (), 33),  # pooled
    (128, 63, (0,), (1, 2), 1),
    (256, 127, (0, 1), (), 3),
]
CASE_IDS = [f"n{c[0]}-l{c[1]}-s{'_'.join(map(str, c[2]))}-b{'x'.join(map(str, c[3])) or '0'}-c{c[4]}" for c in CASES]


def _complex(rng, shape, dtype):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _plans(n, ell_max, spins, dtype, mode):
    ffi = get_plan(n, ell_max, tuple(spins), dtype, "ffi", "highest", mode)
    ref = get_plan(n, ell_max, tuple(spins), "complex128", "xla", "highest")
    return ffi, ref


def _run(primitive, value, plan, sign, weighted):
    return jax.jit(lambda v: primitive(v, plan, sign, weighted))(value)


def _assert_close(got, want, tol):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape
    assert np.all(np.isfinite(got))
    scale = max(float(np.max(np.abs(want))), 1e-300)
    err = float(np.max(np.abs(got.astype(np.complex128) - want)))
    assert err <= tol * scale, f"max error {err:.3e} > {tol:.1e} * {scale:.3e}"


@pytest.mark.gpu
@pytest.mark.parametrize("sign, weighted", [(-1, True), (1, False)])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("n, ell_max, spins, batch, channels", CASES, ids=CASE_IDS)
def test_analysis_matches_xla(n, ell_max, spins, batch, channels, dtype, mode, sign, weighted):
    rng = np.random.default_rng(n + 7 * ell_max + channels)
    plan, ref_plan = _plans(n, ell_max, spins, dtype, mode)
    x = _complex(rng, tuple(batch) + (n, n, len(spins), channels), dtype)
    got = _run(analysis, jnp.asarray(x), plan, sign, weighted)
    want = _run(analysis, jnp.asarray(x.astype(np.complex128)), ref_plan, sign, weighted)
    assert got.dtype == np.dtype(dtype)
    _assert_close(got, want, TOL[dtype])
    # Exact zeros below l0 = max(|m|, |s|).
    below = ~band_limited_mask(ell_max, spins)
    assert np.all(np.asarray(got)[..., below, :] == 0)


@pytest.mark.gpu
@pytest.mark.parametrize("sign, weighted", [(1, False), (-1, True)])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("n, ell_max, spins, batch, channels", CASES, ids=CASE_IDS)
def test_synthesis_matches_xla(n, ell_max, spins, batch, channels, dtype, mode, sign, weighted):
    rng = np.random.default_rng(3 * n + ell_max + channels)
    plan, ref_plan = _plans(n, ell_max, spins, dtype, mode)
    # Entries below l0 are not zero here: the kernels must ignore them.
    a = _complex(rng, tuple(batch) + (ell_max + 1, 2 * ell_max + 1, len(spins), channels), dtype)
    got = _run(synthesis, jnp.asarray(a), plan, sign, weighted)
    want = _run(synthesis, jnp.asarray(a.astype(np.complex128)), ref_plan, sign, weighted)
    assert got.dtype == np.dtype(dtype)
    _assert_close(got, want, TOL[dtype])


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_spins_above_ell_max_give_zeros(dtype, mode):
    # The public functions reject |s| > ell_max; the kernels must still give zeros.
    n, ell_max, spins = 8, 2, (0, 3, -5)
    rng = np.random.default_rng(5)
    plan, ref_plan = _plans(n, ell_max, spins, dtype, mode)
    x = _complex(rng, (2, n, n, len(spins), 3), dtype)
    a = _complex(rng, (2, ell_max + 1, 2 * ell_max + 1, len(spins), 3), dtype)
    got_a = np.asarray(_run(analysis, jnp.asarray(x), plan, -1, True))
    got_x = np.asarray(_run(synthesis, jnp.asarray(a), plan, 1, False))
    assert np.all(got_a[..., 1:, :] == 0) and np.all(got_x[..., 1:, :] == 0)
    _assert_close(got_a, _run(analysis, jnp.asarray(x.astype(np.complex128)), ref_plan, -1, True), TOL[dtype])
    _assert_close(got_x, _run(synthesis, jnp.asarray(a.astype(np.complex128)), ref_plan, 1, False), TOL[dtype])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_table_and_onthefly_agree_and_cache_clears(dtype):
    from sphcnn_kernels import _cuda

    n, ell_max, spins = 32, 15, (-1, 2)
    rng = np.random.default_rng(11)
    x = jnp.asarray(_complex(rng, (3, n, n, len(spins), 5), dtype))
    table_plan, _ = _plans(n, ell_max, spins, dtype, "table")
    otf_plan, _ = _plans(n, ell_max, spins, dtype, "onthefly")
    first = np.asarray(_run(analysis, x, table_plan, -1, True))
    otf = np.asarray(_run(analysis, x, otf_plan, -1, True))
    _assert_close(otf, first, TOL[dtype])
    assert _cuda.clear_table_cache() >= 1
    assert _cuda.clear_table_cache() == 0
    again = np.asarray(_run(analysis, x, table_plan, -1, True))  # table rebuilt
    np.testing.assert_array_equal(again, first)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_forward_inverse_round_trip_default_mode(dtype):
    ell_max, spins = 31, (0, 1, -2)  # n = 64
    rng = np.random.default_rng(2)
    a = random_coefficients(rng, (2,), ell_max, spins, 3, dtype)
    x = sk.inverse(jnp.asarray(a), spins, backend="ffi")
    back = sk.forward(x, spins, backend="ffi")
    _assert_close(back, a, 10 * TOL[dtype])


@pytest.mark.gpu
def test_onthefly_round_trip_ell_1023():
    n, ell_max, spins = 2048, 1023, (0, 2)
    plan = get_plan(n, ell_max, spins, "complex128", "ffi", "highest")
    assert ffi_backend.cuda_mode(plan) == "onthefly"
    rng = np.random.default_rng(1023)
    a = random_coefficients(rng, (), ell_max, spins, 1, np.complex128)
    x = sk.inverse(jnp.asarray(a), spins, n=n, backend="ffi")
    assert x.shape == (n, n, len(spins), 1)
    back = sk.forward(x, spins, ell_max=ell_max, backend="ffi")
    _assert_close(back, a, 1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
def test_gradients(mode):
    n, ell_max, spins = 8, 3, (0, 1)
    plan = get_plan(n, ell_max, spins, "complex128", "ffi", "highest", mode)
    rng = np.random.default_rng(4)
    x = jnp.asarray(_complex(rng, (2, n, n, len(spins), 2), np.complex128))
    a = jnp.asarray(_complex(rng, (2, ell_max + 1, 2 * ell_max + 1, len(spins), 2), np.complex128))
    check_grads(lambda v: analysis(v, plan, -1, True), (x,), order=2, modes=("fwd", "rev"))
    check_grads(lambda v: synthesis(v, plan, 1, False), (a,), order=2, modes=("fwd", "rev"))
    # Through the public functions (default mode).
    check_grads(lambda v: sk.forward(v, spins, backend="ffi"), (x,), order=1, modes=("rev",))
    check_grads(lambda v: sk.inverse(v, spins, backend="ffi"), (a,), order=1, modes=("rev",))


@pytest.mark.gpu
def test_invalid_calls_raise():
    ffi_backend._register("cuda")
    n, ell_max = 8, 3
    rings = jnp.zeros((n, 2 * ell_max + 1, 1, 2), jnp.complex64)
    spectral = jax.ShapeDtypeStruct((ell_max + 1, 2 * ell_max + 1, 1, 2), jnp.complex64)
    scale = jnp.ones((n,), jnp.float32)
    spins = np.array([0], np.int64)

    def call(target, operand, out, ring_scale, mode=1, spin_values=spins):
        fn = jax.ffi.ffi_call(target, out)
        return jax.block_until_ready(jax.jit(lambda v, w: fn(v, w, spins=spin_values, mode=np.int64(mode)))(operand, ring_scale))

    ok = call("sphcnn_legendre_analysis_cuda", rings, spectral, scale)
    assert ok.shape == spectral.shape
    with pytest.raises(Exception, match="mode"):
        call("sphcnn_legendre_analysis_cuda", rings, spectral, scale, mode=3)
    with pytest.raises(Exception, match="ring_scale"):
        call("sphcnn_legendre_analysis_cuda", rings, spectral, jnp.ones((n + 2,), jnp.float32))
    with pytest.raises(Exception, match="ring_scale"):
        call("sphcnn_legendre_analysis_cuda", rings, spectral, jnp.ones((n,), jnp.float64))
    with pytest.raises(Exception, match="inconsistent shapes"):
        call("sphcnn_legendre_analysis_cuda", rings, spectral, scale, spin_values=np.array([0, 1], np.int64))
    bad_out = jax.ShapeDtypeStruct((ell_max + 2, 2 * ell_max + 1, 1, 2), jnp.complex64)
    with pytest.raises(Exception, match="inconsistent shapes"):
        call("sphcnn_legendre_analysis_cuda", rings, bad_out, scale)
    coeffs = jnp.zeros(spectral.shape, jnp.complex64)
    ring_shape = jax.ShapeDtypeStruct(rings.shape, jnp.complex64)
    assert call("sphcnn_legendre_synthesis_cuda", coeffs, ring_shape, scale, mode=2).shape == rings.shape
