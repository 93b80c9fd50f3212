"""Converters between sphcnn's coefficient layout and those of healpy (and ducc0),
s2fft and torch-harmonics.

sphcnn (docs/design.md, "Conventions"): a_lm = integral f conj(sY_lm) dOmega with
sY_lm = (-1)^s sqrt((2l + 1)/(4 pi)) d^l_{m,-s}(theta) e^{i m phi}: orthonormal,
Condon-Shortley phase included (0Y_lm = scipy.special.sph_harm_y). The
converters act on the last two axes, the core layout (..., ell_max + 1,
2 ell_max + 1) with a_lm at [l, ell_max + m] (or, with ``real=True``, the m >= 0
layout (..., ell_max + 1, ell_max + 1) with a_lm at [l, m]). Coefficients of the
transforms carry spin and channel axes after these: take ``coeffs[..., s, c]``
(or ``numpy.moveaxis(coeffs, (-2, -1), (0, 1))``) first, and add them back with
``[..., None, None]``.

NumPy arrays in give NumPy arrays out (full float64 precision, what healpy wants);
JAX arrays in give JAX arrays out (traceable and differentiable).

Peers, checked numerically in tests/test_interop.py against the libraries
themselves:

- healpy (and ducc0, which uses healpy's packing and spin conventions): real
  fields, m >= 0 packed m-major, a_lm at index m (2 lmax + 1 - m) / 2 + l
  (healpy.Alm.getidx), m <= mmax. Same orthonormal harmonics with the
  Condon-Shortley phase: healpy's alm of a real map are our a_lm for m >= 0, and
  a_{l,-m} = (-1)^m conj(a_lm). Spin |s| > 0 (healpy.alm2map_spin, and
  alm2map(pol=True) for s = 2): healpy's maps (Q, U) from gradient/curl
  coefficients (E, B) are the real and imaginary parts of our spin +|s| field
  f = Q + i U with a_lm = -(E_lm + i B_lm) (all m, E and B extended to m < 0 by
  E_{l,-m} = (-1)^m conj(E_lm)); our spin -|s| field is Q - i U.
- s2fft: identical harmonics and spin sign for every spin and sampling (s2fft
  docs, "Notation"; the flm of s2fft.forward are our a_lm); flm (L, 2L - 1) with
  f_lm at [l, L - 1 + m], L = ell_max + 1: the same array.
- torch-harmonics (RealSHT / InverseRealSHT, scalar fields): x (..., lmax, mmax)
  with x[l, m] for 0 <= m < mmax, l < lmax (lmax counts degrees, exclusive).
  Its forward is x_lm = integral f c_l(norm) (-1)^m Pbar_l^m(cos theta) e^{-i m phi}
  dOmega, its inverse f = sum over l, |m| with the Hermitian extension of
  x_lm Pbar_l^m e^{i m phi} / c_l(norm), where Pbar_l^m is the orthonormal
  Legendre function without the phase (torch_harmonics.legendre.legpoly):
  norm="ortho" (default), c_l = 1: x_lm = a_lm; "four-pi": c_l = sqrt(4 pi);
  "schmidt": c_l = sqrt(4 pi / (2l + 1)); csphase=False drops the (-1)^m,
  multiplying x_lm by (-1)^m. Its vector transforms (RealVectorSHT) are not
  covered.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["TORCH_HARMONICS_NORMS", "from_healpy", "from_healpy_spin", "from_s2fft", "from_torch_harmonics",
           "healpy_size", "to_healpy", "to_healpy_spin", "to_s2fft", "to_torch_harmonics"]

# torch-harmonics' norm options of RealSHT that the converters take.
TORCH_HARMONICS_NORMS = ("ortho", "four-pi", "schmidt")


def _xp(a):
    return jnp if isinstance(a, jax.Array) else np


def _as_array(a):
    return a if isinstance(a, jax.Array) else np.asarray(a)


def _nonnegative_int(func: str, name: str, value, minimum: int = 0) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{func}: argument '{name}' is {value!r}; expected an integer >= {minimum}")
    return int(value)


def _core_ell_max(func: str, a, real: bool) -> int:
    """ell_max of a core layout (..., ell_max + 1, 2 ell_max + 1) (or (..., ell_max + 1, ell_max + 1) when real)."""
    shape = tuple(a.shape)
    if len(shape) < 2 or shape[-2] < 1 or shape[-1] != (shape[-2] if real else 2 * shape[-2] - 1):
        layout = "(..., ell_max + 1, ell_max + 1)" if real else "(..., ell_max + 1, 2 ell_max + 1)"
        raise ValueError(f"{func}: argument 'coeffs' has shape {shape}; expected the core layout {layout}: take "
                         "coeffs[..., s, c] of a transform's (..., l, m, n_spins, n_channels) output first")
    return shape[-2] - 1


def _times(a, factor: np.ndarray):
    """a * factor with the real float64 factor rounded to a's precision (a keeps its dtype)."""
    precision = np.float32 if a.dtype in (np.complex64, np.float32) else np.float64
    return a * factor.astype(precision)


def _orders_nonnegative(a, real: bool):
    """(..., L + 1, L + 1) with a_lm at [l, m], m >= 0, from either core layout."""
    if real:
        return a
    ell_max = a.shape[-2] - 1
    return a[..., ell_max:]


def _full_from_nonnegative(half):
    """(..., L + 1, 2L + 1) from the m >= 0 half of a real (spin 0) field:
    a_{l,-m} = (-1)^m conj(a_lm)."""
    xp = _xp(half)
    ell_max = half.shape[-1] - 1
    m = np.arange(1, ell_max + 1)
    negative = _times(xp.conj(half[..., ::-1][..., :-1]), (-1.0) ** m[::-1])
    return xp.concatenate([negative, half], axis=-1)


def _resized(a, ell_max: int, real: bool):
    """The core layout truncated or zero-padded to ell_max."""
    xp = _xp(a)
    current = a.shape[-2] - 1
    if ell_max <= current:
        a = a[..., : ell_max + 1, :]
        return a[..., : ell_max + 1] if real else a[..., current - ell_max: current + ell_max + 1]
    pad_l = ell_max - current
    widths = [(0, 0)] * (a.ndim - 2) + [(0, pad_l), (0, pad_l) if real else (pad_l, pad_l)]
    return xp.pad(a, widths)


def _degree_mask(ell_max: int, smallest_degree: int) -> np.ndarray:
    """1 where l >= max(|m|, smallest_degree), else 0, (ell_max + 1, 2 ell_max + 1)."""
    ell = np.arange(ell_max + 1)[:, None]
    m = np.arange(-ell_max, ell_max + 1)[None, :]
    return ((ell >= np.abs(m)) & (ell >= smallest_degree)).astype(np.float64)


# --- healpy -----------------------------------------------------------------------------------


def healpy_size(lmax: int, mmax: int | None = None) -> int:
    """Number of healpy coefficients (healpy.Alm.getsize).

    Args:
        lmax: the largest degree.
        mmax: the largest order (default lmax).

    Returns:
        (mmax + 1)(lmax + 1) - mmax (mmax + 1) / 2.
    """
    mmax = lmax if mmax is None else mmax
    return (mmax + 1) * (lmax + 1) - mmax * (mmax + 1) // 2


def _healpy_lm(lmax: int, mmax: int) -> tuple[np.ndarray, np.ndarray]:
    """(l, m) of each healpy index, m-major (healpy.Alm.getlm)."""
    m = np.concatenate([np.full(lmax + 1 - k, k) for k in range(mmax + 1)])
    ell = np.concatenate([np.arange(k, lmax + 1) for k in range(mmax + 1)])
    return ell, m


def _healpy_lmax(func: str, size: int, mmax: int | None) -> int:
    """lmax of `size` packed coefficients with mmax (default lmax), as healpy.Alm.getlmax."""
    for lmax in range(int(np.sqrt(2 * size)) + 2):
        if healpy_size(lmax, lmax if mmax is None else min(mmax, lmax)) == size:
            return lmax
    raise ValueError(f"{func}: argument 'alm' has {size} coefficients on its last axis, which is no healpy size "
                     f"(mmax={mmax}); pass lmax explicitly, or check the array (healpy.Alm.getsize(lmax, mmax))")


def to_healpy(coeffs, lmax: int | None = None, mmax: int | None = None, *, real: bool = False):
    """healpy's packed alm of a real (spin-0) field.

    Args:
        coeffs: (..., ell_max + 1, 2 ell_max + 1) our a_lm (or, real=True,
            (..., ell_max + 1, ell_max + 1) with m >= 0); the m >= 0 half is
            used (a real field's a_{l,-m} = (-1)^m conj(a_lm) is implied).
        lmax: healpy's lmax (default ell_max; larger pads with zeros).
        mmax: healpy's mmax (default lmax).
        real: the input is the m >= 0 layout.

    Returns:
        (..., healpy_size(lmax, mmax)) complex, a_lm at healpy.Alm.getidx(lmax, l, m).

    Raises:
        ValueError: a wrong shape or an lmax/mmax out of range.
    """
    func = "interop.to_healpy"
    coeffs = _as_array(coeffs)
    ell_max = _core_ell_max(func, coeffs, real)
    lmax = ell_max if lmax is None else _nonnegative_int(func, "lmax", lmax)
    mmax = lmax if mmax is None else _nonnegative_int(func, "mmax", mmax)
    if mmax > lmax:
        raise ValueError(f"{func}: argument 'mmax' is {mmax}; expected mmax <= lmax = {lmax}")
    half = _orders_nonnegative(_resized(coeffs, lmax, real), real)
    ell, m = _healpy_lm(lmax, mmax)
    return half[..., ell, m]


def from_healpy(alm, lmax: int | None = None, mmax: int | None = None, *, real: bool = False):
    """Our coefficients of a real (spin-0) field from healpy's packed alm.

    Args:
        alm: (..., healpy_size(lmax, mmax)) complex (healpy.map2alm output).
        lmax: healpy's lmax (default: from the size, with mmax = lmax).
        mmax: healpy's mmax (default lmax); orders above it are zero.
        real: return the m >= 0 layout.

    Returns:
        (..., lmax + 1, 2 lmax + 1) with a_lm at [l, lmax + m] and
        a_{l,-m} = (-1)^m conj(a_lm) (real field); real=True:
        (..., lmax + 1, lmax + 1) with a_lm at [l, m]. Add spin and channel axes
        with ``[..., None, None]`` for :func:`grid_transforms.inverse`.

    Raises:
        ValueError: a size that matches no (lmax, mmax).
    """
    func = "interop.from_healpy"
    alm = _as_array(alm)
    xp = _xp(alm)
    if alm.ndim < 1:
        raise ValueError(f"{func}: argument 'alm' has shape {tuple(alm.shape)}; expected (..., n_alm)")
    if lmax is None:
        lmax = _healpy_lmax(func, alm.shape[-1], mmax)
    lmax = _nonnegative_int(func, "lmax", lmax)
    mmax = lmax if mmax is None else min(_nonnegative_int(func, "mmax", mmax), lmax)
    if alm.shape[-1] != healpy_size(lmax, mmax):
        raise ValueError(f"{func}: argument 'alm' has {alm.shape[-1]} coefficients on its last axis; lmax={lmax}, "
                         f"mmax={mmax} take {healpy_size(lmax, mmax)} (healpy.Alm.getsize)")
    ell, m = np.meshgrid(np.arange(lmax + 1), np.arange(lmax + 1), indexing="ij")
    valid = (m <= ell) & (m <= mmax)
    index = np.where(valid, m * (2 * lmax + 1 - m) // 2 + ell, 0)
    half = alm[..., index] * valid
    if alm.dtype.kind != "c":
        half = half.astype(xp.result_type(alm.dtype, xp.complex64))
    return half if real else _full_from_nonnegative(half)


def _conjugate_field(coeffs, spin: int):
    """Coefficients of conj(f), spin -s, from those of f, spin s (core layout):
    conj(sY_lm) = (-1)^(m + s) (-s)Y_{l,-m} gives b_lm = (-1)^(m + s) conj(a_{l,-m})."""
    xp = _xp(coeffs)
    ell_max = coeffs.shape[-2] - 1
    m = np.arange(-ell_max, ell_max + 1)
    return _times(xp.conj(coeffs[..., ::-1]), (-1.0) ** ((m + spin) % 2))


def to_healpy_spin(coeffs, spin: int, lmax: int | None = None, mmax: int | None = None):
    """healpy's gradient/curl (E, B) alm of our spin-s field (healpy.map2alm_spin's output).

    Args:
        coeffs: (..., ell_max + 1, 2 ell_max + 1) our a_lm of one complex spin-s
            field f: spin s > 0, f = Q + i U; spin s < 0, f = Q - i U, with
            (Q, U) the maps of healpy.alm2map_spin at spin |s|.
        spin: s, nonzero.
        lmax: healpy's lmax (default ell_max).
        mmax: healpy's mmax (default lmax).

    Returns:
        (..., 2, healpy_size(lmax, mmax)): E and B, with E_lm =
        -(a_lm + (-1)^m conj(a_{l,-m})) / 2 and B_lm = i (a_lm - (-1)^m
        conj(a_{l,-m})) / 2 for the spin +|s| coefficients a.

    Raises:
        ValueError: spin 0, a wrong shape or lmax/mmax.
    """
    func = "interop.to_healpy_spin"
    coeffs = _as_array(coeffs)
    spin = _spin(func, spin)
    ell_max = _core_ell_max(func, coeffs, False)
    lmax = ell_max if lmax is None else _nonnegative_int(func, "lmax", lmax)
    a = coeffs if spin > 0 else _conjugate_field(coeffs, spin)
    mirrored = _conjugate_field(a, abs(spin)) * (-1) ** abs(spin)  # (-1)^m conj(a_{l,-m})
    e = -(a + mirrored) / 2
    b = 1j * (a - mirrored) / 2
    xp = _xp(coeffs)
    return xp.stack([to_healpy(e, lmax, mmax), to_healpy(b, lmax, mmax)], axis=-2)


def from_healpy_spin(alm, spin: int, lmax: int | None = None, mmax: int | None = None):
    """Our coefficients of the spin-s field of healpy's gradient/curl alm.

    Args:
        alm: (..., 2, healpy_size(lmax, mmax)), E and B (healpy.map2alm_spin
            output, the [E, B] of healpy.alm2map_spin's input).
        spin: s, nonzero: s = +|s| gives f = Q + i U, s = -|s| gives f = Q - i U,
            with (Q, U) = healpy.alm2map_spin(alm, nside, |s|, lmax).
        lmax: healpy's lmax (default: from the size, with mmax = lmax).
        mmax: healpy's mmax (default lmax).

    Returns:
        (..., lmax + 1, 2 lmax + 1): a_lm = -(E_lm + i B_lm) for s > 0 (zero for
        l < |s|), its conjugate field's coefficients for s < 0.

    Raises:
        ValueError: spin 0, or a wrong shape or size.
    """
    func = "interop.from_healpy_spin"
    alm = _as_array(alm)
    spin = _spin(func, spin)
    if alm.ndim < 2 or alm.shape[-2] != 2:
        raise ValueError(f"{func}: argument 'alm' has shape {tuple(alm.shape)}; expected (..., 2, n_alm): "
                         "E and B stacked on axis -2")
    e = from_healpy(alm[..., 0, :], lmax, mmax)
    b = from_healpy(alm[..., 1, :], lmax, mmax)
    a = _times(-(e + 1j * b), _degree_mask(e.shape[-2] - 1, abs(spin)))
    return a if spin > 0 else _conjugate_field(a, abs(spin))


def _spin(func: str, spin) -> int:
    if not isinstance(spin, numbers.Integral) or isinstance(spin, bool) or spin == 0:
        raise ValueError(f"{func}: argument 'spin' is {spin!r}; expected a nonzero integer (use to_healpy / "
                         "from_healpy for spin 0)")
    return int(spin)


# --- s2fft ------------------------------------------------------------------------------------


def to_s2fft(coeffs, L: int | None = None):
    """s2fft's flm of any spin (s2fft.inverse's input).

    Args:
        coeffs: (..., ell_max + 1, 2 ell_max + 1), our a_lm of a spin-s field.
        L: s2fft's band limit (exclusive; default ell_max + 1; larger pads
            with zeros, smaller truncates).

    Returns:
        (..., L, 2L - 1): f_lm at [l, L - 1 + m], for s2fft with the same spin
        (identical conventions).

    Raises:
        ValueError: a wrong shape or L.
    """
    func = "interop.to_s2fft"
    coeffs = _as_array(coeffs)
    ell_max = _core_ell_max(func, coeffs, False)
    L = ell_max + 1 if L is None else _nonnegative_int(func, "L", L, 1)
    return _resized(coeffs, L - 1, False)


def from_s2fft(flm, ell_max: int | None = None):
    """Our coefficients from s2fft's flm (s2fft.forward's output), any spin.

    Args:
        flm: (..., L, 2L - 1), f_lm at [l, L - 1 + m].
        ell_max: our band limit (default L - 1).

    Returns:
        (..., ell_max + 1, 2 ell_max + 1) with a_lm at [l, ell_max + m], for the
        same spin.

    Raises:
        ValueError: a wrong shape or ell_max.
    """
    func = "interop.from_s2fft"
    flm = _as_array(flm)
    shape = tuple(flm.shape)
    if len(shape) < 2 or shape[-2] < 1 or shape[-1] != 2 * shape[-2] - 1:
        raise ValueError(f"{func}: argument 'flm' has shape {shape}; expected (..., L, 2L - 1) (s2fft.flm_shape)")
    ell_max = shape[-2] - 1 if ell_max is None else _nonnegative_int(func, "ell_max", ell_max)
    return _resized(flm, ell_max, False)


# --- torch-harmonics ----------------------------------------------------------------------------


def _torch_harmonics_factor(func: str, ell_max: int, norm: str, csphase) -> np.ndarray:
    """x_lm / a_lm of torch-harmonics' RealSHT, (ell_max + 1, ell_max + 1) over (l, m >= 0)."""
    if norm not in TORCH_HARMONICS_NORMS:
        raise ValueError(f"{func}: argument 'norm' is {norm!r}; expected one of {TORCH_HARMONICS_NORMS} "
                         "(torch-harmonics' RealSHT norm)")
    if not isinstance(csphase, bool):
        raise ValueError(f"{func}: argument 'csphase' must be True or False, got {csphase!r}")
    ell = np.arange(ell_max + 1)[:, None]
    m = np.arange(ell_max + 1)[None, :]
    scale = {"ortho": np.ones_like(ell, dtype=np.float64), "four-pi": np.full(ell.shape, np.sqrt(4.0 * np.pi)),
             "schmidt": np.sqrt(4.0 * np.pi / (2.0 * ell + 1.0))}[norm]
    sign = np.ones(m.shape) if csphase else (-1.0) ** m
    return scale * sign * (ell >= m)


def to_torch_harmonics(coeffs, lmax: int | None = None, mmax: int | None = None, *, norm: str = "ortho",
                       csphase: bool = True, real: bool = False):
    """torch-harmonics' RealSHT coefficients of a real (spin-0) field.

    Args:
        coeffs: (..., ell_max + 1, 2 ell_max + 1) our a_lm (or, real=True, the
            m >= 0 layout); the m >= 0 half is used.
        lmax: torch-harmonics' lmax, the number of degrees (default ell_max + 1).
        mmax: its number of orders (default lmax).
        norm: torch-harmonics' norm, one of TORCH_HARMONICS_NORMS.
        csphase: torch-harmonics' csphase.
        real: the input is the m >= 0 layout.

    Returns:
        (..., lmax, mmax) complex: x[l, m] = c_l(norm) (+-1)^m a_lm (module
        docstring), zero for m > l.

    Raises:
        ValueError: a wrong shape, size, norm or csphase.
    """
    func = "interop.to_torch_harmonics"
    coeffs = _as_array(coeffs)
    ell_max = _core_ell_max(func, coeffs, real)
    lmax = ell_max + 1 if lmax is None else _nonnegative_int(func, "lmax", lmax, 1)
    mmax = lmax if mmax is None else _nonnegative_int(func, "mmax", mmax, 1)
    if mmax > lmax:
        raise ValueError(f"{func}: argument 'mmax' is {mmax}; expected mmax <= lmax = {lmax}")
    half = _orders_nonnegative(_resized(coeffs, lmax - 1, real), real)
    return _times(half, _torch_harmonics_factor(func, lmax - 1, norm, csphase))[..., :mmax]


def from_torch_harmonics(x, ell_max: int | None = None, *, norm: str = "ortho", csphase: bool = True,
                         real: bool = False):
    """Our coefficients of a real (spin-0) field from torch-harmonics' RealSHT output.

    Args:
        x: (..., lmax, mmax) complex, x[l, m] for m >= 0, mmax <= lmax.
        ell_max: our band limit (default lmax - 1).
        norm: torch-harmonics' norm, one of TORCH_HARMONICS_NORMS.
        csphase: torch-harmonics' csphase.
        real: return the m >= 0 layout.

    Returns:
        (..., ell_max + 1, 2 ell_max + 1) with a_lm at [l, ell_max + m] and
        a_{l,-m} = (-1)^m conj(a_lm); real=True: (..., ell_max + 1, ell_max + 1).

    Raises:
        ValueError: a wrong shape, norm or csphase.
    """
    func = "interop.from_torch_harmonics"
    x = _as_array(x)
    xp = _xp(x)
    shape = tuple(x.shape)
    if len(shape) < 2 or shape[-2] < 1 or not 1 <= shape[-1] <= shape[-2]:
        raise ValueError(f"{func}: argument 'x' has shape {shape}; expected (..., lmax, mmax) with "
                         "1 <= mmax <= lmax (torch-harmonics RealSHT output)")
    lmax = shape[-2]
    half = xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, lmax - shape[-1])])
    factor = _torch_harmonics_factor(func, lmax - 1, norm, csphase)
    if x.dtype.kind != "c":
        half = half.astype(xp.result_type(x.dtype, xp.complex64))
    half = _times(half, np.divide(1.0, factor, out=np.zeros_like(factor), where=factor != 0))
    ell_max = lmax - 1 if ell_max is None else _nonnegative_int(func, "ell_max", ell_max)
    half = _resized(half, ell_max, True)
    return half if real else _full_from_nonnegative(half)
