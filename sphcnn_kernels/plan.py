"""Transform plans: the geometry of a transform and its constants.

A plan is identified by (n, ell_max, spins, dtype) and created once per key
(:func:`get_plan`). It holds only geometry and constant tables, each computed
on first use in float64, rounded once to the data precision and kept: every
compilation, backend and option (backend, precision, layout, lambda mode are
parameters of the transform primitives, not part of the plan) reads the same
arrays. Plans are static parameters of the primitives, so they are hashable and
compare by key.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from sphcnn_kernels.grid import _ring_weights


def _build_dense_table(n: int, ell_max: int, spins: tuple[int, ...]) -> np.ndarray:
    """lambda_{l,m,s}(theta_j), float64 (S, 2 ell_max + 1, ell_max + 1, n), from the C++ recurrence."""
    from sphcnn_kernels import _cpu

    theta = np.pi * np.arange(n) / (n - 1)
    table = _cpu.spin_legendre(ell_max, list(spins), theta)  # (S, n, M, L)
    return np.transpose(table, (0, 2, 3, 1))


def _build_packed_table(n: int, ell_max: int, spins: tuple[int, ...], double: bool) -> np.ndarray:
    """The packed north-ring table of the FFI kernels (layout: csrc/include/sphcnn/packed_table.h)."""
    from sphcnn_kernels import _cpu

    return _cpu.packed_legendre_table(n, ell_max, list(spins), double)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Geometry and constants of a transform between (..., n, n, S, C) grids and
    (..., ell_max + 1, 2 ell_max + 1, S, C) coefficients, each constant computed
    once in float64 and rounded once to the data's precision.

    Args:
        n: grid size.
        ell_max: band limit, <= n/2 - 1.
        spins: the S spins, in the order of the spin axis.
        dtype: 'complex64' or 'complex128'.
    """

    n: int
    ell_max: int
    spins: tuple[int, ...]
    dtype: str

    def __deepcopy__(self, memo) -> "Plan":
        return self  # immutable: a copy would duplicate the cached tables

    @property
    def real_dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.dtype == "complex64" else np.dtype(np.float64)

    @property
    def spatial_core_shape(self) -> tuple[int, int]:
        return (self.n, self.n)

    @property
    def spectral_core_shape(self) -> tuple[int, int]:
        return (self.ell_max + 1, 2 * self.ell_max + 1)

    def spectral_shape(self, batch: tuple[int, ...], spins: int, channels: int, layout: str) -> tuple[int, ...]:
        """Shape of the coefficients of `batch` maps in `layout`."""
        degrees, orders = self.spectral_core_shape
        if layout == "degree_major":
            return (degrees,) + tuple(batch) + (orders, spins, channels)
        return tuple(batch) + (degrees, orders, spins, channels)

    @staticmethod
    def spectral_batch(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
        """The batch axes of a coefficient shape in `layout`."""
        return tuple(shape[1:-3]) if layout == "degree_major" else tuple(shape[:-4])

    def ring_scale(self, weighted: bool) -> np.ndarray:
        """Per-ring factor of the analysis/synthesis kernels in the data precision
        (n,): q_j / n (quadrature weight over the longitude count) if weighted, else 1."""
        return self._ring_scales[1 if weighted else 0]

    @functools.cached_property
    def _ring_scales(self) -> tuple[np.ndarray, np.ndarray]:
        scales = (np.ones(self.n, self.real_dtype), (_ring_weights(self.n) / self.n).astype(self.real_dtype))
        for s in scales:
            s.setflags(write=False)
        return scales

    @functools.cached_property
    def dense_table(self) -> np.ndarray:
        """lambda_{l,m,s}(theta_j) in the data precision, (S, 2 ell_max + 1, ell_max + 1, n),
        zero for l < max(|m|, |s|): the table of the xla and triton backends."""
        table = np.ascontiguousarray(_build_dense_table(self.n, self.ell_max, self.spins), dtype=self.real_dtype)
        table.setflags(write=False)
        return table

    @property
    def packed_table_bytes(self) -> int:
        """Size of :attr:`packed_table` (computed without building it)."""
        from sphcnn_kernels import _cpu

        is_double = self.real_dtype == np.float64
        return _cpu.packed_table_size(self.n, self.ell_max, len(self.spins), is_double) * self.real_dtype.itemsize

    @functools.cached_property
    def packed_table(self) -> np.ndarray:
        """lambda_{l,+-|m|,s}(theta_j) on the north rings j < n/2 in the data precision,
        packed by (spin, |m|, sign, ring) with degree rows l >= |m| padded to 16
        bytes: the table of the FFI kernels (layout in csrc/include/sphcnn/packed_table.h)."""
        table = _build_packed_table(self.n, self.ell_max, self.spins, self.real_dtype == np.float64)
        table.setflags(write=False)
        return table


@functools.lru_cache(maxsize=None)
def get_plan(n: int, ell_max: int, spins: tuple[int, ...], dtype: str) -> Plan:
    """The cached plan of a transform; the arguments are already validated, as
    :class:`SphericalTransform` does.

    Args:
        n: grid size.
        ell_max: band limit.
        spins: the spins of the spin axis.
        dtype: 'complex64' or 'complex128'.

    Returns:
        The :class:`Plan`, one object per key: its tables are built once.
    """
    return Plan(n, ell_max, spins, dtype)
