"""Sampling grids on the sphere: rings of points, their quadrature and band limits.

A grid is a set of rings of constant colatitude theta_j; ring j holds n_j points
at longitudes phi_jk = phi0_j + 2 pi k / n_j, k = 0 .. n_j - 1. Every grid here
lists its rings from the north pole (theta = 0) to the south pole (theta = pi).

Weights: ``integral of f over the sphere ~= sum_j w_j * mean_k f(theta_j, phi_jk)``
(w in steradians, summing to 4 pi), the convention of
:func:`sphcnn_kernels.quadrature_weights`.

Grids (constructors), with their exact band limit (the largest ell_max for
which the forward transform of :mod:`sphcnn_kernels.grid_transforms` returns
the exact coefficients of every function band-limited to ell_max):

- :func:`equiangular` (nlat, nlon): theta_j = pi j / (nlat - 1), both poles,
  phi_k = 2 pi k / nlon; Clenshaw-Curtis quadrature; exact to
  min((nlat - 1) // 2, (nlon - 1) // 2). ``equiangular(n, n)`` is the n x n
  grid of :class:`sphcnn_kernels.SphericalTransform`; ERA5's 0.25 degree grid
  is ``equiangular(721, 1440)``.
- :func:`gauss_legendre` (nlat, nlon): Gauss-Legendre nodes in cos theta;
  exact to min(nlat - 1, (nlon - 1) // 2).
- :func:`driscoll_healy` (L), :func:`mw` (L), :func:`mwss` (L): the samplings
  "dh", "mw" and "mwss" of s2fft (s2fft.sampling.s2_samples: ``thetas``,
  ``phis_equiang``); exact to L - 1.
- :func:`healpix` (nside): HEALPix in RING ordering (Gorski et al., ApJ 622,
  759, 2005); equal-area weights; no exact band limit (approximate analysis,
  refined by iterations).

Grids are immutable and hashable (equal when built with equal arguments), so
they can be static arguments of jitted functions and keys of caches.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers

import numpy as np

__all__ = ["KINDS", "Grid", "clenshaw_curtis_weights", "driscoll_healy", "equiangular", "fejer_first_weights",
           "gauss_legendre", "healpix", "mw", "mwss", "sampling_theorem_resampling"]

# The kinds of grid, one per constructor.
KINDS = ("equiangular", "gauss_legendre", "driscoll_healy", "mw", "mwss", "healpix")
# Constructor argument names of each kind, in order.
_ARGUMENTS = {
    "equiangular": ("nlat", "nlon"),
    "gauss_legendre": ("nlat", "nlon"),
    "driscoll_healy": ("L",),
    "mw": ("L",),
    "mwss": ("L",),
    "healpix": ("nside",),
}
# Smallest value of each argument of each kind.
_MINIMA = {
    "equiangular": (2, 1),
    "gauss_legendre": (1, 1),
    "driscoll_healy": (1,),
    "mw": (1,),
    "mwss": (1,),
    "healpix": (1,),
}


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclasses.dataclass(frozen=True)
class Grid:
    """A ring-based sampling grid on the sphere; build one with a constructor
    (:func:`equiangular`, :func:`gauss_legendre`, :func:`driscoll_healy`,
    :func:`mw`, :func:`mwss`, :func:`healpix`).

    Args:
        kind: one of ``KINDS``.
        params: the constructor's arguments in order, e.g. (721, 1440) for
            ``equiangular(721, 1440)``.

    Raises:
        ValueError: an unknown kind, or arguments of the wrong number or range.
    """

    kind: str
    params: tuple[int, ...]

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Grid: argument 'kind' is {self.kind!r}; expected one of {KINDS} "
                             "(build grids with sphcnn_kernels.grids.equiangular(...), healpix(...), ...)")
        names = _ARGUMENTS[self.kind]
        if not isinstance(self.params, tuple) or len(self.params) != len(names):
            raise ValueError(f"Grid: argument 'params' is {self.params!r}; a {self.kind} grid takes the tuple "
                             f"{names}")
        for name, value, minimum in zip(names, self.params, _MINIMA[self.kind]):
            _check_int(self.kind, name, value, minimum)

    def __deepcopy__(self, memo) -> "Grid":
        return self  # immutable: a copy would drop the cached arrays

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={v}" for n, v in zip(_ARGUMENTS[self.kind], self.params))
        return f"{self.kind}({args})"

    # --- geometry -------------------------------------------------------------

    @functools.cached_property
    def theta(self) -> np.ndarray:
        """Ring colatitudes, float64 (n_rings,), radians, increasing."""
        return _readonly(_ring_theta(self.kind, self.params))

    @functools.cached_property
    def nphi(self) -> np.ndarray:
        """Points per ring, int64 (n_rings,)."""
        return _readonly(_ring_nphi(self.kind, self.params))

    @functools.cached_property
    def phi0(self) -> np.ndarray:
        """Longitude of each ring's first point, float64 (n_rings,), radians."""
        return _readonly(_ring_phi0(self.kind, self.params))

    @functools.cached_property
    def ring_start(self) -> np.ndarray:
        """Index of each ring's first point in the flattened map, int64 (n_rings,)."""
        return _readonly(np.concatenate([[0], np.cumsum(self.nphi)[:-1]]).astype(np.int64))

    @property
    def n_rings(self) -> int:
        return int(self.theta.shape[0])

    @property
    def n_points(self) -> int:
        return int(np.sum(self.nphi))

    @property
    def is_latlon(self) -> bool:
        """True when every ring has the same points and offset 0: maps are
        (nlat, nlon) arrays; False for HEALPix: maps are (npix,) arrays."""
        return self.kind != "healpix"

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one map: (nlat, nlon) for latitude-longitude grids, (npix,) for HEALPix."""
        if self.is_latlon:
            return (self.n_rings, int(self.nphi[0]))
        return (self.n_points,)

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Colatitude and longitude of every point.

        Returns:
            (theta, phi), float64 arrays of shape ``self.shape``, radians.
        """
        theta = np.repeat(self.theta, self.nphi)
        k = np.arange(self.n_points) - np.repeat(self.ring_start, self.nphi)
        phi = np.repeat(self.phi0, self.nphi) + 2.0 * np.pi * k / np.repeat(self.nphi, self.nphi)
        return theta.reshape(self.shape), phi.reshape(self.shape)

    # --- quadrature and band limits ---------------------------------------------

    @functools.cached_property
    def weights(self) -> np.ndarray:
        """Per-ring quadrature weights, float64 (n_rings,), steradians, summing to 4 pi:
        ``integral f dOmega ~= sum_j w_j mean_k f(theta_j, phi_jk)``.

        Exact (for functions band-limited to the degree given, when also below
        the number of longitudes) for: equiangular, Clenshaw-Curtis, degree
        nlat - 1 (nlat when nlat is odd); Gauss-Legendre, 2 nlat - 1;
        driscoll_healy, Fejer's first rule on 2L nodes, 2L - 1; mwss, the
        Clenshaw-Curtis rule of its L + 1 rings, L (L + 1 for even L); mw, the
        interpolatory rule of its L rings, L - 1; healpix, equal area 4 pi / npix
        per point, approximate.
        """
        return _readonly(_ring_weights(self.kind, self.params))

    @property
    def analysis_method(self) -> str:
        """How the forward transform integrates: 'quadrature' (ring weights
        times the harmonics), 'sampling_theorem' (mw, mwss: the exact
        McEwen-Wiaux construction) or 'approximate' (healpix)."""
        if self.kind in ("mw", "mwss"):
            return "sampling_theorem"
        if self.kind == "healpix":
            return "approximate"
        return "quadrature"

    @property
    def exact_ell_max(self) -> int | None:
        """The largest band limit for which the forward transform is exact, or
        None for HEALPix (no exact band limit).

        A product of two functions band-limited to ell_max has, for each order m,
        a polynomial of degree <= 2 ell_max in cos(theta) and orders
        |m| <= 2 ell_max; the quadrature is exact for it when the ring rule is
        exact to degree 2 ell_max and 2 ell_max + 1 <= nlon (no two orders
        |m| <= ell_max share a longitude frequency bin).
        """
        if self.kind == "healpix":
            return None
        if self.kind in ("driscoll_healy", "mw", "mwss"):
            return self.params[0] - 1
        nlat, nlon = self.params
        lat = (nlat - 1) // 2 if self.kind == "equiangular" else nlat - 1
        return min(lat, (nlon - 1) // 2)


def _check_int(kind: str, name: str, value, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{kind}: argument '{name}' must be an integer, got {value!r} ({type(value).__name__}); "
                         f"pass an int >= {minimum}")
    if value < minimum:
        raise ValueError(f"{kind}: argument '{name}' must be >= {minimum}, got {value}")
    return int(value)


def equiangular(nlat: int, nlon: int) -> Grid:
    """Equiangular latitude-longitude grid with both poles.

    theta_j = pi j / (nlat - 1), j = 0 .. nlat - 1 (north pole first),
    phi_k = 2 pi k / nlon. Clenshaw-Curtis weights; exact band limit
    min((nlat - 1) // 2, (nlon - 1) // 2).

    Args:
        nlat: number of rings, >= 2.
        nlon: points per ring, >= 1.

    Returns:
        The :class:`Grid`; maps are (nlat, nlon).

    Raises:
        ValueError: an argument that is not an integer in range (named).
    """
    return Grid("equiangular", (_check_int("equiangular", "nlat", nlat, 2), _check_int("equiangular", "nlon", nlon, 1)))


def gauss_legendre(nlat: int, nlon: int) -> Grid:
    """Gauss-Legendre grid: cos(theta_j) the nlat Gauss-Legendre nodes (north
    first), phi_k = 2 pi k / nlon; exact band limit min(nlat - 1, (nlon - 1) // 2).
    s2fft's "gl" sampling with band limit L is ``gauss_legendre(L, 2 L - 1)``.

    Args:
        nlat: number of rings, >= 1.
        nlon: points per ring, >= 1.

    Returns:
        The :class:`Grid`; maps are (nlat, nlon).

    Raises:
        ValueError: an argument that is not an integer in range (named).
    """
    return Grid("gauss_legendre", (_check_int("gauss_legendre", "nlat", nlat, 1),
                                   _check_int("gauss_legendre", "nlon", nlon, 1)))


def driscoll_healy(L: int) -> Grid:
    """s2fft's "dh" sampling of band limit L: 2L rings theta_j = pi (2j + 1) / (4L)
    (no poles), 2L - 1 longitudes phi_k = 2 pi k / (2L - 1)
    (s2fft.sampling.s2_samples.t2theta, p2phi_equiang). Weights: Fejer's first
    rule (Waldvogel, BIT 46, 195, 2006), ducc0's "F1" geometry; exact to L - 1.

    Args:
        L: band limit (exclusive), >= 1.

    Returns:
        The :class:`Grid`; maps are (2L, 2L - 1).

    Raises:
        ValueError: L not an integer >= 1.
    """
    return Grid("driscoll_healy", (_check_int("driscoll_healy", "L", L, 1),))


def mw(L: int) -> Grid:
    """McEwen & Wiaux (IEEE TSP 59, 5876, 2011) sampling of band limit L, as
    s2fft's "mw": L rings theta_t = pi (2t + 1) / (2L - 1) (the last on the south
    pole), 2L - 1 longitudes phi_k = 2 pi k / (2L - 1). The forward transform is
    exact to L - 1 by the MW sampling theorem (not by a ring quadrature).

    Args:
        L: band limit (exclusive), >= 1.

    Returns:
        The :class:`Grid`; maps are (L, 2L - 1).

    Raises:
        ValueError: L not an integer >= 1.
    """
    return Grid("mw", (_check_int("mw", "L", L, 1),))


def mwss(L: int) -> Grid:
    """McEwen-Wiaux symmetric sampling (Ocampo, McEwen et al., 2013; s2fft's
    "mwss") of band limit L: L + 1 rings theta_t = pi t / L (both poles), 2L
    longitudes phi_k = pi k / L. The forward transform is exact to L - 1 by the
    sampling theorem. ERA5's 721 x 1440 grid is ``mwss(720)``: its exact band
    limit is 719, against 360 for ``equiangular(721, 1440)`` (same points,
    Clenshaw-Curtis quadrature).

    Args:
        L: band limit (exclusive), >= 1.

    Returns:
        The :class:`Grid`; maps are (L + 1, 2L).

    Raises:
        ValueError: L not an integer >= 1.
    """
    return Grid("mwss", (_check_int("mwss", "L", L, 1),))


def healpix(nside: int) -> Grid:
    """HEALPix grid in RING ordering (Gorski et al., ApJ 622, 759, 2005, eqs. 4-9,
    as healpy's pix2ang with nest=False): 4 nside - 1 rings, 12 nside^2 pixels.

    Args:
        nside: resolution, >= 1 (any integer: RING ordering does not need a
            power of two).

    Returns:
        The :class:`Grid`; maps are (12 nside^2,).

    Raises:
        ValueError: nside not an integer >= 1.
    """
    return Grid("healpix", (_check_int("healpix", "nside", nside, 1),))


# --- ring geometry ----------------------------------------------------------------


def _healpix_rings(nside: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z = cos theta, nphi, phi0) of the 4 nside - 1 rings (Gorski et al. 2005, eqs. 4-9)."""
    i = np.arange(1, 4 * nside)  # ring number, 1 = northernmost
    north = np.minimum(i, 4 * nside - i)  # ring number counted from the nearer pole
    polar = north < nside
    z_polar = 1.0 - north.astype(np.float64) ** 2 / (3.0 * nside**2)
    z = np.where(polar, np.where(i < 2 * nside, z_polar, -z_polar), 4.0 / 3.0 - 2.0 * i / (3.0 * nside))
    nphi = np.where(polar, 4 * north, 4 * nside).astype(np.int64)
    # Polar rings: phi = pi (k + 1/2) / (2 north); equatorial rings are shifted by half a
    # pixel when i - nside is even (eq. 9 of Gorski et al.).
    shifted = (i - nside) % 2 == 0
    phi0 = np.where(polar, np.pi / (4.0 * north), np.where(shifted, np.pi / (4.0 * nside), 0.0))
    return z, nphi, phi0


def _ring_theta(kind: str, params: tuple[int, ...]) -> np.ndarray:
    if kind == "equiangular":
        nlat = params[0]
        return np.pi * np.arange(nlat) / (nlat - 1)
    if kind == "gauss_legendre":
        x, _ = np.polynomial.legendre.leggauss(params[0])
        return np.arccos(x[::-1])  # descending cos theta: north first
    L = params[0]
    t = np.arange(L)
    if kind == "driscoll_healy":  # s2fft t2theta "dh"
        return np.pi * (2 * np.arange(2 * L) + 1) / (4 * L)
    if kind == "mw":  # s2fft t2theta "mw"
        return np.pi * (2 * t + 1) / (2 * L - 1)
    if kind == "mwss":  # s2fft t2theta "mwss"
        return np.pi * np.arange(L + 1) / L
    z, _, _ = _healpix_rings(params[0])
    return np.arccos(z)


def _ring_nphi(kind: str, params: tuple[int, ...]) -> np.ndarray:
    if kind in ("equiangular", "gauss_legendre"):
        return np.full(params[0], params[1], np.int64)
    L = params[0]
    if kind == "driscoll_healy":
        return np.full(2 * L, 2 * L - 1, np.int64)
    if kind == "mw":
        return np.full(L, 2 * L - 1, np.int64)
    if kind == "mwss":
        return np.full(L + 1, 2 * L, np.int64)
    return _healpix_rings(params[0])[1]


def _ring_phi0(kind: str, params: tuple[int, ...]) -> np.ndarray:
    if kind == "healpix":
        return _healpix_rings(params[0])[2]
    return np.zeros(_ring_nphi(kind, params).shape[0])


# --- quadrature ---------------------------------------------------------------------


def clenshaw_curtis_weights(nodes: int) -> np.ndarray:
    """Clenshaw-Curtis weights on [-1, 1] at x_j = cos(pi j / N), N = nodes - 1.

    Waldvogel (BIT 46, 195, 2006), eq. 2.4 in cosine-sum form:
    w_j = (c_j / N) (1 - sum_{k=1}^{N/2} b_k cos(2 pi k j / N) / (4 k^2 - 1)),
    c_j = 1 at the end points and 2 elsewhere, b_k = 1 for k = N/2 and 2 elsewhere.
    Exact for polynomials of degree N (N + 1 when N is even).

    Args:
        nodes: number of nodes, >= 2.

    Returns:
        float64 (nodes,), summing to 2, symmetric.
    """
    n = nodes - 1
    j = np.arange(nodes)
    k = np.arange(1, n // 2 + 1)
    b = np.where(2 * k == n, 1.0, 2.0)
    c = np.where((j == 0) | (j == n), 1.0, 2.0)
    w = c / n * (1.0 - (b / (4.0 * k * k - 1.0)) @ np.cos(2.0 * np.pi * np.outer(k, j) / n))
    return 0.5 * (w + w[::-1])  # exactly symmetric under theta -> pi - theta


def fejer_first_weights(nodes: int) -> np.ndarray:
    """Fejer's first rule on [-1, 1] at x_j = cos(pi (2j + 1) / (2 nodes)).

    w_j = (2 / n) (1 - 2 sum_{k=1}^{n/2} cos(2 k theta_j) / (4 k^2 - 1)), n = nodes
    (Waldvogel, BIT 46, 195, 2006, eq. 2.5; the k = n/2 term halved for even n).
    Exact for polynomials of degree n - 1 (n when n is odd).

    Args:
        nodes: number of nodes, >= 1.

    Returns:
        float64 (nodes,), summing to 2, symmetric.
    """
    theta = np.pi * (2 * np.arange(nodes) + 1) / (2 * nodes)
    k = np.arange(1, nodes // 2 + 1)
    b = np.where(2 * k == nodes, 1.0, 2.0)
    w = 2.0 / nodes * (1.0 - (b / (4.0 * k * k - 1.0)) @ np.cos(2.0 * np.outer(k, theta)))
    return 0.5 * (w + w[::-1])


def sampling_theorem_resampling(L: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact resampling of the longitude-Fourier rings of an mw or mwss grid onto
    L Gauss-Legendre rings (McEwen & Wiaux, IEEE TSP 59, 5876, 2011, sec. IV).

    For each order m, the ring values G_m(theta) of a spin-s function band-limited
    to L - 1 form a trigonometric polynomial of degree <= L - 1 in theta with
    G_m(-theta) = p G_m(theta), p = (-1)^(m + s) (from d^l_{m,-s}(-theta) =
    (-1)^(m + s) d^l_{m,-s}(theta)). The rings, extended by this symmetry to
    theta in [0, 2 pi), are N equispaced samples (mw: N = 2L - 1 at
    pi (2u + 1) / N; mwss: N = 2L at 2 pi u / N), which determine the
    polynomial: G_m(theta) = sum_u G_m(theta_u) D_u(theta) with the trigonometric
    cardinal functions D_u(theta) = (1 / N) sum_{|k| <= L - 1} e^{i k (theta - theta_u)}.
    Folding the mirrored samples back onto the rings gives
    G_m(theta_g) = sum_t (even[g, t] + p odd[g, t]) G_m(theta_t).

    Args:
        L: the band limit of the grid, >= 1.
        kind: 'mw' or 'mwss'.

    Returns:
        (theta_gl, weights_gl, even, odd): the L Gauss-Legendre colatitudes
        (float64 (L,), north first), their weights on [-1, 1] (sum 2), and the
        float64 (L, n_rings) matrices.
    """
    if kind == "mw":
        big_n = 2 * L - 1
        theta_u = np.pi * (2 * np.arange(big_n) + 1) / big_n
        n_rings = L
    else:
        big_n = 2 * L
        theta_u = 2.0 * np.pi * np.arange(big_n) / big_n
        n_rings = L + 1
    x, w = np.polynomial.legendre.leggauss(L)
    theta_g, w = np.arccos(x[::-1]), w[::-1]
    # D_u(theta_g) = (1 + 2 sum_k cos(k theta_g) cos(k theta_u) + sin(k theta_g) sin(k theta_u)) / N
    k = np.arange(1, L)
    at_g, at_u = np.outer(theta_g, k), np.outer(theta_u, k)
    cardinal = (1.0 + 2.0 * (np.cos(at_g) @ np.cos(at_u).T + np.sin(at_g) @ np.sin(at_u).T)) / big_n  # (L, N)
    t = np.arange(n_rings)
    mirror = (-t - 1) % big_n if kind == "mw" else (-t) % big_n  # index of 2 pi - theta_t
    even = cardinal[:, t]
    odd = np.where(mirror != t, cardinal[:, mirror], 0.0)
    return theta_g, w, even, odd


def _ring_weights(kind: str, params: tuple[int, ...]) -> np.ndarray:
    if kind == "equiangular":
        w = clenshaw_curtis_weights(params[0])
    elif kind == "gauss_legendre":
        w = np.polynomial.legendre.leggauss(params[0])[1][::-1]
    elif kind == "driscoll_healy":
        w = fejer_first_weights(2 * params[0])
    elif kind == "mwss":
        w = clenshaw_curtis_weights(params[0] + 1)
    elif kind == "mw":
        # The integral over [-1, 1] of the even interpolant: GL quadrature of the
        # resampled rings (exact: the interpolant has degree <= L - 1 in cos theta).
        _, w_gl, even, odd = sampling_theorem_resampling(params[0], "mw")
        w = w_gl @ (even + odd)
    else:
        _, nphi, _ = _healpix_rings(params[0])
        return 4.0 * np.pi * nphi / np.sum(nphi)
    return 2.0 * np.pi * np.ascontiguousarray(w)
