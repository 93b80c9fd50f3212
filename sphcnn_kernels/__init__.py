"""sphcnn_kernels: exact spin-weighted spherical harmonic transforms for JAX.

Grid: n x n equiangular with both poles, theta_j = pi j / (n - 1), phi_k = 2 pi k / n.
Harmonics: sY_lm = (-1)^s sqrt((2l + 1)/(4 pi)) d^l_{m,-s}(theta) e^{i m phi}.
Layouts: spatial (..., n, n, n_spins, n_channels); spectral
(..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels), a_lm at [l, ell_max + m],
or degree-major (ell_max + 1, ..., 2 ell_max + 1, n_spins, n_channels).

Public API: :class:`SphericalTransform` (validated once, ``.forward`` and
``.inverse``), :func:`forward`, :func:`inverse`, :func:`rotate`,
:func:`equiangular_grid`, :func:`quadrature_weights`, :func:`spherical_mean`,
:func:`wigner_d`, :func:`wigner_d_half_pi`, :func:`spin_spherical_harmonics`,
:func:`available_backends`; :mod:`sphcnn_kernels.grids` (the grids users
have: ``SphericalTransform(grids.gauss_legendre(96, 192), ...)``) and
:mod:`sphcnn_kernels.interop` (healpy, s2fft and torch-harmonics layouts). The kernel ops (the transforms' primitives and the
fused block ops the layers use) are in :mod:`sphcnn_kernels.ops`, with their
targets per platform; argument checks in :mod:`sphcnn_kernels.validation`.
"""

from sphcnn_kernels import grids, interop
from sphcnn_kernels.backends import available_backends
from sphcnn_kernels.grid import equiangular_grid, quadrature_weights, spherical_mean
from sphcnn_kernels.harmonics import spin_spherical_harmonics
from sphcnn_kernels.plan import Plan, get_plan
from sphcnn_kernels.rotation import rotate
from sphcnn_kernels.transforms import SphericalTransform, forward, inverse
from sphcnn_kernels.wigner import wigner_d, wigner_d_half_pi

__all__ = [
    "Plan",
    "SphericalTransform",
    "available_backends",
    "equiangular_grid",
    "forward",
    "get_plan",
    "grids",
    "interop",
    "inverse",
    "quadrature_weights",
    "rotate",
    "spherical_mean",
    "spin_spherical_harmonics",
    "wigner_d",
    "wigner_d_half_pi",
]
