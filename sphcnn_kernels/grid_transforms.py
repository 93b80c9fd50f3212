"""Spin-weighted spherical harmonic transforms on any :mod:`sphcnn_kernels.grids` grid, in pure JAX.

Conventions (docs/design.md, "Conventions"): sY_lm(theta, phi) = (-1)^s
sqrt((2l + 1)/(4 pi)) d^l_{m,-s}(theta) e^{i m phi}; the forward transform is
a_lm = integral f conj(sY_lm) dOmega, the inverse f = sum_lm a_lm sY_lm.

Layouts: maps (..., nlat, nlon, n_spins, n_channels) on latitude-longitude
grids, (..., npix, n_spins, n_channels) on HEALPix; coefficients
(..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels) with a_lm at
[l, ell_max + m] and zeros where l < max(|m|, |s|). With ``real=True`` (spin 0
only): real maps and the m >= 0 half, (..., ell_max + 1, ell_max + 1, 1, C)
with a_lm at [l, m] (a_{l,-m} = (-1)^m conj(a_lm) is implied), computed with
rfft/irfft on latitude-longitude grids.

How (the "xla" path of grids): ring j holds n_j points phi_jk = phi0_j +
2 pi k / n_j. The longitude stage gives the ring means
F_j(m) = mean_k f(theta_j, phi_jk) e^{-i m phi_jk}, order m at frequency bin
m mod n_j: one FFT on latitude-longitude grids (rfft with ``real=True``); on
HEALPix, whose rings have up to 2 nside different lengths, one batched chirp-z
transform (Bluestein's FFT convolution, :func:`chirp_constants`) for all rings
at once with the offsets' phases e^{-i m phi0_j} folded in (an FFT per ring
length would compile a program per length: seconds at nside = 32). Then
a_lm = sum_j A_{s,m,l,j} F_j(m) with a table A computed once in float64
(:func:`analysis_table`, cached per grid, ell_max, spins, dtype; the inverse
has its own, :func:`synthesis_table`) from the C++ recurrence
``sphcnn_kernels._cpu.spin_legendre`` giving lambda_{l,m,s}(theta) = sY_lm(theta, 0):

- quadrature grids (equiangular, gauss_legendre, driscoll_healy) and HEALPix:
  A = w_j lambda_{l,m,s}(theta_j), w the grid's ring weights;
- mw and mwss: the sampling theorem of McEwen & Wiaux (IEEE TSP 59, 5876,
  2011): F_m is resampled exactly onto L Gauss-Legendre rings with the
  theta-periodic extension of parity (-1)^(m+s)
  (:func:`sphcnn_kernels.grids.sampling_theorem_resampling`) and integrated
  there; A is that composition.

The inverse is f(theta_j, phi_jk) = sum_m e^{i m phi_jk} sum_l a_lm lambda_{l,m,s}(theta_j):
the orders are folded onto the n_j frequency bins (order m adds to bin
m mod n_j), so the inverse is exact at the grid points for any ell_max, also
when n_j < 2 ell_max + 1 (HEALPix polar rings, coarse longitudes). The forward
transform requires ell_max <= grid.exact_ell_max (which includes
2 ell_max + 1 <= nlon) except on HEALPix, where it is approximate and refined by
Jacobi iterations a <- a + forward(f - inverse(a)), as healpy's map2alm ``iter``.

Everything is jnp: differentiable with jax.grad, batched with jax.vmap; each
call runs a jitted program (one per grid, ell_max and options) that takes the
cached tables as operands.

:func:`ring_analysis` and :func:`ring_synthesis` are the same stages on the
quadrature latitude-longitude grids with a sign of the longitude exponent and a
ring scale of choice: the references of the grid ops
(:mod:`sphcnn_kernels.ops.grid_analysis`, :mod:`sphcnn_kernels.ops.grid_synthesis`)
through which :class:`sphcnn_kernels.SphericalTransform` runs those grids.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.backends.fourier import longitude_dft, orders_to_bins
from sphcnn_kernels.grids import Grid, sampling_theorem_resampling

__all__ = ["analysis_table", "chirp_constants", "forward", "inverse", "ring_analysis", "ring_scale", "ring_synthesis",
           "shape_help", "synthesis_table", "transform_forward", "transform_inverse"]

_COMPLEX = {np.dtype(np.float32): np.dtype(np.complex64), np.dtype(np.float64): np.dtype(np.complex128),
            np.dtype(np.complex64): np.dtype(np.complex64), np.dtype(np.complex128): np.dtype(np.complex128)}


# --- tables -------------------------------------------------------------------------------


def _legendre(theta: np.ndarray, ell_max: int, spins: tuple[int, ...], real: bool) -> np.ndarray:
    """lambda_{l,m,s}(theta), float64 (S, len(theta), M, ell_max + 1), orders -ell_max .. ell_max
    (M = 2 ell_max + 1) or 0 .. ell_max when real."""
    from sphcnn_kernels import _cpu

    table = _cpu.spin_legendre(ell_max, list(spins), np.asarray(theta, np.float64))
    return table[:, :, ell_max:] if real else table


def _rounded(table: np.ndarray, axes: tuple[int, ...], real_dtype) -> np.ndarray:
    """float64 (S, P, M, L) -> read-only, transposed by `axes`, of real_dtype."""
    out = np.ascontiguousarray(np.transpose(table, axes), dtype=real_dtype)
    out.setflags(write=False)
    return out


def _real_dtype(dtype: str):
    return np.float32 if dtype == "complex64" else np.float64


@functools.lru_cache(maxsize=None)
def analysis_table(grid: Grid, ell_max: int, spins: tuple[int, ...], dtype: str,
                   real: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The constants of the forward transform on `grid`, built once in float64 and
    rounded once to `dtype`'s precision: a_lm = sum_j A[s, m, l, j] w_j F_j(m).

    Args:
        grid: the grid.
        ell_max: band limit.
        spins: the spins of the spin axis.
        dtype: 'complex64' or 'complex128'.
        real: the m >= 0 table of the real (spin 0) transform.

    Returns:
        (A, weights): A, (S, M, ell_max + 1, n_rings) with M = 2 ell_max + 1
        (orders -ell_max .. ell_max) or ell_max + 1 (orders 0 .. ell_max when
        real): lambda_{l,m,s}(theta_j) on quadrature grids and HEALPix, with
        weights the ring weights w_j (n_rings,) in steradians; on mw and mwss the
        sampling-theorem composition (module docstring), weights None.
        Read-only arrays of the real dtype.
    """
    real_dtype = _real_dtype(dtype)
    if grid.analysis_method != "sampling_theorem":
        weights = grid.weights.astype(real_dtype)
        weights.setflags(write=False)
        return _rounded(_legendre(grid.theta, ell_max, spins, real), (0, 2, 3, 1), real_dtype), weights
    theta_gl, w_gl, even, odd = sampling_theorem_resampling(grid.params[0], grid.kind)
    weighted = _legendre(theta_gl, ell_max, spins, real) * (2.0 * np.pi * w_gl)[:, None, None]  # (S, G, M, L)
    n_spins, n_gl, n_orders, degrees = weighted.shape
    flat = weighted.reshape(n_spins, n_gl, n_orders * degrees)
    shape = (n_spins, even.shape[1], n_orders, degrees)
    m = np.arange(0 if real else -ell_max, ell_max + 1)
    parity = (-1.0) ** ((m[None, :] + np.asarray(spins)[:, None]) % 2)  # (S, M): G_m(-theta) = parity G_m(theta)
    table = (even.T @ flat).reshape(shape) + parity[:, None, :, None] * (odd.T @ flat).reshape(shape)
    return _rounded(table, (0, 2, 3, 1), real_dtype), None


@functools.lru_cache(maxsize=None)
def synthesis_table(grid: Grid, ell_max: int, spins: tuple[int, ...], dtype: str, real: bool) -> np.ndarray:
    """The constants of the inverse transform on `grid`, built once in float64 and
    rounded once to `dtype`'s precision: lambda_{l,m,s}(theta_j).

    Args:
        grid: the grid.
        ell_max: band limit.
        spins: the spins of the spin axis.
        dtype: 'complex64' or 'complex128'.
        real: the m >= 0 table of the real (spin 0) transform.

    Returns:
        (S, M, n_rings, ell_max + 1), M as in :func:`analysis_table`: the degree
        axis last, the faster layout of this contraction on CPUs (measured 4x
        against the analysis table's layout). Read-only, of the real dtype.
    """
    return _rounded(_legendre(grid.theta, ell_max, spins, real), (0, 2, 1, 3), _real_dtype(dtype))


@functools.lru_cache(maxsize=None)
def _device_constants(grid: Grid, ell_max: int, spins: tuple[int, ...], dtype: str, real: bool,
                      direction: str) -> tuple:
    """The tables of one direction ('analysis': (A, weights, chirp); 'synthesis':
    (lambda, chirp)) as device arrays, kept: operands of the jitted transforms
    (not constants of their programs, which would compile slowly); chirp is
    :func:`chirp_constants` on HEALPix, else None."""
    with jax.ensure_compile_time_eval():
        chirp = None if grid.is_latlon else tuple(jnp.asarray(c) for c in chirp_constants(grid, ell_max, real, dtype))
        if direction == "synthesis":
            return jnp.asarray(synthesis_table(grid, ell_max, spins, dtype, real)), chirp
        table, weights = analysis_table(grid, ell_max, spins, dtype, real)
        return jnp.asarray(table), None if weights is None else jnp.asarray(weights), chirp


def _fast_length(n: int) -> int:
    """The smallest 5-smooth integer >= n (a fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@functools.lru_cache(maxsize=None)
def chirp_constants(grid: Grid, ell_max: int, real: bool, dtype: str) -> tuple[np.ndarray, ...]:
    """Constants of the longitude stage on grids whose rings differ in length
    (HEALPix), all rings in one batch by Bluestein's chirp-z transform (Bluestein,
    IEEE Trans. Audio Electroacoust. 18, 451, 1970; Rabiner, Schafer & Rader,
    Bell Syst. Tech. J. 48, 1249, 1969).

    With m k = (m^2 + k^2 - (m - k)^2) / 2, the ring sums become convolutions with
    the chirp c_q = e^{i pi q^2 / n_j}:
    sum_k x_k e^{-2 pi i m k / n_j} = conj(c_m) sum_k (x_k conj(c_k)) c_{m-k} and
    sum_m h_m e^{2 pi i m k / n_j} = c_k sum_m (h_m c_m) conj(c_{k-m}), evaluated
    for every ring at once by FFTs of one length N >= n_max + M - 1 (no wrap-around
    for the outputs used). Orders outside a ring's n_j bins alias as the DFT does.

    Args:
        grid: the grid.
        ell_max: band limit.
        real: orders 0 .. ell_max (real maps) instead of -ell_max .. ell_max.
        dtype: 'complex64' or 'complex128'.

    Returns:
        (pixels, pre, kernel, post, h_pre, h_kernel, h_post, flat): pixels (R, n_max)
        the map index of each ring slot (npix for the padding); analysis: pre
        (R, n_max) conj(c_k) / n_j, kernel (R, N) the FFT of c over
        m_0 - (n_max - 1) .. m_0 + M - 1, post (R, M) e^{-i m phi0_j} conj(c_m);
        synthesis: h_pre (R, M) e^{i m phi0_j} c_m (times 2 for m > 0 when real),
        h_kernel (R, N) the FFT of conj(c) over -m_0 - (M - 1) .. n_max - 1 - m_0,
        h_post (R, n_max) c_k; flat (npix,) the ring-slot index r n_max + k of each
        pixel. Read-only arrays.
    """
    n = grid.nphi.astype(np.int64)[:, None]
    n_max = int(n.max())
    orders = np.arange(0 if real else -ell_max, ell_max + 1)
    first, count = int(orders[0]), orders.size
    size = _fast_length(n_max + count - 1)
    k = np.arange(n_max)

    def chirp(q: np.ndarray, sign: int) -> np.ndarray:  # e^{sign i pi q^2 / n_j}, q^2 reduced mod 2 n_j
        return np.exp(sign * 1j * np.pi * ((q.astype(np.int64) ** 2)[None, :] % (2 * n)) / n)

    def kernel(q: np.ndarray, sign: int) -> np.ndarray:
        padded = np.zeros((n.shape[0], size), np.complex128)
        padded[:, : q.size] = chirp(q, sign)
        return np.fft.fft(padded, axis=-1)

    valid = k[None, :] < n
    phi0 = grid.phi0[:, None]
    pixels = np.where(valid, grid.ring_start[:, None] + k[None, :], grid.n_points)
    weight = np.where(orders > 0, 2.0, 1.0) if real else np.ones(count)
    constants = (
        np.where(valid, chirp(k, -1) / n, 0.0),
        kernel(np.arange(first - (n_max - 1), first + count), 1),
        np.exp(-1j * orders * phi0) * chirp(orders, -1),
        np.exp(1j * orders * phi0) * chirp(orders, 1) * weight,
        kernel(np.arange(-first - (count - 1), n_max - first), -1),
        chirp(k, 1),
    )
    flat = (np.repeat(np.arange(grid.n_rings), grid.nphi) * n_max
            + np.arange(grid.n_points) - np.repeat(grid.ring_start, grid.nphi))
    out = (pixels,) + tuple(np.ascontiguousarray(c, dtype=dtype) for c in constants) + (flat,)
    for a in out:
        a.setflags(write=False)
    return out


# --- the longitude stage --------------------------------------------------------------------


def _ring_means(x: jax.Array, grid: Grid, ell_max: int, real: bool, chirp: tuple | None) -> jax.Array:
    """F_j(m) = mean_k x(theta_j, phi_jk) e^{-i m phi_jk}: (..., n_rings, M, S, C)."""
    orders = np.arange(0 if real else -ell_max, ell_max + 1)
    if chirp is not None:  # rings of different lengths: chirp-z, all rings at once
        pixels, pre, kernel, post, _, _, _, _ = chirp
        padded = jnp.concatenate([x, jnp.zeros(x.shape[:-3] + (1,) + x.shape[-2:], x.dtype)], axis=-3)
        z = padded[..., pixels, :, :] * pre[:, :, None, None]  # (..., R, n_max, S, C)
        size, n_max, count = kernel.shape[1], pixels.shape[1], orders.size
        spectrum = jnp.fft.fft(z, n=size, axis=-3) * kernel[:, :, None, None]
        convolved = jnp.fft.ifft(spectrum, axis=-3)[..., n_max - 1: n_max - 1 + count, :, :]
        return convolved * post[:, :, None, None]
    # Latitude-longitude: one FFT. The forward transform checked 2 ell_max + 1 <= n, so
    # every order has a bin of its own, m mod n.
    n = grid.shape[1]
    if real:
        return jnp.fft.rfft(x, axis=-3)[..., : ell_max + 1, :, :] / n
    return _rings_to_orders(x, ell_max, -1) / n


def _rings_to_maps(g: jax.Array, grid: Grid, real: bool, chirp: tuple | None) -> jax.Array:
    """Maps f(theta_j, phi_jk) = sum_m g_j(m) e^{i m phi_jk} from g (..., n_rings, M, S, C);
    real: g holds m >= 0 and the sum runs over both signs with g_j(-m) = conj(g_j(m))."""
    n_orders = g.shape[-3]
    ell_max = n_orders - 1 if real else (n_orders - 1) // 2
    orders = np.arange(0 if real else -ell_max, ell_max + 1)
    if chirp is not None:  # rings of different lengths: chirp-z, all rings at once
        pixels, _, _, _, h_pre, h_kernel, h_post, flat = chirp
        size, n_max = h_kernel.shape[1], pixels.shape[1]
        spectrum = jnp.fft.fft(g * h_pre[:, :, None, None], n=size, axis=-3) * h_kernel[:, :, None, None]
        rings = jnp.fft.ifft(spectrum, axis=-3)[..., n_orders - 1: n_orders - 1 + n_max, :, :]
        rings = rings * h_post[:, :, None, None]  # (..., R, n_max, S, C)
        maps = jnp.take(rings.reshape(rings.shape[:-4] + (-1,) + rings.shape[-2:]), flat, axis=-3)
        return maps.real if real else maps
    n = grid.shape[1]  # latitude-longitude: order m adds to bin m mod n of one inverse FFT
    if not real:
        return _orders_to_rings(g, n, 1)
    if 2 * ell_max + 1 <= n:  # every order has a bin of its own: padding, no scatter
        widths = [(0, 0)] * (g.ndim - 3) + [(0, n // 2 + 1 - n_orders), (0, 0), (0, 0)]
        return jnp.fft.irfft(jnp.pad(g, widths), n, axis=-3) * n
    # Hermitian bins 0 .. n // 2 of the full spectrum: order m adds g_m to bin m mod n,
    # and its mirror -m adds conj(g_m) to bin -m mod n; bins past n // 2 go to a
    # discarded slot n // 2 + 1.
    bins, mirror = orders % n, (-orders) % n
    dump = n // 2 + 1
    up = np.where(bins <= n // 2, bins, dump)
    down = np.where((orders > 0) & (mirror <= n // 2), mirror, dump)
    spectrum = jnp.zeros(g.shape[:-3] + (dump + 1,) + g.shape[-2:], g.dtype)
    spectrum = spectrum.at[..., up, :, :].add(g).at[..., down, :, :].add(jnp.conj(g))
    return jnp.fft.irfft(spectrum[..., :dump, :, :], n, axis=-3) * n


def _rings_to_orders(x: jax.Array, ell_max: int, sign: int) -> jax.Array:
    """sum_k x_jk e^{sign i m phi_k} on latitude-longitude rings (phi_k = 2 pi k / n).

    Args:
        x: complex maps (..., n_rings, n, S, C).
        ell_max: the largest order.
        sign: -1 or +1, the sign of the exponent.

    Returns:
        (..., n_rings, 2 ell_max + 1, S, C), orders -ell_max .. ell_max, order m
        read from frequency bin m mod n (aliased where n < 2 ell_max + 1).
    """
    n = x.shape[-3]
    return jnp.take(longitude_dft(x, sign, n), np.arange(-ell_max, ell_max + 1) % n, axis=-3)


def _orders_to_rings(g: jax.Array, n: int, sign: int) -> jax.Array:
    """sum_m g_jm e^{sign i m phi_k} on latitude-longitude rings of n points (phi_k = 2 pi k / n).

    Args:
        g: complex (..., n_rings, 2 ell_max + 1, S, C), orders -ell_max .. ell_max.
        n: points per ring.
        sign: -1 or +1, the sign of the exponent.

    Returns:
        (..., n_rings, n, S, C): order m adds to frequency bin m mod n, so the
        sum is exact at the points also where n < 2 ell_max + 1.
    """
    ell_max = (g.shape[-3] - 1) // 2
    if 2 * ell_max + 1 <= n:  # every order has a bin of its own: no scatter
        return longitude_dft(orders_to_bins(g, n), sign, n)
    bins = np.arange(-ell_max, ell_max + 1) % n
    spectrum = jnp.zeros(g.shape[:-3] + (n,) + g.shape[-2:], g.dtype).at[..., bins, :, :].add(g)
    return longitude_dft(spectrum, sign, n)


# --- the Legendre stage ---------------------------------------------------------------------


def _product(spec: str, z: jax.Array, table: jax.Array) -> jax.Array:
    """einsum of a real table with complex data, as one real product over (re, im)."""
    pair = jnp.stack([z.real, z.imag], axis=-1)
    out = jnp.einsum(spec, pair, table, precision=jax.lax.Precision.HIGHEST)
    return jax.lax.complex(out[..., 0], out[..., 1])


def _analysis(x: jax.Array, constants: tuple, grid: Grid, ell_max: int, real: bool) -> jax.Array:
    table, weights, chirp = constants
    if not real:
        x = x.astype(_COMPLEX[np.dtype(x.dtype)])
    f = _ring_means(x, grid, ell_max, real, chirp)
    if weights is not None:
        f = f * weights[:, None, None, None]
    return _product("...jmscr,smlj->...lmscr", f, table)


def _synthesis(a: jax.Array, constants: tuple, grid: Grid, real: bool) -> jax.Array:
    table, chirp = constants
    return _rings_to_maps(_product("...lmscr,smjl->...jmscr", a, table), grid, real, chirp)


@functools.partial(jax.jit, static_argnames=("grid", "ell_max", "real", "iterations"))
def _forward(x: jax.Array, analysis: tuple, synthesis: tuple | None, grid: Grid, ell_max: int, real: bool,
             iterations: int) -> jax.Array:
    def refine(_, a: jax.Array) -> jax.Array:  # Jacobi refinement (healpy map2alm's iter)
        return a + _analysis(x - _synthesis(a, synthesis, grid, real), analysis, grid, ell_max, real)

    a = _analysis(x, analysis, grid, ell_max, real)
    return jax.lax.fori_loop(0, iterations, refine, a) if iterations else a


_inverse = jax.jit(_synthesis, static_argnames=("grid", "real"))


# --- the signed ring transforms of the grid ops ---------------------------------------------------


@functools.lru_cache(maxsize=None)
def ring_scale(grid: Grid, weighted: bool, dtype: str) -> np.ndarray:
    """The per-ring factor w_j of :func:`ring_analysis` and :func:`ring_synthesis`.

    Args:
        grid: a latitude-longitude grid.
        weighted: w_j = grid.weights[j] / nlon (steradians per point of ring j)
            if True, else 1.
        dtype: 'complex64' or 'complex128': w is of its real dtype.

    Returns:
        Read-only (nlat,) array.
    """
    nlat, nlon = grid.shape
    scale = (grid.weights / nlon if weighted else np.ones(nlat)).astype(_real_dtype(dtype))
    scale.setflags(write=False)
    return scale


def ring_analysis(x: jax.Array, *, grid: Grid, ell_max: int, spins: tuple[int, ...], dtype: str, sign: int,
                  weighted: bool) -> jax.Array:
    """a_lm = sum_j w_j lambda_{l,m,s}(theta_j) sum_k x_jk e^{sign i m phi_k} on a
    latitude-longitude grid (phi_k = 2 pi k / nlon), with lambda_{l,m,s}(theta) =
    sY_lm(theta, 0) and w = :func:`ring_scale`; zero where l < max(|m|, |s|).
    The forward transform on a quadrature grid is (sign -1, weighted); the
    transpose of :func:`ring_synthesis` with the same arguments. Order m reads
    frequency bin m mod nlon, also where nlon < 2 ell_max + 1.

    Args:
        x: maps (..., nlat, nlon, S, C), complex, or real when every spin is 0.
        grid: the grid of the maps (equiangular, gauss_legendre, driscoll_healy).
        ell_max: band limit of the result.
        spins: the spin of each entry of the spin axis.
        dtype: 'complex64' or 'complex128', of the computation and the result.
        sign: -1 or +1, the sign of the longitude exponent.
        weighted: w_j = grid.weights[j] / nlon if True, else 1.

    Returns:
        (..., ell_max + 1, 2 ell_max + 1, S, C) of dtype, a_lm at [l, ell_max + m]
        (x's units times steradians when weighted).
    """
    table, _ = analysis_table(grid, ell_max, spins, dtype, False)
    sums = _rings_to_orders(x.astype(dtype), ell_max, sign)
    if weighted:
        sums = sums * ring_scale(grid, True, dtype)[:, None, None, None]
    return _product("...jmscr,smlj->...lmscr", sums, table)


def ring_synthesis(a: jax.Array, *, grid: Grid, ell_max: int, spins: tuple[int, ...], dtype: str, sign: int,
                   weighted: bool) -> jax.Array:
    """x_jk = w_j sum_m e^{sign i m phi_k} sum_l lambda_{l,m,s}(theta_j) a_lm on a
    latitude-longitude grid, with lambda and w as in :func:`ring_analysis`
    (entries with l < max(|m|, |s|) are ignored). The inverse transform is
    (sign +1, unweighted); the transpose of :func:`ring_analysis` with the same
    arguments. Order m adds to frequency bin m mod nlon.

    Args:
        a: coefficients (..., ell_max + 1, 2 ell_max + 1, S, C), a_lm at
            [l, ell_max + m].
        grid: the grid of the result (equiangular, gauss_legendre, driscoll_healy).
        ell_max: band limit of a.
        spins: the spin of each entry of the spin axis.
        dtype: 'complex64' or 'complex128', of the computation and the result.
        sign: -1 or +1, the sign of the longitude exponent.
        weighted: w_j = grid.weights[j] / nlon if True, else 1.

    Returns:
        Maps (..., nlat, nlon, S, C) of dtype.
    """
    table = synthesis_table(grid, ell_max, spins, dtype, False)
    maps = _orders_to_rings(_product("...lmscr,smjl->...jmscr", a.astype(dtype), table), grid.shape[1], sign)
    if weighted:
        maps = maps * ring_scale(grid, True, dtype)[:, None, None, None]
    return maps


# --- the transforms of checked arguments -----------------------------------------------------------


def transform_forward(x: jax.Array, *, grid: Grid, spins: tuple[int, ...], ell_max: int, real: bool,
                      iterations: int) -> jax.Array:
    """:func:`forward` of arguments already checked (the reference of
    :mod:`sphcnn_kernels.ops.grid_forward`).

    Args:
        x: maps (..., *grid.shape, S, C): complex64/complex128, float32/float64
            when every spin is 0 or real.
        grid, spins, ell_max, real, iterations: as :func:`forward`'s, checked.

    Returns:
        The coefficients of :func:`forward`, of x's complex precision.
    """
    key = (grid, ell_max, spins, _COMPLEX[np.dtype(x.dtype)].name, real)
    synthesis = _device_constants(*key, "synthesis") if iterations else None
    return _forward(x, _device_constants(*key, "analysis"), synthesis, grid, ell_max, real, iterations)


def transform_inverse(a: jax.Array, *, grid: Grid, spins: tuple[int, ...], real: bool) -> jax.Array:
    """:func:`inverse` of arguments already checked (the reference of
    :mod:`sphcnn_kernels.ops.grid_inverse`).

    Args:
        a: coefficients (..., ell_max + 1, 2 ell_max + 1, S, C) (real: (...,
            ell_max + 1, ell_max + 1, 1, C)), complex64/complex128.
        grid, spins, real: as :func:`inverse`'s, checked.

    Returns:
        The maps of :func:`inverse`.
    """
    constants = _device_constants(grid, a.shape[-4] - 1, spins, np.dtype(a.dtype).name, real, "synthesis")
    return _inverse(a, constants, grid, real)


# --- validation and the public functions ----------------------------------------------------------


def _spins(func: str, spins) -> tuple[int, ...]:
    try:
        values = tuple(spins)
    except TypeError:
        values = None
    if (not values or any(not isinstance(s, numbers.Integral) or isinstance(s, bool) for s in values)
            or len(set(values)) != len(values)):
        raise ValueError(f"{func}: argument 'spins' is {spins!r}; expected a non-empty sequence of distinct "
                         "integers, one per entry of the spin axis, e.g. (0,) or (-2, 2)")
    return tuple(int(s) for s in values)


def _grid(func: str, grid) -> Grid:
    if not isinstance(grid, Grid):
        raise ValueError(f"{func}: argument 'grid' is {grid!r}; expected a sphcnn_kernels.grids.Grid, e.g. "
                         "grids.equiangular(721, 1440), grids.gauss_legendre(96, 192) or grids.healpix(64)")
    return grid


def _real_option(func: str, real, spins: tuple[int, ...]) -> bool:
    if not isinstance(real, bool):
        raise ValueError(f"{func}: argument 'real' must be True or False, got {real!r}")
    if real and spins != (0,):
        raise ValueError(f"{func}: real=True takes spins (0,) only (real maps), got spins {spins}; "
                         "use real=False for spin-weighted maps")
    return real


def _check_dtype(func: str, name: str, value, allowed: tuple, hint: str) -> np.dtype:
    dtype = np.dtype(value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype)
    if dtype not in allowed:
        raise ValueError(f"{func}: argument '{name}' has dtype {dtype}; expected one of "
                         f"{tuple(str(d) for d in allowed)} ({hint})")
    if dtype in (np.float64, np.complex128) and not jax.config.jax_enable_x64:
        raise ValueError(f"{func}: argument '{name}' is {dtype} but 64-bit JAX is disabled; call "
                         "jax.config.update('jax_enable_x64', True) first, or pass float32/complex64 data")
    return dtype


def shape_help(grid: Grid, spins: tuple[int, ...]) -> str:
    """The expected map shape on `grid`, and how to add the spin and channel axes."""
    core = ", ".join(str(d) for d in grid.shape)
    return (f"expected (..., {core}, n_spins, n_channels) for {grid!r} with n_spins = {len(spins)} for spins "
            f"{spins}; a single map of shape ({core}{',' if len(grid.shape) == 1 else ''}) becomes "
            "x[..., None, None] (one spin, one channel)")


def forward(x, grid: Grid, spins=(0,), ell_max: int | None = None, *, real: bool = False,
            iterations: int = 0) -> jax.Array:
    """Spin-weighted spherical harmonic coefficients of maps on `grid`.

    Args:
        x: maps (..., *grid.shape, n_spins, n_channels): complex64/complex128,
            or float32/float64 when every spin is 0 (64-bit data needs
            jax_enable_x64); with real=True float32/float64 only.
        grid: the grid of the maps (:mod:`sphcnn_kernels.grids`).
        spins: the spin of each entry of the spin axis, distinct integers.
        ell_max: band limit of the result, max|s| <= ell_max <=
            grid.exact_ell_max (default: grid.exact_ell_max; HEALPix: any,
            default 3 nside - 1 as healpy).
        real: spin-0 real maps in, the m >= 0 coefficients out.
        iterations: Jacobi refinements of the HEALPix analysis (healpy's
            ``iter``; 0 on other grids, which are exact).

    Returns:
        (..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels) complex with
        a_lm = integral f conj(sY_lm) dOmega at [l, ell_max + m] (the harmonics
        are orthonormal on the unit sphere: a_lm has f's units times sr^(1/2)),
        exact for every f band-limited to grid.exact_ell_max (on every grid but
        HEALPix); with real=True (..., ell_max + 1, ell_max + 1, 1, n_channels),
        a_lm at [l, m].

    Raises:
        ValueError: a wrong shape (the message names the grid and the expected
            shape), dtype, spin list, or ell_max beyond the exact band limit.
    """
    func = "grid_transforms.forward"
    grid = _grid(func, grid)
    spins = _spins(func, spins)
    real = _real_option(func, real, spins)
    if real:
        dtype = _check_dtype(func, "x", x, (np.dtype(np.float32), np.dtype(np.float64)),
                             "real=True takes real maps")
    elif all(s == 0 for s in spins):
        dtype = _check_dtype(func, "x", x, tuple(_COMPLEX), "float maps are accepted for spin 0")
    else:
        dtype = _check_dtype(func, "x", x, (np.dtype(np.complex64), np.dtype(np.complex128)),
                             f"spins {spins} are not all 0: spin-weighted maps are complex")
    x = jnp.asarray(x, dtype)
    k = len(grid.shape)
    if x.ndim < k + 2 or tuple(x.shape[-k - 2:-2]) != grid.shape or x.shape[-2] != len(spins):
        raise ValueError(f"{func}: argument 'x' has shape {tuple(x.shape)}; {shape_help(grid, spins)}")
    smallest = max(abs(s) for s in spins)
    exact = grid.exact_ell_max
    if ell_max is None:
        ell_max = 3 * grid.params[0] - 1 if exact is None else exact
        ell_max = max(ell_max, smallest)
    if not isinstance(ell_max, numbers.Integral) or isinstance(ell_max, bool) or ell_max < smallest:
        raise ValueError(f"{func}: argument 'ell_max' is {ell_max!r}; expected an integer >= max|s| = {smallest}")
    ell_max = int(ell_max)
    if exact is not None and ell_max > exact:
        longitudes = int(grid.nphi[0])
        why = (f"; its {longitudes} longitudes resolve orders |m| <= {(longitudes - 1) // 2} only "
               "(2 ell_max + 1 <= nlon)" if 2 * ell_max + 1 > longitudes else "")
        raise ValueError(f"{func}: ell_max = {ell_max} exceeds the exact band limit {exact} of {grid!r} "
                         f"(grid.exact_ell_max){why}; pass ell_max <= {exact}, or sample the data on a grid "
                         "with more rings or longitudes (mwss(L) is exact to L - 1 on the same points as "
                         "equiangular(L + 1, 2 L))")
    if not isinstance(iterations, numbers.Integral) or isinstance(iterations, bool) or iterations < 0:
        raise ValueError(f"{func}: argument 'iterations' is {iterations!r}; expected an integer >= 0")
    if iterations and grid.kind != "healpix":
        raise ValueError(f"{func}: iterations = {iterations} refine the approximate HEALPix analysis only; "
                         f"the analysis on {grid!r} is exact: pass iterations=0")
    return transform_forward(x, grid=grid, spins=spins, ell_max=ell_max, real=real, iterations=int(iterations))


def inverse(coeffs, grid: Grid, spins=(0,), *, real: bool = False) -> jax.Array:
    """Maps on `grid` from spin-weighted spherical harmonic coefficients.

    Args:
        coeffs: (..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels),
            complex64/complex128, a_lm at [l, ell_max + m]; with real=True
            (..., ell_max + 1, ell_max + 1, 1, n_channels), a_lm for m >= 0 at
            [l, m] (the imaginary part of a_l0 is ignored). Any ell_max >= max|s|:
            the maps are exact at the grid points even when ell_max exceeds the
            grid's band limit.
        grid: the grid of the result.
        spins: the spin of each entry of the spin axis.
        real: real spin-0 maps from the m >= 0 half.

    Returns:
        (..., *grid.shape, n_spins, n_channels): f = sum_lm a_lm sY_lm at the
        grid points, complex of coeffs' precision (real float with real=True).

    Raises:
        ValueError: a wrong shape, dtype or spin list (named).
    """
    func = "grid_transforms.inverse"
    grid = _grid(func, grid)
    spins = _spins(func, spins)
    real = _real_option(func, real, spins)
    dtype = _check_dtype(func, "coeffs", coeffs, (np.dtype(np.complex64), np.dtype(np.complex128)),
                         "coefficients are complex")
    coeffs = jnp.asarray(coeffs, dtype)
    shape = tuple(coeffs.shape)
    degrees = shape[-4] if len(shape) >= 4 else 0
    orders = degrees if real else 2 * degrees - 1
    if len(shape) < 4 or degrees < 1 or shape[-3] != orders or shape[-2] != len(spins):
        layout = "(..., ell_max + 1, ell_max + 1, 1, n_channels)" if real else \
            "(..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels)"
        raise ValueError(f"{func}: argument 'coeffs' has shape {shape}; expected {layout} with n_spins = "
                         f"{len(spins)} for spins {spins} (maps on {grid!r} will be (..., "
                         f"{', '.join(str(d) for d in grid.shape)}, n_spins, n_channels)); add spin and channel "
                         "axes to a single coefficient array with coeffs[..., None, None]")
    smallest = max(abs(s) for s in spins)
    if degrees - 1 < smallest:
        raise ValueError(f"{func}: argument 'coeffs' has ell_max = {degrees - 1} < max|s| = {smallest}; "
                         f"a spin-{smallest} field needs ell_max >= {smallest}")
    return transform_inverse(coeffs, grid=grid, spins=spins, real=real)
