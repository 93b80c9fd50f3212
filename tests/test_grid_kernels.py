"""The grid ops (sphcnn_grid_analysis, sphcnn_grid_synthesis) on the quadrature
latitude-longitude grids and SphericalTransform through them: the jnp
reference against a float64 direct harmonic sum (both signs, both ring
scales), the CPU kernels against the reference (float32 and float64, an ERA5
sized grid included), round trips, ducc0, the transposes under grad and
linear_transpose, the real transform of paired maps, backend choice at
lowering, and the errors of the ops."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sphcnn_kernels as sk
from sphcnn_kernels import grid_transforms as gt
from sphcnn_kernels import grids, interop
from sphcnn_kernels.backends import ffi_backend
from sphcnn_kernels.ops import grid_analysis_p, grid_synthesis_p
from numerics import relative_error
from references import random_coefficients, spherical_sylm

GRIDS = [grids.equiangular(7, 16), grids.equiangular(10, 24), grids.gauss_legendre(8, 17), grids.driscoll_healy(6)]
SPIN_SETS = [(0,), (0, 1, -2)]
DTYPES = {np.complex64: (np.float32, 1e-5), np.complex128: (np.float64, 1e-12)}


def widest_ell_max(grid) -> int:
    """The largest band limit whose orders all have a longitude bin of their own."""
    return (grid.shape[1] - 1) // 2


def direct_sum(operand, grid, ell_max, spins, sign, weighted, direction):
    """The ops' definition as a float64 NumPy sum with sY_lm(theta, 0) of the `spherical` package:
    analysis a_lm = sum_j w_j lambda(theta_j) sum_k x_jk e^{sign i m phi_k}, synthesis its transpose."""
    nlat, nlon = grid.shape
    lam = np.stack([spherical_sylm(ell_max, s, grid.theta, np.zeros(nlat)).real for s in spins])  # (S, R, L, M)
    w = grid.weights / nlon if weighted else np.ones(nlat)
    m = np.arange(-ell_max, ell_max + 1)
    phase = np.exp(sign * 1j * np.outer(m, 2 * np.pi * np.arange(nlon) / nlon))  # (M, K)
    if direction == "analysis":
        return np.einsum("srlm,r,mk,...rksc->...lmsc", lam, w, phase, np.asarray(operand, np.complex128))
    return np.einsum("srlm,r,mk,...lmsc->...rksc", lam, w, phase, np.asarray(operand, np.complex128))


def random_operand(rng, grid, ell_max, spins, direction, batch=(2,), channels=2, dtype=np.complex128):
    """Random complex maps (analysis) or band-limited coefficients (synthesis)."""
    if direction == "synthesis":
        return random_coefficients(rng, batch, ell_max, spins, channels, dtype)
    shape = batch + grid.shape + (len(spins), channels)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def bind(direction, operand, **params):
    primitive = grid_analysis_p if direction == "analysis" else grid_synthesis_p
    return jax.jit(lambda v: primitive.bind(v, **params))(operand)


def params_of(grid, ell_max, spins, dtype, sign, weighted, backend):
    return dict(grid=grid, ell_max=ell_max, spins=spins, dtype=np.dtype(dtype).name, sign=sign, weighted=weighted,
                backend=backend)


def sphcnn_custom_calls(fn, arg, platform: str = "cpu") -> list[str]:
    text = jax.jit(fn).trace(arg).lower(lowering_platforms=(platform,)).as_text()
    return re.findall(r"custom_call @(sphcnn_\w+)", text)


@pytest.mark.parametrize("spins", SPIN_SETS, ids=str)
@pytest.mark.parametrize("grid", GRIDS, ids=repr)
def test_reference_is_the_direct_sum(grid, spins):
    rng = np.random.default_rng(0)
    ell_max = widest_ell_max(grid)
    for direction in ("analysis", "synthesis"):
        operand = random_operand(rng, grid, ell_max, spins, direction)
        for sign in (-1, 1):
            for weighted in (False, True):
                got = bind(direction, operand, **params_of(grid, ell_max, spins, np.complex128, sign, weighted,
                                                           "xla"))
                want = direct_sum(operand, grid, ell_max, spins, sign, weighted, direction)
                assert got.dtype == np.complex128 and got.shape == want.shape
                assert relative_error(got, want) < 1e-12, (direction, sign, weighted)
    if spins == (0,):  # real maps of spin 0
        x = rng.standard_normal((2,) + grid.shape + (1, 2))
        got = bind("analysis", x, **params_of(grid, ell_max, spins, np.complex128, -1, True, "xla"))
        assert relative_error(got, direct_sum(x, grid, ell_max, spins, -1, True, "analysis")) < 1e-12


def test_orders_sharing_a_bin_run_the_reference():
    """nlon < 2 ell_max + 1: the kernels do not apply; the reference folds order m onto bin m mod nlon."""
    grid, ell_max, spins = grids.equiangular(7, 5), 4, (0, 2)
    rng = np.random.default_rng(1)
    for direction in ("analysis", "synthesis"):
        operand = random_operand(rng, grid, ell_max, spins, direction)
        params = params_of(grid, ell_max, spins, np.complex128, 1, True, "ffi")
        primitive = grid_analysis_p if direction == "analysis" else grid_synthesis_p
        assert sphcnn_custom_calls(lambda v: primitive.bind(v, **params), operand) == []
        want = direct_sum(operand, grid, ell_max, spins, 1, True, direction)
        assert relative_error(bind(direction, operand, **params), want) < 1e-12


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4, 5, 6))
def reference(direction, operand, grid, ell_max, spins, sign, weighted):
    """The ops' jnp reference in float64."""
    run = gt.ring_analysis if direction == "analysis" else gt.ring_synthesis
    return run(operand, grid=grid, ell_max=ell_max, spins=spins, dtype="complex128", sign=sign, weighted=weighted)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("grid", GRIDS, ids=repr)
def test_kernels_equal_the_reference(grid, dtype):
    real_dtype, tolerance = DTYPES[dtype]
    rng = np.random.default_rng(2)
    ell_max = widest_ell_max(grid)
    for spins in SPIN_SETS:
        for direction in ("analysis", "synthesis"):
            operand = random_operand(rng, grid, ell_max, spins, direction)
            primitive = grid_analysis_p if direction == "analysis" else grid_synthesis_p
            for sign in (-1, 1):
                for weighted in (False, True):
                    params = params_of(grid, ell_max, spins, dtype, sign, weighted, "ffi")
                    calls = sphcnn_custom_calls(lambda v, params=params: primitive.bind(v, **params), operand)
                    assert calls == [f"sphcnn_grid_{direction}"], calls
                    got = bind(direction, operand.astype(dtype), **params)
                    want = reference(direction, operand, grid, ell_max, spins, sign, weighted)
                    assert got.dtype == dtype
                    assert relative_error(got, want) < tolerance, (spins, direction, sign, weighted)
    x = rng.standard_normal((2,) + grid.shape + (1, 3)).astype(real_dtype)  # real spin-0 maps
    got = bind("analysis", x, **params_of(grid, ell_max, (0,), dtype, -1, True, "ffi"))
    assert relative_error(got, reference("analysis", x, grid, ell_max, (0,), -1, True)) < tolerance


def test_kernels_on_an_era5_sized_grid_in_float32():
    """equiangular(721, 1440) (odd ring count, ERA5's 0.25 degree grid), ell_max 32, two maps."""
    grid, ell_max, spins = grids.equiangular(721, 1440), 32, (0, 2)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(grid.shape + (2, 1)) + 1j * rng.standard_normal(grid.shape + (2, 1)))
    a = bind("analysis", x.astype(np.complex64), **params_of(grid, ell_max, spins, np.complex64, -1, True, "ffi"))
    assert relative_error(a, reference("analysis", x, grid, ell_max, spins, -1, True)) < 1e-5
    c = random_coefficients(rng, (), ell_max, spins, 1)
    maps = bind("synthesis", c.astype(np.complex64), **params_of(grid, ell_max, spins, np.complex64, 1, False, "ffi"))
    assert relative_error(maps, reference("synthesis", c, grid, ell_max, spins, 1, False)) < 1e-5


def test_ring_theta_carries_float64_colatitudes_in_two_float32_rows():
    grid = grids.equiangular(721, 1440)
    split = ffi_backend.ring_theta(grid, "complex64")
    assert split.shape == (2, 721) and split.dtype == np.float32
    assert np.max(np.abs(split[0].astype(np.float64) - grid.theta)) > 1e-8  # float32 alone loses them
    assert np.max(np.abs(split.astype(np.float64).sum(axis=0) - grid.theta)) < 1e-14


def test_kernels_run_with_64_bit_jax_off():
    """With 64-bit JAX off, the grid targets get their colatitudes as two float32 rows."""
    grid, spins = grids.gauss_legendre(8, 17), (0, 1)
    a = random_coefficients(np.random.default_rng(8), (2,), 7, spins, 1)
    with jax.enable_x64(False):
        t = sk.SphericalTransform(grid, spins, backend="ffi")
        back = jax.jit(lambda c: t.forward(t.inverse(c)))(a.astype(np.complex64))
    assert back.dtype == np.complex64 and relative_error(back, a) < 1e-5


@pytest.mark.parametrize("backend", ["ffi", "xla"])
@pytest.mark.parametrize("grid", GRIDS, ids=repr)
def test_round_trip_of_band_limited_maps_is_exact(grid, backend):
    spins = (0, 1, -2)
    t = sk.SphericalTransform(grid, spins, dtype="complex128", backend=backend)
    assert t.ell_max == grid.exact_ell_max and t.plan is None
    a = random_coefficients(np.random.default_rng(4), (2,), t.ell_max, spins, 3)
    maps = t.inverse(a)
    assert maps.shape == (2, *grid.shape, 3, 3)
    back = t.forward(maps)
    assert relative_error(back, a) < 1e-12
    assert relative_error(t.inverse(back), maps) < 1e-12


def test_vmap_moves_the_mapped_axis_into_the_batch():
    grid, spins = grids.driscoll_healy(6), (0, 1)
    t = sk.SphericalTransform(grid, spins, dtype="complex128", backend="ffi")
    x = random_operand(np.random.default_rng(9), grid, t.ell_max, spins, "analysis", batch=(2, 3))
    a = jax.vmap(t.forward, in_axes=1)(x)
    assert relative_error(a, jnp.moveaxis(t.forward(x), 1, 0)) < 1e-14
    assert relative_error(jax.vmap(t.inverse, in_axes=1, out_axes=1)(a), t.inverse(a)) < 1e-14


DUCC0_GEOMETRY = {"equiangular": "CC", "gauss_legendre": "GL", "driscoll_healy": "F1"}


@pytest.mark.parametrize("grid", GRIDS, ids=repr)
def test_forward_equals_ducc0(grid):
    """ducc0.sht.experimental.analysis_2d of band-limited maps (CC: both poles; F1: our
    driscoll_healy rings); ducc0's spin-s pair (G, C) is our -(a_G + i a_C) (interop)."""
    ducc0 = pytest.importorskip("ducc0")
    geometry, lmax = DUCC0_GEOMETRY[grid.kind], grid.exact_ell_max
    rng = np.random.default_rng(5)
    for spin in (0, 2):
        shape = (1 if spin == 0 else 2, interop.healpy_size(lmax))  # (T,) or (G, C) in healpy's packing
        alm = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        alm[:, : lmax + 1] = alm[:, : lmax + 1].real  # m = 0 of real fields
        maps = ducc0.sht.experimental.synthesis_2d(alm=alm, spin=spin, lmax=lmax, geometry=geometry,
                                                   ntheta=grid.shape[0], nphi=grid.shape[1])
        want = ducc0.sht.experimental.analysis_2d(map=maps, spin=spin, lmax=lmax, geometry=geometry)
        field = maps[0] if spin == 0 else maps[0] + 1j * maps[1]
        t = sk.SphericalTransform(grid, (spin,), dtype="complex128", backend="ffi")
        ours = np.asarray(t.forward(field[..., None, None]))[..., 0, 0]
        got = interop.to_healpy(ours)[None] if spin == 0 else interop.to_healpy_spin(ours, spin)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=f"spin {spin}")


@pytest.mark.parametrize("grid", [grids.equiangular(10, 24), grids.gauss_legendre(8, 17)], ids=repr)
def test_transposes_are_the_references(grid):
    """linear_transpose of forward is the synthesis (sign -1, weighted), of inverse the
    analysis (sign +1, unweighted), and jax.grad through the kernels equals jax.grad
    through the jnp reference (float64)."""
    spins = (0, 1, -2)
    t = sk.SphericalTransform(grid, spins, dtype="complex128", backend="ffi")
    rng = np.random.default_rng(6)
    x = random_operand(rng, grid, t.ell_max, spins, "analysis")
    a = random_operand(rng, grid, t.ell_max, spins, "synthesis")
    (forward_t,) = jax.jit(jax.linear_transpose(t.forward, x))(a)
    assert relative_error(forward_t, reference("synthesis", a, grid, t.ell_max, spins, -1, True)) < 1e-12
    (inverse_t,) = jax.jit(jax.linear_transpose(t.inverse, a))(x)
    assert relative_error(inverse_t, reference("analysis", x, grid, t.ell_max, spins, 1, False)) < 1e-12
    scalar = sk.SphericalTransform(grid, (0,), dtype="complex128", backend="ffi")
    f = jnp.asarray(rng.standard_normal((2,) + grid.shape + (1, 2)))
    target = jnp.asarray(random_operand(rng, grid, scalar.ell_max, (0,), "synthesis"))

    def loss(v, analysis, synthesis):
        coefficients = analysis(v)
        return jnp.sum(jnp.abs(coefficients - target) ** 2) + jnp.sum(jnp.real(synthesis(coefficients)) * v)

    kernels = jax.jit(jax.grad(loss), static_argnums=(1, 2))(f, scalar.forward, scalar.inverse)
    forward_reference = lambda v: reference("analysis", v, grid, scalar.ell_max, (0,), -1, True)  # noqa: E731
    inverse_reference = lambda c: reference("synthesis", c, grid, scalar.ell_max, (0,), 1, False)  # noqa: E731
    references = jax.jit(jax.grad(loss), static_argnums=(1, 2))(f, forward_reference, inverse_reference)
    assert kernels.dtype == np.float64 and relative_error(kernels, references) < 1e-12
    (real_t,) = jax.jit(jax.linear_transpose(scalar.forward, f))(target)
    assert real_t.dtype == np.float64
    assert relative_error(real_t, jnp.real(reference("synthesis", target, grid, scalar.ell_max, (0,), -1,
                                                     True))) < 1e-12


@pytest.mark.parametrize("batch,channels", [((), 1), ((2,), 1), ((), 3), ((5,), 1)],
                         ids=["1 map", "2 maps", "3 maps", "5 maps"])
def test_real_maps_are_paired_into_complex_transforms(batch, channels):
    grid = grids.equiangular(10, 24)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(batch + grid.shape + (1, channels))
    complex_t = sk.SphericalTransform(grid, (0,), dtype="complex128", backend="ffi")
    real_t = sk.SphericalTransform(grid, (0,), dtype="complex128", backend="ffi", real=True)
    ell_max = real_t.ell_max
    full, half = jax.jit(complex_t.forward)(x), jax.jit(real_t.forward)(x)
    assert half.shape == batch + (ell_max + 1, ell_max + 1, 1, channels) and half.dtype == np.complex128
    assert relative_error(half, full[..., ell_max:, :, :]) < 1e-13
    assert not np.any(np.asarray(half)[..., np.tril(np.ones((ell_max + 1,) * 2)) == 0, :, :])  # l < m
    noisy = np.asarray(half).copy()
    noisy[..., 0, :, :] += 1j * rng.standard_normal(noisy[..., 0, :, :].shape)  # Im a_l0 is ignored
    maps = jax.jit(real_t.inverse)(noisy)
    assert maps.shape == x.shape and maps.dtype == np.float64
    assert relative_error(maps, jnp.real(jax.jit(complex_t.inverse)(full))) < 1e-13
    assert sphcnn_custom_calls(real_t.forward, x) == ["sphcnn_grid_analysis"]


def test_auto_runs_the_kernels_on_cpus_and_the_reference_on_cuda():
    t = sk.SphericalTransform(grids.gauss_legendre(8, 17), (0, 1))
    x = jax.ShapeDtypeStruct((2, 8, 17, 2, 1), jnp.complex64)
    a = jax.ShapeDtypeStruct(t.spectral_shape((2,), 1), jnp.complex64)
    assert sphcnn_custom_calls(t.forward, x) == ["sphcnn_grid_analysis"]
    assert sphcnn_custom_calls(t.inverse, a) == ["sphcnn_grid_synthesis"]
    assert sphcnn_custom_calls(t.forward, x, "cuda") == sphcnn_custom_calls(t.inverse, a, "cuda") == []
    xla = sk.SphericalTransform(grids.gauss_legendre(8, 17), (0, 1), backend="xla")
    assert sphcnn_custom_calls(xla.forward, x) == sphcnn_custom_calls(xla.inverse, a) == []


@pytest.mark.parametrize("call,message", [
    (lambda: grid_analysis_p.bind(jnp.zeros((4, 7, 1, 1), jnp.complex64), **params_of(
        grids.healpix(1), 2, (0,), np.complex64, -1, True, "xla")),
     r"sphcnn_grid_analysis: parameter 'grid' is healpix\(nside=1\); expected an equiangular, gauss_legendre or "
     r"driscoll_healy grid"),
    (lambda: grid_analysis_p.bind(jnp.zeros((8, 16, 1, 1), jnp.complex64), **params_of(
        grids.equiangular(7, 16), 3, (0,), np.complex64, -1, True, "xla")),
     r"sphcnn_grid_analysis: argument 'x' has shape \(8, 16, 1, 1\); expected \(\.\.\., 7, 16, 1, n_channels\)"),
    (lambda: grid_synthesis_p.bind(jnp.zeros((4, 6, 2, 1), jnp.complex64), **params_of(
        grids.equiangular(7, 16), 3, (0, 1), np.complex64, 1, False, "xla")),
     r"sphcnn_grid_synthesis: argument 'a' has shape \(4, 6, 2, 1\); expected \(\.\.\., 4, 7, 2, n_channels\) "
     r"for equiangular\(nlat=7, nlon=16\), ell_max = 3"),
    (lambda: sk.SphericalTransform(grids.gauss_legendre(8, 17), (0,), backend="triton"),
     r"backend 'triton' runs the n x n equiangular grid .* only; gauss_legendre\(nlat=8, nlon=17\) runs on "
     r"backend 'xla' or 'ffi' \(or 'auto'\)"),
])
def test_bad_inputs_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
