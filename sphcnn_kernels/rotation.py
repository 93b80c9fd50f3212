"""Rotation of band-limited spin-weighted functions in the spectral domain.

Convention: R(alpha, beta, gamma) = R_z(alpha) R_y(beta) R_z(gamma) (active,
z-y-z Euler angles, radians), acting on coefficients by the Wigner D-matrix
D^l_{m,m'}(R) = exp(-i m alpha) d^l_{m,m'}(beta) exp(-i m' gamma):

    a'_lm = sum_m' D^l_{m,m'}(R) a_lm'.

For spin 0 the result is the rotated function, f'(x) = f(R^-1 x). A spin-s
function is a section, not a function, and picks up a phase: with
g(x) = R_z(phi) R_y(theta) the standard frame at x = (theta, phi) and
(phi', theta', psi') the z-y-z Euler angles of R^-1 g(x),

    f'(theta, phi) = exp(-i s psi') f(theta', phi'),

i.e. the value is carried along with its tangent frame, which the rotation turns
by psi' relative to the standard frame at the new point.

Implementation: d^l(beta) = i^(m-m') sum_k Delta^l_{k,m} Delta^l_{k,m'} exp(-i k beta)
with Delta = d(pi/2) from :func:`wigner_d_half_pi`, so the angles may be traced
(jit, vmap, grad with respect to the angles all work).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels import validation as checks
from sphcnn_kernels.wigner import wigner_d_half_pi


@functools.lru_cache(maxsize=8)
def _delta(ell_max: int) -> np.ndarray:
    return wigner_d_half_pi(ell_max)


def _angle(func: str, name: str, value):
    """A scalar angle: a traced scalar (jit, vmap, grad), or a concrete real,
    finite number (a NaN or infinite angle would make every coefficient NaN)."""
    if isinstance(value, jax.core.Tracer):
        if jnp.ndim(value) != 0:
            raise ValueError(f"{func}: argument '{name}' must be a scalar angle, got shape {jnp.shape(value)}")
        return value
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = np.asarray(None)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{func}: argument '{name}' must be a real number (radians), got {value!r} "
                         f"({type(value).__name__})")
    if array.ndim != 0:
        raise ValueError(f"{func}: argument '{name}' must be a scalar angle, got shape {array.shape}")
    if not np.isfinite(array):
        raise ValueError(f"{func}: argument '{name}' must be a finite angle (radians), got {value!r}")
    return value


def rotate(coeffs, alpha, beta, gamma, spins) -> jax.Array:
    """Rotate band-limited spin-weighted functions by R_z(alpha) R_y(beta) R_z(gamma).

    Args:
        coeffs: (..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels) complex
            (batch-major), as returned by :func:`forward`.
        alpha, beta, gamma: scalar angles in radians: real finite numbers, or
            traced scalars (under jit, vmap or grad with respect to the angles;
            their values are not checked).
        spins: the spins of the spin axis, distinct integers, |s| <= ell_max.

    Returns:
        The coefficients of the rotated functions, same shape and dtype.

    Raises:
        ValueError: a shape, spin set or angle that does not fit (named).
    """
    func = "rotate"
    coeffs = jnp.asarray(coeffs)
    spins = checks.spins(func, "spins", spins)
    shape = coeffs.shape
    if len(shape) < 4 or shape[-3] != 2 * shape[-4] - 1 or shape[-2] != len(spins):
        raise ValueError(
            f"{func}: argument 'coeffs' has shape {shape}; expected (..., ell_max + 1, 2 ell_max + 1, "
            f"n_spins = {len(spins)}, n_channels)"
        )
    dtype = checks.complex_dtype(func, "coeffs", coeffs.dtype, spins)
    alpha, beta, gamma = (_angle(func, name, angle) for name, angle in (("alpha", alpha), ("beta", beta),
                                                                          ("gamma", gamma)))
    ell_max = shape[-4] - 1
    top = max(abs(s) for s in spins)
    if top > ell_max:
        raise ValueError(f"{func}: spins {spins} need coefficients up to ell_max >= {top} (a spin-s function has "
                         f"no degree below |s|), but argument 'coeffs' holds ell_max = {ell_max}")
    real = jnp.finfo(dtype).dtype
    delta = jnp.asarray(_delta(ell_max), dtype=real)  # (L, M, M) [l, k, m]
    m = jnp.arange(-ell_max, ell_max + 1)
    quarter = jnp.asarray(1j, dtype) ** (m % 4)  # i^m
    phase_in = jnp.exp(-1j * m * jnp.asarray(gamma, real)).astype(dtype) * jnp.conj(quarter)
    phase_mid = jnp.exp(-1j * m * jnp.asarray(beta, real)).astype(dtype)
    phase_out = jnp.exp(-1j * m * jnp.asarray(alpha, real)).astype(dtype) * quarter
    hi = jax.lax.Precision.HIGHEST
    a = coeffs.astype(dtype) * phase_in[:, None, None]
    a = jnp.einsum("lkn,...lnsc->...lksc", delta.astype(dtype), a, precision=hi) * phase_mid[:, None, None]
    a = jnp.einsum("lkm,...lksc->...lmsc", delta.astype(dtype), a, precision=hi) * phase_out[:, None, None]
    return a
