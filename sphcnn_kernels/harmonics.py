"""Spin-weighted spherical harmonics evaluated at arbitrary points, float64.

sY_lm(theta, phi) = (-1)^s sqrt((2l + 1)/(4 pi)) d^l_{m,-s}(theta) e^{i m phi},
computed by the same C++ recurrence the transforms use.
"""

from __future__ import annotations

import numpy as np

from sphcnn_kernels import validation as checks


def spin_spherical_harmonics(ell_max: int, spin: int, theta, phi) -> np.ndarray:
    """sY_lm at arbitrary points.

    Args:
        ell_max: the largest degree, >= 0.
        spin: the spin s, an integer.
        theta: colatitudes in radians, in [0, pi], an array of shape P.
        phi: longitudes in radians, of shape P.

    Returns:
        complex128 of shape P + (ell_max + 1, 2 ell_max + 1) with sY_lm at
        ``[..., l, ell_max + m]`` and zeros where l < max(|m|, |s|).

    Raises:
        ValueError: a degree, spin or point out of range (named).
    """
    func = "spin_spherical_harmonics"
    ell_max = checks.integer(func, "ell_max", ell_max, minimum=0)
    spin = checks.integer(func, "spin", spin)
    theta = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    if theta.shape != phi.shape:
        raise ValueError(f"{func}: arguments 'theta' {theta.shape} and 'phi' {phi.shape} must have the same shape")
    if not (np.all(np.isfinite(theta)) and np.all((theta >= 0) & (theta <= np.pi))):
        raise ValueError(f"{func}: argument 'theta' must lie in [0, pi] (colatitude in radians)")
    from sphcnn_kernels import _cpu

    lam = _cpu.spin_legendre(ell_max, [spin], theta.ravel())[0]  # (P, M, L)
    lam = np.swapaxes(lam, -1, -2).reshape(theta.shape + (ell_max + 1, 2 * ell_max + 1))
    m = np.arange(-ell_max, ell_max + 1)
    return lam * np.exp(1j * m * phi[..., None, None])
