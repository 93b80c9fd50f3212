"""The grid transforms on a CUDA GPU, the xla path (the default of every grid
but n x n there) and the CUDA grid kernels (backend 'ffi'): synthesis against
the direct harmonic sum in float64, and analysis inverting it to the grid's
exact band limit, in complex64 and complex128, the real path included.
Skipped without a GPU (conftest.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sphcnn_kernels as sk
from sphcnn_kernels import grids
from numerics import relative_error
from test_grid_transforms import direct_synthesis, random_coefficients

GRIDS = [grids.equiangular(31, 64), grids.gauss_legendre(16, 31), grids.mwss(12), grids.healpix(8)]


@pytest.mark.gpu
@pytest.mark.parametrize("grid", GRIDS, ids=repr)
@pytest.mark.parametrize("dtype,tolerance", [(np.complex64, 2e-5), (np.complex128, 1e-12)])
def test_grid_transforms_on_the_gpu(grid, dtype, tolerance):
    spins, ell_max = (0, 2), 7
    t = sk.SphericalTransform(grid, spins, ell_max=ell_max, dtype=dtype, iterations=4 if grid.kind == "healpix" else 0)
    a = random_coefficients(np.random.default_rng(7), ell_max, spins, batch=(2,), channels=3)
    maps = jax.jit(t.inverse)(jnp.asarray(a, dtype))
    assert next(iter(maps.devices())).platform == "gpu"
    assert relative_error(maps, direct_synthesis(a, grid, spins)) < tolerance
    back = jax.jit(t.forward)(maps)
    assert relative_error(back, a) < (1e-3 if grid.kind == "healpix" else tolerance)


@pytest.mark.gpu
def test_real_path_on_the_gpu_is_the_m_nonnegative_half():
    grid = grids.equiangular(33, 64)
    x = jnp.asarray(np.random.default_rng(8).normal(size=(2, *grid.shape, 1, 2)), jnp.float64)
    full = sk.SphericalTransform(grid, (0,), dtype="complex128").forward(x)
    half = sk.SphericalTransform(grid, (0,), dtype="complex128", real=True).forward(x)
    ell_max = half.shape[-4] - 1
    assert relative_error(half, full[..., ell_max:, :, :]) < 1e-12


KERNEL_GRIDS = [grids.equiangular(31, 64), grids.equiangular(721, 1440), grids.gauss_legendre(16, 31),
                grids.driscoll_healy(8)]


@pytest.mark.gpu
@pytest.mark.parametrize("grid", KERNEL_GRIDS, ids=repr)
@pytest.mark.parametrize("dtype,tolerance", [(np.complex64, 2e-5), (np.complex128, 1e-12)])
def test_grid_kernels_on_the_gpu(grid, dtype, tolerance):
    """The CUDA grid targets (backend 'ffi') against the float64 direct sum, and their round trip."""
    spins, ell_max = (0, 2), 7
    t = sk.SphericalTransform(grid, spins, ell_max=ell_max, dtype=dtype, backend="ffi")
    a = random_coefficients(np.random.default_rng(9), ell_max, spins, batch=(2,), channels=3)
    inverse, forward = jax.jit(t.inverse), jax.jit(t.forward)
    assert "sphcnn_grid_synthesis" in inverse.lower(jnp.asarray(a, dtype)).as_text()
    maps = inverse(jnp.asarray(a, dtype))
    assert next(iter(maps.devices())).platform == "gpu"
    assert relative_error(maps, direct_synthesis(a, grid, spins)) < tolerance
    assert "sphcnn_grid_analysis" in forward.lower(maps).as_text()
    assert relative_error(forward(maps), a) < tolerance
