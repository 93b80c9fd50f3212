"""Forward and inverse spin-weighted spherical harmonic transforms.

Conventions
-----------
Grid: n x n equiangular with both poles, theta_j = pi j / (n - 1),
phi_k = 2 pi k / n, n even (see :mod:`sphcnn_kernels.grid`).

Harmonics: sY_lm(theta, phi) = (-1)^s sqrt((2l + 1)/(4 pi)) d^l_{m,-s}(theta) e^{i m phi},
with Wigner's d in the standard convention (d^1_{1,0}(b) = -sin(b)/sqrt(2)); for
s = 0 these are the orthonormal spherical harmonics with the Condon-Shortley
phase (``scipy.special.sph_harm_y``).

Forward: a_lm = integral of f conj(sY_lm) over the sphere, computed with the
exact quadrature of the grid (Clenshaw-Curtis in theta), hence exact for
f band-limited to ell_max. Inverse: f = sum_lm a_lm sY_lm on the grid.

Layouts: spatial (..., n, n, n_spins, n_channels) (lat, lon, spin, channel);
spectral (..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels) with a_lm at
[l, ell_max + m] and exact zeros where l < max(|m|, |s|). Any number of leading
batch axes. All spins of a layer go through one call.

Both transforms are linear JAX primitives (see :mod:`sphcnn_kernels.primitives`):
they work under jit, vmap, grad, jvp and their compositions on every backend.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sphcnn_kernels import _validation as v
from sphcnn_kernels.auto import choose_backend
from sphcnn_kernels.backends import check_backend, current_platform
from sphcnn_kernels.plan import Plan, get_plan
from sphcnn_kernels.primitives import analysis, synthesis


def _resolve_backend(func: str, backend: str, direction: str, n: int) -> str:
    platform = current_platform()
    if backend == "auto":
        return choose_backend(platform, direction, n)
    check_backend(func, backend, platform)
    return backend


def _check_layout(func: str, name: str, shape: tuple[int, ...], spins: tuple[int, ...], layout: str) -> None:
    if len(shape) < 4 or shape[-2] != len(spins):
        raise ValueError(
            f"{func}: argument '{name}' has shape {shape}; expected {layout} with n_spins = {len(spins)} "
            f"for spins {spins}"
        )


def _check_layout_name(func: str, layout) -> str:
    if layout not in ("batch_major", "degree_major"):
        raise ValueError(f"{func}: argument 'layout' must be 'batch_major' or 'degree_major', got {layout!r}")
    return layout


def forward_plan(x_shape, x_dtype, spins, ell_max=None, backend="auto", precision="highest",
                 layout="batch_major") -> Plan:
    """Validate forward() arguments and return its plan."""
    func = "forward"
    spins = v.check_spins(func, spins)
    _check_layout(func, "x", tuple(x_shape), spins, "(..., n, n, n_spins, n_channels)")
    n = v.check_grid_size(func, "x.shape[-4]", x_shape[-4])
    if x_shape[-3] != n:
        raise ValueError(
            f"{func}: argument 'x' has shape {tuple(x_shape)}; expected (..., n, n, n_spins, n_channels) "
            f"with equal latitude and longitude sizes, got {n} and {x_shape[-3]}"
        )
    dtype = v.complex_dtype(func, "x", x_dtype, spins)
    if ell_max is None:
        ell_max = v.check_ell_max(func, n // 2 - 1, n, spins, name="ell_max (default n/2 - 1)")
    else:
        ell_max = v.check_ell_max(func, ell_max, n, spins)
    precision = v.check_precision(func, precision)
    layout = _check_layout_name(func, layout)
    backend = _resolve_backend(func, backend, "forward", n)
    return get_plan(n, ell_max, spins, dtype.name, backend, precision, layout=layout)


def inverse_plan(a_shape, a_dtype, spins, n=None, backend="auto", precision="highest",
                 layout="batch_major") -> Plan:
    """Validate inverse() arguments and return its plan."""
    func = "inverse"
    spins = v.check_spins(func, spins)
    layout = _check_layout_name(func, layout)
    expected = ("(ell_max + 1, ..., 2 ell_max + 1, n_spins, n_channels)" if layout == "degree_major"
                else "(..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels)")
    _check_layout(func, "coeffs", tuple(a_shape), spins, expected)
    size = a_shape[0] if layout == "degree_major" else a_shape[-4]
    if size < 1 or a_shape[-3] != 2 * size - 1:
        raise ValueError(
            f"{func}: argument 'coeffs' has shape {tuple(a_shape)}; expected {expected} "
            f"({layout}), i.e. axis -3 of size {2 * size - 1}"
        )
    ell_max = size - 1
    n = max(4, 2 * size) if n is None else v.check_grid_size(func, "n", n)
    if ell_max > n // 2 - 1:
        raise ValueError(
            f"{func}: argument 'n' = {n} cannot hold coefficients up to ell_max = {ell_max}; expected n >= {2 * size}"
        )
    v.check_ell_max(func, ell_max, n, spins, name="coeffs.shape[-4] - 1")
    dtype = v.complex_dtype(func, "coeffs", a_dtype, spins)
    precision = v.check_precision(func, precision)
    backend = _resolve_backend(func, backend, "inverse", n)
    return get_plan(n, ell_max, spins, dtype.name, backend, precision, layout=layout)


def forward(x, spins, ell_max: int | None = None, backend: str = "auto", precision: str = "highest",
            layout: str = "batch_major") -> jax.Array:
    """Spin-weighted spherical harmonic coefficients of maps on the grid.

    x: (..., n, n, n_spins, n_channels) complex64/complex128 (float32/float64
        accepted when all spins are 0).
    spins: the spin of each entry of the spin axis, distinct integers.
    ell_max: band limit of the result, max|s| <= ell_max <= n/2 - 1 (default
        n/2 - 1); a smaller value drops the higher degrees (spectral pooling).
    backend: 'auto', 'xla', 'ffi' or 'triton'.
    precision: 'highest' (default; fp32 results to ~1e-6) or 'fast' (lets the XLA
        and Triton backends use TF32 matmuls on GPUs; see the README for its error).
    layout: 'batch_major' (default) or 'degree_major', which puts the degree axis
        first, (ell_max + 1, ..., 2 ell_max + 1, n_spins, n_channels), so that
        per-degree matrix products (convolutions) need no transposition; the C++
        kernels write it directly.

    Returns (..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels) with
    a_lm = integral f conj(sY_lm) dOmega at [l, ell_max + m], exact for
    band-limited f.
    """
    x = jnp.asarray(x)
    plan = forward_plan(x.shape, x.dtype, spins, ell_max, backend, precision, layout)
    return analysis(x.astype(plan.dtype), plan, sign=-1, weighted=True)


def inverse(coeffs, spins, n: int | None = None, backend: str = "auto", precision: str = "highest",
            layout: str = "batch_major") -> jax.Array:
    """Maps on the grid from spin-weighted spherical harmonic coefficients.

    coeffs: (..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels), complex; entries
        with l < max(|m|, |s|) are ignored.
    spins: the spin of each entry of the spin axis.
    n: output grid size, even, >= 2 (ell_max + 1) (default); a larger n samples
        the same band-limited function on a finer grid (spectral upsampling).
    backend, precision, layout: as in :func:`forward` (layout of coeffs).

    Returns (..., n, n, n_spins, n_channels): f(theta_j, phi_k) = sum a_lm sY_lm.
    """
    coeffs = jnp.asarray(coeffs)
    plan = inverse_plan(coeffs.shape, coeffs.dtype, spins, n, backend, precision, layout)
    return synthesis(coeffs.astype(plan.dtype), plan, sign=1, weighted=False)
