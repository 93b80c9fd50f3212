"""Transform plans: the hashable key of a transform and its cached constants.

A plan is identified by (n, ell_max, spins, dtype, backend, precision) and is
created once per key (:func:`get_plan`); its constants are computed on first use
in float64 and kept. Plans are the static parameters of the transform primitives,
so they must be hashable and compare by key.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from sphcnn_kernels.grid import _ring_weights


@dataclasses.dataclass(frozen=True)
class Plan:
    """Static description of a transform between (..., n, n, S, C) grids and
    (..., ell_max + 1, 2 ell_max + 1, S, C) coefficients.

    n: grid size; ell_max: band limit (<= n/2 - 1); spins: the S spins, in the
    order of the spin axis; dtype: 'complex64' or 'complex128'; backend: 'xla',
    'ffi' or 'triton'; precision: 'highest' or 'fast' (matmul precision of the
    XLA and Triton backends); mode: how the CUDA kernels get lambda, 'table'
    (precomputed on the device, fast up to ell_max ~ 256), 'onthefly' (generated
    by the recurrence inside the kernel, O(L^2) memory) or 'auto' (table while it
    takes at most 256 MiB and ell_max < 256); layout: of the coefficients,
    'batch_major' (..., L, 2L - 1, S, C) or 'degree_major' (L, ..., 2L - 1, S, C).
    """

    n: int
    ell_max: int
    spins: tuple[int, ...]
    dtype: str
    backend: str
    precision: str
    mode: str = "auto"
    layout: str = "batch_major"

    @property
    def real_dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.dtype == "complex64" else np.dtype(np.float64)

    @property
    def spatial_core_shape(self) -> tuple[int, int]:
        return (self.n, self.n)

    @property
    def spectral_core_shape(self) -> tuple[int, int]:
        return (self.ell_max + 1, 2 * self.ell_max + 1)

    def spectral_shape(self, batch: tuple[int, ...], spins: int, channels: int) -> tuple[int, ...]:
        """Shape of the coefficients of `batch` maps in this plan's layout."""
        degrees, orders = self.spectral_core_shape
        if self.layout == "degree_major":
            return (degrees,) + tuple(batch) + (orders, spins, channels)
        return tuple(batch) + (degrees, orders, spins, channels)

    def spectral_batch(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The batch axes of a coefficient shape in this plan's layout."""
        return tuple(shape[1:-3]) if self.layout == "degree_major" else tuple(shape[:-4])

    def ring_scale(self, weighted: bool) -> np.ndarray:
        """Per-ring factor of the analysis/synthesis kernels, float64 (n,):
        q_j / n (quadrature weight over the longitude count) if weighted, else 1."""
        if weighted:
            return _ring_weights(self.n) / self.n
        return np.ones(self.n)

    @functools.cached_property
    def legendre_table(self) -> np.ndarray:
        """lambda_{l,m,s}(theta_j) as float64 (S, 2 ell_max + 1, ell_max + 1, n),
        zero for l < max(|m|, |s|); computed by the C++ recurrence."""
        from sphcnn_kernels import _cpu

        theta = np.pi * np.arange(self.n) / (self.n - 1)
        table = _cpu.spin_legendre(self.ell_max, list(self.spins), theta)  # (S, n, M, L)
        table = np.ascontiguousarray(np.transpose(table, (0, 2, 3, 1)))
        table.setflags(write=False)
        return table


@functools.lru_cache(maxsize=None)
def get_plan(
    n: int, ell_max: int, spins: tuple[int, ...], dtype: str, backend: str, precision: str, mode: str = "auto",
    layout: str = "batch_major",
) -> Plan:
    """The cached plan for a key (arguments already validated)."""
    return Plan(n, ell_max, spins, dtype, backend, precision, mode, layout)
