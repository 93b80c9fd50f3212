"""Argument checks shared by the public functions.

Every check raises ``ValueError`` naming the function, the argument, the value
received and what was expected, before any kernel runs.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

SUPPORTED_COMPLEX = (np.dtype(np.complex64), np.dtype(np.complex128))
_REAL_TO_COMPLEX = {np.dtype(np.float32): np.dtype(np.complex64), np.dtype(np.float64): np.dtype(np.complex128)}


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(func: str, name: str, value, minimum: int | None = None) -> int:
    """An integer (not bool, not float), optionally >= minimum."""
    if not _is_int(value):
        raise ValueError(f"{func}: argument '{name}' must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{func}: argument '{name}' must be >= {minimum}, got {value}")
    return int(value)


def check_grid_size(func: str, name: str, n) -> int:
    """Grid size n of the n x n equiangular grid: an even integer >= 4."""
    n = check_int(func, name, n)
    if n < 4 or n % 2:
        raise ValueError(f"{func}: argument '{name}' must be an even integer >= 4 (grid n x n), got {n}")
    return n


def check_spins(func: str, spins) -> tuple[int, ...]:
    """A non-empty sequence of distinct integer spins, returned as a tuple."""
    if _is_int(spins) or not isinstance(spins, (Sequence, np.ndarray)) or isinstance(spins, str):
        raise ValueError(f"{func}: argument 'spins' must be a sequence of distinct integers, got {spins!r}")
    values = list(spins.tolist() if isinstance(spins, np.ndarray) else spins)
    if not values:
        raise ValueError(f"{func}: argument 'spins' must name at least one spin, got {spins!r}")
    for s in values:
        if not _is_int(s):
            raise ValueError(f"{func}: argument 'spins' must hold integers, got {s!r} ({type(s).__name__}) in {spins!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{func}: argument 'spins' must not repeat a spin, got {spins!r}")
    return tuple(int(s) for s in values)


def check_ell_max(func: str, ell_max, n: int, spins: tuple[int, ...], name: str = "ell_max") -> int:
    """Band limit: max|s| <= ell_max <= n/2 - 1."""
    ell_max = check_int(func, name, ell_max)
    top = n // 2 - 1
    low = max(abs(s) for s in spins)
    if not low <= ell_max <= top:
        raise ValueError(
            f"{func}: argument '{name}' must lie in [{low}, {top}] (max |spin| to n/2 - 1 for n = {n}, spins {spins}), got {ell_max}"
        )
    return ell_max


def complex_dtype(func: str, name: str, dtype, spins: tuple[int, ...]) -> np.dtype:
    """The complex dtype a transform computes in for an input of `dtype`."""
    dtype = np.dtype(dtype)
    if dtype in SUPPORTED_COMPLEX:
        return dtype
    if dtype in _REAL_TO_COMPLEX:
        if any(s != 0 for s in spins):
            raise ValueError(
                f"{func}: argument '{name}' is real ({dtype}) but spins {spins} include nonzero spins; "
                "spin-weighted functions with s != 0 must be complex64 or complex128"
            )
        return _REAL_TO_COMPLEX[dtype]
    raise ValueError(
        f"{func}: argument '{name}' has dtype {dtype}; expected complex64 or complex128 "
        "(float32 or float64 for spin 0 only)"
    )


def check_precision(func: str, precision) -> str:
    if precision not in ("highest", "fast"):
        raise ValueError(f"{func}: argument 'precision' must be 'highest' or 'fast', got {precision!r}")
    return precision
