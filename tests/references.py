"""Independent float64 references for the tests: the `spherical` package for
spin-weighted harmonics and Wigner matrices, plain NumPy for rotations."""

from __future__ import annotations

import numpy as np
import quaternionic
import spherical


def spherical_sylm(ell_max: int, spin: int, theta, phi) -> np.ndarray:
    """sY_lm from the `spherical` package: complex (P..., ell_max + 1, 2 ell_max + 1),
    sY_lm at [..., l, ell_max + m], zero where l < max(|m|, |s|)."""
    theta = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    wigner = spherical.Wigner(ell_max)
    rotors = quaternionic.array.from_spherical_coordinates(theta.ravel(), phi.ravel())
    values = wigner.sYlm(spin, rotors)  # (P, (ell_max + 1)^2), index l^2 + l + m
    out = np.zeros((theta.size, ell_max + 1, 2 * ell_max + 1), dtype=np.complex128)
    for ell in range(ell_max + 1):
        out[:, ell, ell_max - ell : ell_max + ell + 1] = values[:, ell * ell : (ell + 1) ** 2]
    return out.reshape(theta.shape + out.shape[1:])


def spherical_wigner_d(ell_max: int, beta: float) -> np.ndarray:
    """d^l_{m,m'}(beta) from `spherical` (its D at Euler angles (0, beta, 0)), in the
    layout (ell_max + 1, 2 ell_max + 1, 2 ell_max + 1)."""
    wigner = spherical.Wigner(ell_max)
    big_d = wigner.D(quaternionic.array.from_euler_angles(0.0, beta, 0.0))
    width = 2 * ell_max + 1
    out = np.zeros((ell_max + 1, width, width))
    for ell in range(ell_max + 1):
        for m in range(-ell, ell + 1):
            for mp in range(-ell, ell + 1):
                out[ell, ell_max + m, ell_max + mp] = big_d[wigner.Dindex(ell, m, mp)].real
    return out


def band_limited_mask(ell_max: int, spins) -> np.ndarray:
    """(ell_max + 1, 2 ell_max + 1, S) boolean: l >= max(|m|, |s|)."""
    ell = np.arange(ell_max + 1)[:, None, None]
    m = np.arange(-ell_max, ell_max + 1)[None, :, None]
    s = np.abs(np.asarray(spins))[None, None, :]
    return (ell >= np.abs(m)) & (ell >= s)


def random_coefficients(rng, batch: tuple, ell_max: int, spins, channels: int, dtype=np.complex128) -> np.ndarray:
    """Random band-limited coefficients (*batch, L, 2L - 1, S, C), zero where l < max(|m|, |s|)."""
    shape = batch + (ell_max + 1, 2 * ell_max + 1, len(spins), channels)
    a = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return (a * band_limited_mask(ell_max, spins)[..., None]).astype(dtype)


def random_maps(rng, batch: tuple, n: int, spins, channels: int, dtype=np.complex128) -> np.ndarray:
    """Random (not band-limited) complex maps (*batch, n, n, S, C)."""
    shape = batch + (n, n, len(spins), channels)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_y(b: float) -> np.ndarray:
    c, s = np.cos(b), np.sin(b)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def euler_matrix(alpha: float, beta: float, gamma: float) -> np.ndarray:
    """R_z(alpha) R_y(beta) R_z(gamma)."""
    return rot_z(alpha) @ rot_y(beta) @ rot_z(gamma)


def euler_zyz(matrices: np.ndarray):
    """z-y-z Euler angles (alpha, beta, gamma) of rotation matrices (..., 3, 3)."""
    beta = np.arccos(np.clip(matrices[..., 2, 2], -1.0, 1.0))
    alpha = np.arctan2(matrices[..., 1, 2], matrices[..., 0, 2])
    gamma = np.arctan2(matrices[..., 2, 1], -matrices[..., 2, 0])
    return alpha, beta, gamma


def frames(theta, phi) -> np.ndarray:
    """Standard frames R_z(phi) R_y(theta) at points, (..., 3, 3)."""
    theta = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    ct, st, cp, sp = np.cos(theta), np.sin(theta), np.cos(phi), np.sin(phi)
    zero = np.zeros_like(theta)
    return np.stack(
        [
            np.stack([cp * ct, -sp, cp * st], -1),
            np.stack([sp * ct, cp, sp * st], -1),
            np.stack([-st, zero, ct], -1),
        ],
        -2,
    )
