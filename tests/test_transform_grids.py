"""SphericalTransform on the grids of sphcnn_kernels.grids: the n x n grid
through the kernels whichever way it is named, other grids through the xla
path, the real fast path against the complex kernels, layouts, and the errors
that name the grid."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sphcnn_kernels as sk
from sphcnn_kernels import grid_transforms as gt
from sphcnn_kernels import grids
from numerics import relative_error
from test_grid_transforms import direct_synthesis, random_coefficients


def test_equiangular_square_grid_is_the_kernel_transform():
    named = sk.SphericalTransform(grids.equiangular(16, 16), (0, 1), backend="ffi")
    assert named == sk.SphericalTransform(16, (0, 1), backend="ffi") and named.n == 16 and named.plan is not None


@pytest.mark.parametrize("grid", [grids.gauss_legendre(9, 17), grids.equiangular(11, 20), grids.mwss(8),
                                  grids.healpix(4)], ids=repr)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_inverse_is_the_direct_sum_and_forward_inverts_it(grid, dtype):
    spins = (0, 2)
    t = sk.SphericalTransform(grid, spins, ell_max=4, dtype=dtype, iterations=3 if grid.kind == "healpix" else 0)
    a = random_coefficients(np.random.default_rng(2), 4, spins, batch=(3,), channels=2)
    maps = t.inverse(jnp.asarray(a, dtype))
    assert maps.shape == (3, *grid.shape, 2, 2) and maps.dtype == dtype
    tolerance = 2e-5 if dtype == np.complex64 else 1e-12
    assert relative_error(maps, direct_synthesis(a, grid, spins)) < tolerance
    back = t.forward(maps)
    assert relative_error(back, a) < (1e-3 if grid.kind == "healpix" else tolerance)


def test_real_path_is_the_m_nonnegative_half_of_the_complex_kernels():
    n, ell_max = 32, 15
    x = jnp.asarray(np.random.default_rng(3).normal(size=(4, n, n, 1, 3)), jnp.float64)
    complex_t = sk.SphericalTransform(n, (0,), dtype="complex128", backend="ffi")
    real_t = sk.SphericalTransform(n, (0,), dtype="complex128", real=True, backend="ffi")
    a, half = complex_t.forward(x), real_t.forward(x)
    assert half.shape == (4, ell_max + 1, ell_max + 1, 1, 3)
    assert relative_error(half, a[..., ell_max:, :, :]) < 1e-13
    ell, m = np.arange(ell_max + 1)[:, None], np.arange(ell_max + 1)[None, :]
    assert not np.any(np.asarray(half)[:, ell < m])
    band_limited = complex_t.inverse(a)
    assert relative_error(real_t.inverse(half), jnp.real(band_limited)) < 1e-13


def test_degree_major_layout_moves_the_degree_axis_first():
    grid = grids.driscoll_healy(6)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, *grid.shape, 1, 1)), jnp.float32)
    batch_major = sk.SphericalTransform(grid, (0,))
    degree_major = sk.SphericalTransform(grid, (0,), layout="degree_major")
    a = degree_major.forward(x)
    assert relative_error(a, jnp.moveaxis(batch_major.forward(x), -4, 0)) < 1e-6
    assert relative_error(degree_major.inverse(a), batch_major.inverse(batch_major.forward(x))) < 1e-6


def test_gradients_flow_through_grid_transforms():
    grid = grids.gauss_legendre(6, 11)
    t = sk.SphericalTransform(grid, (0,), dtype="complex128")
    x = jnp.asarray(np.random.default_rng(5).normal(size=(1, *grid.shape, 1, 1)), jnp.float64)
    loss = lambda v: jnp.sum(jnp.abs(t.forward(v)) ** 2)  # noqa: E731
    grad = jax.grad(loss)(x)
    direction = jnp.asarray(np.random.default_rng(6).normal(size=x.shape))
    eps = 1e-6
    numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
    assert abs(float(jnp.sum(grad * direction)) - float(numeric)) < 1e-6 * abs(float(numeric))


@pytest.mark.parametrize("grid,iterations", [(grids.healpix(2), 1), (grids.mw(5), 0), (grids.mwss(5), 0)], ids=repr)
def test_gradients_of_the_grid_ops_equal_those_of_the_jnp_transforms(grid, iterations):
    """grid_forward and grid_inverse (ops differentiated by the reference's linear
    transpose) against jax.grad through grid_transforms' plain jnp composition."""
    spins, ell_max = (0, 1), 4
    t = sk.SphericalTransform(grid, spins, ell_max=ell_max, dtype="complex128", iterations=iterations)
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(2, *grid.shape, 2, 1)) + 1j * rng.normal(size=(2, *grid.shape, 2, 1)))
    weights = jnp.asarray(rng.normal(size=(ell_max + 1, 2 * ell_max + 1, 2, 1)))
    ours = jax.grad(lambda v: jnp.sum(weights * jnp.abs(t.forward(v)) ** 2))(x)
    plain = jax.grad(lambda v: jnp.sum(weights * jnp.abs(gt.forward(v, grid, spins, ell_max,
                                                                    iterations=iterations)) ** 2))(x)
    assert relative_error(ours, plain) < 1e-12
    a = t.forward(x)
    ours = jax.grad(lambda c: jnp.sum(jnp.abs(t.inverse(c)) ** 3))(a)
    plain = jax.grad(lambda c: jnp.sum(jnp.abs(gt.inverse(c, grid, spins)) ** 3))(a)
    assert relative_error(ours, plain) < 1e-12


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(n=grids.healpix(4), backend="ffi"), r"backend 'ffi' runs the n x n equiangular grid .*healpix\(nside=4\) "
                                              r"runs on backend 'xla'"),
    (dict(n=16, real=True, backend="triton"), r"equiangular\(nlat=16, nlon=16\) with real=True runs on backend "
                                              r"'xla' or 'ffi'"),
    (dict(n=grids.gauss_legendre(8, 15), ell_max=8), r"'ell_max' = 8 exceeds the exact band limit 7 of "
                                                     r"gauss_legendre\(nlat=8, nlon=15\)"),
    (dict(n=16, spins=(0, 1), real=True), r"real=True takes spins \(0,\) only"),
    (dict(n=grids.mw(4), iterations=2), r"iterations = 2 refine the approximate HEALPix analysis only"),
    (dict(n=15), r"argument 'n' must be an even integer >= 4"),
])
def test_bad_options_are_named(kwargs, pattern):
    kwargs.setdefault("spins", (0,))
    with pytest.raises(ValueError, match=pattern):
        sk.SphericalTransform(**kwargs)


def test_map_of_the_wrong_shape_names_the_grid_and_the_axes_to_add():
    t = sk.SphericalTransform(grids.healpix(2), (0,))
    with pytest.raises(ValueError, match=r"argument 'x' has shape \(48,\); expected \(\.\.\., 48, n_spins, "
                                         r"n_channels\) for healpix\(nside=2\).*x\[\.\.\., None, None\]"):
        t.forward(jnp.zeros((48,), jnp.float32))
    with pytest.raises(ValueError, match=r"argument 'coeffs' has shape \(6, 9, 1, 1\); expected \(\.\.\., 6, 11"):
        t.inverse(jnp.zeros((6, 9, 1, 1), jnp.complex64))
