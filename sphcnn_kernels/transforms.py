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
[l, ell_max + m] and exact zeros where l < max(|m|, |s|) ('batch_major'), or the
degree axis first, (ell_max + 1, ..., 2 ell_max + 1, n_spins, n_channels)
('degree_major'). Any number of leading batch axes. All spins of a layer go
through one call.

:class:`SphericalTransform` validates everything once and holds the plan of
constants; :func:`forward` and :func:`inverse` are cached wrappers around it.
Both directions are linear JAX primitives (:mod:`sphcnn_kernels.ops.analysis`,
:mod:`sphcnn_kernels.ops.synthesis`; on the other quadrature latitude-longitude
grids :mod:`sphcnn_kernels.ops.grid_analysis` and
:mod:`sphcnn_kernels.ops.grid_synthesis`): they work under jit, vmap, grad,
jvp and their compositions on every backend.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels import grid_transforms, grids
from sphcnn_kernels import validation as checks
from sphcnn_kernels.ops import analysis_p, grid_analysis_p, grid_forward, grid_inverse, grid_synthesis_p, synthesis_p
from sphcnn_kernels.plan import Plan, get_plan


class SphericalTransform:
    """The forward and inverse transforms of one grid, band limit and spin set.

    Everything is validated once, here; the plan of constants is cached per (n,
    ell_max, spins, dtype). Transforms are immutable, hashable and equal when
    their plan and options are, so that model layers can keep one as static
    configuration. Methods: :meth:`forward` (..., n, n, S, C) -> (..., ell_max +
    1, 2 ell_max + 1, S, C) and :meth:`inverse`, the reverse direction.

    Other grids (:mod:`sphcnn_kernels.grids`) take maps (..., *grid.shape, S,
    C). The quadrature latitude-longitude grids (any other equiangular nlat x
    nlon, Gauss-Legendre, Driscoll-Healy) run the grid ops
    (:mod:`sphcnn_kernels.ops.grid_analysis`, ``grid_synthesis``: the CPU
    kernels on backend 'ffi' or 'auto', their jnp reference on 'xla' and on
    GPUs); MW, MWSS and HEALPix run on the xla backend
    (:mod:`sphcnn_kernels.grid_transforms`). ``real=True`` (spins (0,)) takes
    real maps and returns the m >= 0 coefficients (..., ell_max + 1, ell_max +
    1, 1, C), a_lm at [l, m]; on the quadrature grids two real maps f, g share
    one complex transform of f + i g.

    Args:
        n: grid size of the n x n equiangular grid (even, >= 4), or a
            :class:`sphcnn_kernels.grids.Grid` (equiangular(n, n) is the same as n).
        spins: the spin of each entry of the spin axis, distinct integers.
        ell_max: band limit, max|s| <= ell_max <= the grid's exact band limit
            (n/2 - 1 for n; grid.exact_ell_max; HEALPix: any, default 3 nside
            - 1) (default: that limit; smaller values pool spectrally).
        dtype: 'complex64' or 'complex128' (the latter needs jax_enable_x64).
        backend: 'auto' (the fastest measured backend of the platform a
            computation is compiled for; on CUDA 'xla' until the kernels are
            measured, see :mod:`sphcnn_kernels.auto`), 'xla', 'ffi' or 'triton'
            ('auto', 'xla' or 'ffi' on the other quadrature grids and with
            real=True, 'auto' or 'xla' on MW, MWSS and HEALPix).
        precision: 'highest' (fp32 results to ~1e-6) or 'fast' (lets the xla and
            triton backends use TF32 matmuls on GPUs, ~4e-4).
        layout: of the coefficients, 'batch_major' (..., L, 2L - 1, S, C) or
            'degree_major' (L, ..., 2L - 1, S, C).
        mode: where the CUDA kernels get lambda from: 'table' (a constant table
            of the plan), 'onthefly' (the recurrence inside the kernel, O(L^2)
            memory) or 'auto' (the table while it takes at most 256 MiB and
            ell_max < 256).
        real: real spin-0 maps and their m >= 0 coefficients (half the work
            and bytes).
        iterations: Jacobi refinements of the approximate HEALPix analysis
            (healpy's ``iter``); 0 elsewhere.

    Raises:
        ValueError: an argument out of range, naming it, its value and what was
            expected.
    """

    def __init__(self, n, spins, ell_max: int | None = None, dtype="complex64", backend: str = "auto",
                 precision: str = "highest", layout: str = "batch_major", mode: str = "auto", real: bool = False,
                 iterations: int = 0):
        name = type(self).__name__
        self.spins = checks.spins(name, "spins", spins)
        self.real = checks.flag(name, "real", real)
        if self.real and self.spins != (0,):
            raise ValueError(f"{name}: real=True takes spins (0,) only (real maps), got spins {self.spins}; "
                             "use real=False for spin-weighted maps")
        self.iterations = checks.integer(name, "iterations", iterations, minimum=0)
        if isinstance(n, grids.Grid):
            self.grid = n
        else:
            size = checks.grid_size(name, "n", n)
            self.grid = grids.equiangular(size, size)
        kind, params = self.grid.kind, self.grid.params
        square = kind == "equiangular" and params[0] == params[1] and params[0] >= 4 and params[0] % 2 == 0
        # the kernels' grid: n x n equiangular with both poles, n even, complex maps
        self.n = params[0] if square and not self.real else None
        # the other quadrature latitude-longitude grids, and real maps on any, run the grid ops
        self._rings = self.n is None and self.grid.analysis_method == "quadrature"
        if self.iterations and kind != "healpix":
            raise ValueError(f"{name}: iterations = {self.iterations} refine the approximate HEALPix analysis "
                             f"only; the analysis on {self.grid!r} is exact: pass iterations=0")
        if self.n is not None:
            top = self.n // 2 - 1
            self.ell_max = checks.ell_max(name, top if ell_max is None else ell_max, self.n, self.spins,
                                          name="ell_max (default n/2 - 1)" if ell_max is None else "ell_max")
        else:
            self.ell_max = self._grid_ell_max(name, ell_max)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype not in checks.SUPPORTED_COMPLEX:
            raise ValueError(f"{name}: argument 'dtype' must be complex64 or complex128, got {dtype!r}")
        checks.double_enabled(name, "dtype", self.dtype)
        self.backend = checks.choice(name, "backend", backend, checks.BACKEND_OPTIONS)
        self.precision = checks.choice(name, "precision", precision, checks.PRECISIONS)
        self.layout = checks.choice(name, "layout", layout, checks.LAYOUTS)
        self.mode = checks.choice(name, "mode", mode, checks.LAMBDA_MODES)
        allowed = ("auto", "xla", "ffi") if self._rings else ("auto", "xla")
        if self.n is None and self.backend not in allowed:
            raise ValueError(f"{name}: backend {self.backend!r} runs the n x n equiangular grid with both poles "
                             "(n even) and complex maps"
                             + (", and the other equiangular, gauss_legendre and driscoll_healy grids"
                                if self.backend == "ffi" else "")
                             + f" only; {self.grid!r}" + (" with real=True" if self.real else "")
                             + f" runs on backend {' or '.join(repr(b) for b in allowed[1:])} (or 'auto')")
        self.plan: Plan | None = (get_plan(self.n, self.ell_max, self.spins, self.dtype.name)
                                  if self.n is not None else None)
        self._options = dict(backend=self.backend, precision=self.precision, layout=self.layout, mode=self.mode)
        self._frozen = True

    def _grid_ell_max(self, name: str, ell_max) -> int:
        """The band limit on a grid without kernels: max|s| <= ell_max <= grid.exact_ell_max (HEALPix: any)."""
        smallest = max(abs(s) for s in self.spins)
        exact = self.grid.exact_ell_max
        if ell_max is None:
            ell_max = max(smallest, 3 * self.grid.params[0] - 1 if exact is None else exact)
        ell_max = checks.integer(name, "ell_max", ell_max, minimum=smallest)
        if exact is not None and ell_max > exact:
            raise ValueError(f"{name}: argument 'ell_max' = {ell_max} exceeds the exact band limit {exact} of "
                             f"{self.grid!r} (grid.exact_ell_max); pass ell_max <= {exact}")
        return ell_max

    def __setattr__(self, name, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"SphericalTransform is immutable; build a new one instead of setting {name!r}")
        super().__setattr__(name, value)

    def __copy__(self) -> "SphericalTransform":
        return self

    def __deepcopy__(self, memo) -> "SphericalTransform":
        return self  # immutable: copies of a model share it and its plan's tables

    def _key(self) -> tuple:
        return (self.grid, self.ell_max, self.spins, self.dtype, self.real, self.iterations, self.backend,
                self.precision, self.layout, self.mode)

    def __eq__(self, other) -> bool:
        return isinstance(other, SphericalTransform) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        where = f"n={self.n}" if self.n is not None else f"grid={self.grid!r}"
        extra = (", real=True" if self.real else "") + (f", iterations={self.iterations}" if self.iterations else "")
        return (f"SphericalTransform({where}, spins={self.spins}, ell_max={self.ell_max}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r}, precision={self.precision!r}, layout={self.layout!r}, "
                f"mode={self.mode!r}{extra})")

    @property
    def real_dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.dtype == np.complex64 else np.dtype(np.float64)

    def spectral_shape(self, batch: tuple[int, ...], channels: int) -> tuple[int, ...]:
        """Shape of the coefficients of maps with leading axes `batch`."""
        orders = self.ell_max + 1 if self.real else 2 * self.ell_max + 1
        core = (orders, len(self.spins), channels)
        if self.layout == "degree_major":
            return (self.ell_max + 1,) + tuple(batch) + core
        return tuple(batch) + (self.ell_max + 1,) + core

    def forward(self, x) -> jax.Array:
        """Coefficients a_lm = integral f conj(sY_lm) dOmega, exact for band-limited maps.

        Args:
            x: maps (..., n, n, S, C) of the transform's dtype, or of its real
                dtype when every spin is 0.

        Returns:
            The coefficients in the transform's layout and dtype, exact zeros
            where l < max(|m|, |s|).

        Raises:
            ValueError: x's shape or dtype does not fit the transform.
        """
        if self.n is None:
            return self._grid_forward(x)
        x = jnp.asarray(x)
        func = "SphericalTransform.forward"
        expected = f"(..., {self.n}, {self.n}, {len(self.spins)}, n_channels)"
        if x.ndim < 4 or tuple(x.shape[-4:-1]) != (self.n, self.n, len(self.spins)):
            raise ValueError(f"{func}: argument 'x' has shape {tuple(x.shape)}; expected {expected} "
                             f"(n = {self.n}, spins {self.spins})")
        allowed = (self.dtype, self.real_dtype) if all(s == 0 for s in self.spins) else (self.dtype,)
        if x.dtype not in allowed:
            raise ValueError(f"{func}: argument 'x' has dtype {x.dtype}; expected "
                             f"{' or '.join(d.name for d in allowed)} (the transform's dtype)")
        return analysis_p.bind(x, plan=self.plan, sign=-1, weighted=True, **self._options)

    def inverse(self, coeffs) -> jax.Array:
        """Maps f(theta_j, phi_k) = sum a_lm sY_lm on the n x n grid.

        Args:
            coeffs: coefficients in the transform's layout and dtype; entries
                with l < max(|m|, |s|) are ignored.

        Returns:
            The maps (..., n, n, S, C) in the transform's dtype.

        Raises:
            ValueError: coeffs' shape or dtype does not fit the transform.
        """
        if self.n is None:
            return self._grid_inverse(coeffs)
        a = jnp.asarray(coeffs)
        func = "SphericalTransform.inverse"
        degrees, orders = self.plan.spectral_core_shape
        tail = (orders, len(self.spins))
        if self.layout == "degree_major":
            ok = a.ndim >= 4 and a.shape[0] == degrees and tuple(a.shape[-3:-1]) == tail
            expected = f"({degrees}, ..., {orders}, {len(self.spins)}, n_channels)"
        else:
            ok = a.ndim >= 4 and tuple(a.shape[-4:-1]) == (degrees,) + tail
            expected = f"(..., {degrees}, {orders}, {len(self.spins)}, n_channels)"
        if not ok:
            raise ValueError(f"{func}: argument 'coeffs' has shape {tuple(a.shape)}; expected {expected} "
                             f"({self.layout}, ell_max = {self.ell_max}, spins {self.spins})")
        if a.dtype != self.dtype:
            raise ValueError(f"{func}: argument 'coeffs' has dtype {a.dtype}; expected {self.dtype.name} "
                             "(the transform's dtype)")
        return synthesis_p.bind(a, plan=self.plan, sign=1, weighted=False, **self._options)

    def _ring_parameters(self, sign: int, weighted: bool) -> dict:
        """The parameters of the grid ops (sphcnn_kernels.ops.grid_analysis) on this transform's grid."""
        return dict(grid=self.grid, ell_max=self.ell_max, spins=self.spins, dtype=self.dtype.name, sign=sign,
                    weighted=weighted, backend=self.backend)

    def _grid_forward(self, x) -> jax.Array:
        """forward on a grid other than the kernels' n x n grid: the grid ops on the quadrature
        grids, sphcnn_kernels.grid_transforms elsewhere."""
        x = jnp.asarray(x)
        k = len(self.grid.shape)
        if x.ndim < k + 2 or tuple(x.shape[-k - 2:-2]) != self.grid.shape or x.shape[-2] != len(self.spins):
            raise ValueError(f"SphericalTransform.forward: argument 'x' has shape {tuple(x.shape)}; "
                             f"{grid_transforms.shape_help(self.grid, self.spins)}")
        if self.real:
            allowed = (self.real_dtype,)
        elif all(s == 0 for s in self.spins):
            allowed = (self.dtype, self.real_dtype)
        else:
            allowed = (self.dtype,)
        if x.dtype not in allowed:
            raise ValueError(f"SphericalTransform.forward: argument 'x' has dtype {x.dtype}; expected "
                             f"{' or '.join(d.name for d in allowed)} (the transform's dtype)")
        if not self._rings:
            a = grid_forward(x, grid=self.grid, spins=self.spins, ell_max=self.ell_max, real=self.real,
                             iterations=self.iterations)
        elif self.real:
            a = _paired_analysis(x, functools.partial(grid_analysis_p.bind, **self._ring_parameters(-1, True)))
        else:
            a = grid_analysis_p.bind(x, **self._ring_parameters(-1, True))
        return jnp.moveaxis(a, -4, 0) if self.layout == "degree_major" else a

    def _grid_inverse(self, coeffs) -> jax.Array:
        """inverse on a grid other than the kernels' n x n grid (as :meth:`_grid_forward`)."""
        a = jnp.asarray(coeffs)
        orders = self.spectral_shape((), 1)[-3]
        core = (orders, len(self.spins))
        if self.layout == "degree_major":
            ok = a.ndim >= 4 and a.shape[0] == self.ell_max + 1 and tuple(a.shape[-3:-1]) == core
            expected = f"({self.ell_max + 1}, ..., {orders}, {len(self.spins)}, n_channels)"
        else:
            ok = a.ndim >= 4 and tuple(a.shape[-4:-1]) == (self.ell_max + 1,) + core
            expected = f"(..., {self.ell_max + 1}, {orders}, {len(self.spins)}, n_channels)"
        if not ok:
            raise ValueError(f"SphericalTransform.inverse: argument 'coeffs' has shape {tuple(a.shape)}; expected "
                             f"{expected} ({self.layout}, ell_max = {self.ell_max}, spins {self.spins}"
                             + (", orders m >= 0" if self.real else "") + ")")
        if a.dtype != self.dtype:
            raise ValueError(f"SphericalTransform.inverse: argument 'coeffs' has dtype {a.dtype}; expected "
                             f"{self.dtype.name} (the transform's dtype)")
        if self.layout == "degree_major":
            a = jnp.moveaxis(a, 0, -4)
        if not self._rings:
            return grid_inverse(a, grid=self.grid, ell_max=self.ell_max, spins=self.spins, real=self.real)
        if self.real:
            return _paired_synthesis(a, functools.partial(grid_synthesis_p.bind, **self._ring_parameters(1, False)))
        return grid_synthesis_p.bind(a, **self._ring_parameters(1, False))


def _parity(degrees: int, dtype) -> np.ndarray:
    """(-1)^m for m = 0 .. degrees - 1, of the real `dtype`."""
    return (1 - 2 * (np.arange(degrees) % 2)).astype(dtype)


def _paired_analysis(x: jax.Array, analysis: Callable[[jax.Array], jax.Array]) -> jax.Array:
    """The m >= 0 coefficients of real spin-0 maps, two maps per complex analysis.

    For real maps f and g, h = f + i g has h_lm = a^f_lm + i a^g_lm, and the
    coefficients of a real map satisfy a_{l,-m} = (-1)^m conj(a_lm), so

        a^f_lm = (h_lm + (-1)^m conj(h_{l,-m})) / 2,
        a^g_lm = (h_lm - (-1)^m conj(h_{l,-m})) / (2i).

    The N maps (N = the product of the batch axes and the channels) are
    paired in order, with one zero map after an odd N: N/2 complex analyses,
    rounded up.

    Args:
        x: real maps (..., nlat, nlon, 1, C).
        analysis: complex maps (P, nlat, nlon, 1, 1) -> their coefficients
            (P, L, 2L - 1, 1, 1), a_lm at [l, L - 1 + m].

    Returns:
        (..., L, L, 1, C), a_lm at [l, m] for m >= 0, complex.
    """
    batch, (nlat, nlon), channels = x.shape[:-4], x.shape[-4:-2], x.shape[-1]
    count = math.prod(batch) * channels
    maps = jnp.moveaxis(x[..., 0, :], -1, -3).reshape(count, nlat, nlon)
    if count % 2:
        maps = jnp.concatenate([maps, jnp.zeros((1, nlat, nlon), maps.dtype)])
    h = analysis(jax.lax.complex(maps[0::2], maps[1::2])[..., None, None])[..., 0, 0]  # (P, L, 2L - 1)
    degrees = h.shape[-2]
    positive = h[..., degrees - 1:]  # h_lm, m >= 0
    mirrored = jnp.conj(h[..., degrees - 1::-1]) * _parity(degrees, x.dtype)  # (-1)^m conj(h_{l,-m})
    a = jnp.stack([(positive + mirrored) / 2, (positive - mirrored) / 2j], axis=1)
    a = a.reshape(-1, degrees, degrees)[:count].reshape(batch + (channels, degrees, degrees))
    return jnp.moveaxis(a, -3, -1)[..., None, :]


def _paired_synthesis(a: jax.Array, synthesis: Callable[[jax.Array], jax.Array]) -> jax.Array:
    """Real spin-0 maps from their m >= 0 coefficients, two maps per complex synthesis.

    The maps f and g of a pair are the real and imaginary parts of the
    synthesis of h_lm = a^f_lm + i a^g_lm over all orders, with
    a_{l,-m} = (-1)^m conj(a_lm) (the imaginary part of a_l0 is ignored):
    the inverse of :func:`_paired_analysis`, paired the same way.

    Args:
        a: (..., L, L, 1, C) complex, a_lm at [l, m] for m >= 0.
        synthesis: coefficients (P, L, 2L - 1, 1, 1) -> complex maps
            (P, nlat, nlon, 1, 1).

    Returns:
        Real maps (..., nlat, nlon, 1, C) of a's real precision.
    """
    batch, degrees, channels = a.shape[:-4], a.shape[-4], a.shape[-1]
    count = math.prod(batch) * channels
    half = jnp.moveaxis(a[..., 0, :], -1, -3).reshape(count, degrees, degrees)
    half = half.at[..., 0].set(jnp.real(half[..., 0]))
    mirrored = jnp.conj(half[..., :0:-1]) * _parity(degrees, jnp.real(half).dtype)[:0:-1]  # m = -(L - 1) .. -1
    full = jnp.concatenate([mirrored, half], axis=-1)  # (N, L, 2L - 1)
    if count % 2:
        full = jnp.concatenate([full, jnp.zeros((1,) + full.shape[1:], full.dtype)])
    h = synthesis((full[0::2] + 1j * full[1::2])[..., None, None])[..., 0, 0]  # (P, nlat, nlon)
    nlat, nlon = h.shape[-2:]
    maps = jnp.stack([h.real, h.imag], axis=1).reshape(-1, nlat, nlon)[:count]
    return jnp.moveaxis(maps.reshape(batch + (channels, nlat, nlon)), -3, -1)[..., None, :]


@functools.lru_cache(maxsize=None)
def transform(n: int, spins: tuple[int, ...], ell_max: int, dtype: str, backend: str = "auto",
              precision: str = "highest", layout: str = "batch_major", mode: str = "auto") -> SphericalTransform:
    """The cached SphericalTransform of a key (hashable arguments)."""
    return SphericalTransform(n, spins, ell_max, dtype, backend, precision, layout, mode)


def forward(x, spins, ell_max: int | None = None, backend: str = "auto", precision: str = "highest",
            layout: str = "batch_major", mode: str = "auto") -> jax.Array:
    """Spin-weighted spherical harmonic coefficients of maps on the grid,
    through a cached :class:`SphericalTransform`.

    Args:
        x: (..., n, n, n_spins, n_channels) complex64/complex128 (float32/float64
            accepted when all spins are 0; 64-bit data needs jax_enable_x64).
        spins: the spin of each entry of the spin axis, distinct integers.
        ell_max: band limit of the result, max|s| <= ell_max <= n/2 - 1 (default
            n/2 - 1); a smaller value drops the higher degrees (spectral pooling).
        backend, precision, layout, mode: options of :class:`SphericalTransform`.

    Returns:
        (..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels) (or degree-major)
        with a_lm = integral f conj(sY_lm) dOmega at [l, ell_max + m], exact for
        band-limited f.

    Raises:
        ValueError: an argument out of range, naming it.
    """
    func = "forward"
    checks.double_enabled(func, "x", getattr(x, "dtype", np.float32))
    x = jnp.asarray(x)
    spins = checks.spins(func, "spins", spins)
    shape = tuple(x.shape)
    if len(shape) < 4 or shape[-2] != len(spins):
        raise ValueError(f"{func}: argument 'x' has shape {shape}; expected (..., n, n, n_spins, n_channels) "
                         f"with n_spins = {len(spins)} for spins {spins}")
    n = checks.grid_size(func, "x.shape[-4]", shape[-4])
    if shape[-3] != n:
        raise ValueError(f"{func}: argument 'x' has shape {shape}; expected (..., n, n, n_spins, n_channels) "
                         f"with equal latitude and longitude sizes, got {n} and {shape[-3]}")
    dtype = checks.complex_dtype(func, "x", x.dtype, spins)
    if ell_max is None:
        ell_max = checks.ell_max(func, n // 2 - 1, n, spins, name="ell_max (default n/2 - 1)")
    else:
        ell_max = checks.ell_max(func, ell_max, n, spins)
    t = transform(n, spins, ell_max, dtype.name, backend, precision, layout, mode)
    return t.forward(x if x.dtype in (dtype, t.real_dtype) else x.astype(dtype))


def inverse(coeffs, spins, n: int | None = None, backend: str = "auto", precision: str = "highest",
            layout: str = "batch_major", mode: str = "auto") -> jax.Array:
    """Maps on the grid from spin-weighted spherical harmonic coefficients,
    through a cached :class:`SphericalTransform`.

    Args:
        coeffs: (..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels) (or
            degree-major), complex; entries with l < max(|m|, |s|) are ignored.
        spins: the spin of each entry of the spin axis.
        n: output grid size, even, >= 2 (ell_max + 1) (default); a larger n
            samples the same band-limited function on a finer grid (spectral
            upsampling).
        backend, precision, layout, mode: options of :class:`SphericalTransform`.

    Returns:
        (..., n, n, n_spins, n_channels): f(theta_j, phi_k) = sum a_lm sY_lm.

    Raises:
        ValueError: an argument out of range, naming it.
    """
    func = "inverse"
    checks.double_enabled(func, "coeffs", getattr(coeffs, "dtype", np.complex64))
    a = jnp.asarray(coeffs)
    spins = checks.spins(func, "spins", spins)
    layout = checks.choice(func, "layout", layout, checks.LAYOUTS)
    expected = ("(ell_max + 1, ..., 2 ell_max + 1, n_spins, n_channels)" if layout == "degree_major"
                else "(..., ell_max + 1, 2 ell_max + 1, n_spins, n_channels)")
    shape = tuple(a.shape)
    if len(shape) < 4 or shape[-2] != len(spins):
        raise ValueError(f"{func}: argument 'coeffs' has shape {shape}; expected {layout} {expected} "
                         f"with n_spins = {len(spins)} for spins {spins}")
    size = shape[0] if layout == "degree_major" else shape[-4]
    if size < 1 or shape[-3] != 2 * size - 1:
        raise ValueError(f"{func}: argument 'coeffs' has shape {shape}; expected {expected} "
                         f"({layout}), i.e. axis -3 of size {2 * size - 1}")
    ell_max = size - 1
    n = max(4, 2 * size) if n is None else checks.grid_size(func, "n", n)
    if ell_max > n // 2 - 1:
        raise ValueError(f"{func}: argument 'n' = {n} cannot hold coefficients up to ell_max = {ell_max}; "
                         f"expected n >= {2 * size}")
    checks.ell_max(func, ell_max, n, spins, name="coeffs.shape[-4] - 1")
    dtype = checks.complex_dtype(func, "coeffs", a.dtype, spins)
    return transform(n, spins, ell_max, dtype.name, backend, precision, layout, mode).inverse(a.astype(dtype))
