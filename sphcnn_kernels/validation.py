"""The argument checks of sphcnn: transforms, model layers and data.

Every check raises ``ValueError`` naming the function (or module), the argument,
the value received and what was expected, before any kernel runs. The option
lists of the transforms are defined here, once; those of the model layers in
:mod:`sphcnn.nn.options`.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

# Option lists.
BACKENDS = ("xla", "ffi", "triton")                 # transform backends
BACKEND_OPTIONS = ("auto",) + BACKENDS              # what a backend argument may name ("auto" resolves to one)
PRECISIONS = ("highest", "fast")                    # matmul precision policies of the transforms
LAYOUTS = ("batch_major", "degree_major")           # spectral layouts
LAMBDA_MODES = ("auto", "table", "onthefly")        # where the CUDA kernels get lambda from

SUPPORTED_COMPLEX = (np.dtype(np.complex64), np.dtype(np.complex128))
REAL_TO_COMPLEX = {np.dtype(np.float32): np.dtype(np.complex64), np.dtype(np.float64): np.dtype(np.complex128)}


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(func: str, name: str, value, minimum: int | None = None) -> int:
    """An integer (not bool, not float), optionally >= minimum."""
    if not _is_int(value):
        raise ValueError(f"{func}: argument '{name}' must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{func}: argument '{name}' must be >= {minimum}, got {value}")
    return int(value)


def positive_int(func: str, name: str, value) -> int:
    return integer(func, name, value, minimum=1)


def grid_size(func: str, name: str, n) -> int:
    """Grid size n of the n x n equiangular grid: an even integer >= 4."""
    n = integer(func, name, n)
    if n < 4 or n % 2:
        raise ValueError(f"{func}: argument '{name}' must be an even integer >= 4 (grid n x n), got {n}")
    return n


def distinct_values(func: str, name: str, value, *, valid, items: str, noun: str, convert) -> tuple:
    """A non-empty sequence (or array) of distinct values, each passing `valid`,
    returned as a tuple of convert(value); `items` names what the sequence holds
    (e.g. "integers"), `noun` one of them (e.g. "spin"), for the messages.
    Distinctness is judged on the converted values (2 and 2.0 repeat)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ValueError(f"{func}: argument '{name}' must be a non-empty sequence of distinct {items}, got {value!r}")
    values = list(value.tolist() if isinstance(value, np.ndarray) else value)
    if not values:
        raise ValueError(f"{func}: argument '{name}' must name at least one {noun}, got {value!r}")
    for v in values:
        if not valid(v):
            raise ValueError(f"{func}: argument '{name}' must hold {items}, got {v!r} ({type(v).__name__}) in {value!r}")
    converted = tuple(convert(v) for v in values)
    if len(set(converted)) != len(converted):
        raise ValueError(f"{func}: argument '{name}' must not repeat a {noun}, got {value!r}")
    return converted


def spins(func: str, name: str, value) -> tuple[int, ...]:
    """A non-empty sequence of distinct integer spins, returned as a tuple."""
    return distinct_values(func, name, value, valid=_is_int, items="integers", noun="spin", convert=int)


def ell_max(func: str, value, n: int, spin_values: tuple[int, ...], name: str = "ell_max") -> int:
    """Band limit: max|s| <= ell_max <= n/2 - 1."""
    value = integer(func, name, value)
    top = n // 2 - 1
    low = max(abs(s) for s in spin_values)
    if low > top:
        raise ValueError(
            f"{func}: n = {n} is too small for spins {spin_values}: a spin-{low} function needs degrees up to "
            f"ell_max >= {low}, i.e. n >= {2 * low + 2}"
        )
    if not low <= value <= top:
        raise ValueError(
            f"{func}: argument '{name}' must lie in [{low}, {top}] (max |spin| to n/2 - 1 for n = {n}, "
            f"spins {spin_values}), got {value}"
        )
    return value


def complex_dtype(func: str, name: str, dtype, spin_values: tuple[int, ...]) -> np.dtype:
    """The complex dtype a transform computes in for an input of `dtype`."""
    dtype = np.dtype(dtype)
    if dtype in SUPPORTED_COMPLEX:
        return dtype
    if dtype in REAL_TO_COMPLEX:
        if any(s != 0 for s in spin_values):
            raise ValueError(
                f"{func}: argument '{name}' is real ({dtype}) but spins {spin_values} include nonzero spins; "
                "spin-weighted functions with s != 0 must be complex64 or complex128"
            )
        return REAL_TO_COMPLEX[dtype]
    raise ValueError(
        f"{func}: argument '{name}' has dtype {dtype}; expected complex64 or complex128 "
        "(float32 or float64 for spin 0 only)"
    )


DOUBLE = (np.dtype(np.complex128), np.dtype(np.float64))


def double_enabled(func: str, name: str, dtype) -> None:
    """ValueError when `dtype` is float64 or complex128 and JAX computes in 32 bits
    (jax_enable_x64 off): JAX would silently demote the data to float32/complex64."""
    if np.dtype(dtype) in DOUBLE and not jax.config.jax_enable_x64:
        raise ValueError(
            f"{func}: argument '{name}' is {np.dtype(dtype)}, but jax_enable_x64 is off, so JAX would compute in "
            "32 bits (complex64) without saying so. Enable double precision first, with "
            "jax.config.update('jax_enable_x64', True) at the start of the program or JAX_ENABLE_X64=1 in the "
            "environment, or use complex64 / float32 data."
        )


def choice(func: str, name: str, value, options: tuple[str, ...]) -> str:
    """One of `options` (strings)."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{func}: argument '{name}' must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def flag(func: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{func}: argument '{name}' must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def path(func: str, name: str, value) -> Path:
    """A str or os.PathLike, returned as an expanded Path."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{func}: argument '{name}' must be a non-empty path (str or os.PathLike), got {value!r}")
    return Path(value).expanduser()


def optional_path(func: str, name: str, value) -> Path | None:
    return None if value is None else path(func, name, value)


def spatial_input(module: str, x, resolution: int, spin_values: tuple[int, ...], channels: int) -> None:
    """x must be (batch..., n, n, len(spins), channels) with n = resolution."""
    expected = (resolution, resolution, len(spin_values), channels)
    if x.ndim < 5 or tuple(x.shape[-4:]) != expected:
        raise ValueError(
            f"{module}: input has shape {tuple(x.shape)}; expected (batch, {resolution}, {resolution}, "
            f"{len(spin_values)}, {channels}) (spins {spin_values}, {channels} channels)"
        )


def spectral_input(module: str, x, ell: int, spin_values: tuple[int, ...], channels: int,
                   layout: str = "batch_major") -> None:
    """x must be (batch..., ell + 1, 2 ell + 1, len(spins), channels), or
    (ell + 1, batch..., 2 ell + 1, ...) degree-major."""
    tail = (2 * ell + 1, len(spin_values), channels)
    if layout == "degree_major":
        ok = x.ndim >= 5 and x.shape[0] == ell + 1 and tuple(x.shape[-3:]) == tail
        expected = f"({ell + 1}, batch, {2 * ell + 1}, {len(spin_values)}, {channels})"
    else:
        ok = x.ndim >= 5 and tuple(x.shape[-4:]) == (ell + 1,) + tail
        expected = f"(batch, {ell + 1}, {2 * ell + 1}, {len(spin_values)}, {channels})"
    if not ok:
        raise ValueError(
            f"{module}: input has shape {tuple(x.shape)}; expected {expected} ({layout} coefficients up to "
            f"ell_max = {ell}, spins {spin_values}, {channels} channels)"
        )


def input_spins(module: str, built_for: tuple[int, ...], given) -> None:
    """Optional call-time check of the spins an input carries."""
    if given is None:
        return
    given = spins(module, "spins", given)
    if given != built_for:
        raise ValueError(f"{module}: input carries spins {given}, but the layer was built for spins {built_for}")
