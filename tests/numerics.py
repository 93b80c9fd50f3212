"""The tests' comparison of results: one relative error, one closeness check."""

from __future__ import annotations

import jax
import numpy as np


def relative_error(got, want) -> float:
    """max |got - want| relative to max |want| (to 1 where want is all zero, e.g.
    the b_00 of spin-weighted outputs), in float64/complex128.

    Args:
        got, want: arrays of the same shape (NumPy or JAX).

    Returns:
        The error as a Python float.
    """
    got = np.asarray(got).astype(np.complex128)
    want = np.asarray(want).astype(np.complex128)
    scale = float(np.max(np.abs(want), initial=0.0))
    return float(np.max(np.abs(got - want), initial=0.0)) / (scale if scale > 0 else 1.0)


def assert_close(got, want, tolerance: float) -> None:
    """Every leaf of the pytree `got` finite, of the shape of its leaf in `want`
    and within `tolerance` of it (relative_error)."""
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert np.shape(g) == np.shape(w), (np.shape(g), np.shape(w))
        assert np.all(np.isfinite(np.asarray(g))), "not finite"
        error = relative_error(g, w)
        assert error <= tolerance, f"relative error {error:.3e} > {tolerance:.1e}"
