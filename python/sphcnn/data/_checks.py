"""Argument checks of the data package: each failure is a ValueError naming the
function, the argument, the value received and what was expected."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sphcnn_kernels import _validation as v


def integer(func: str, name: str, value, minimum: int | None = None) -> int:
    """An integer (not bool, not float), optionally >= minimum."""
    return v.check_int(func, name, value, minimum=minimum)


def grid_size(func: str, name: str, value) -> int:
    """n of the n x n equiangular grid: an even integer >= 4."""
    return v.check_grid_size(func, name, value)


def flag(func: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{func}: argument '{name}' must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def choice(func: str, name: str, value, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{func}: argument '{name}' must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def path(func: str, name: str, value) -> Path:
    """A str or os.PathLike, returned as an expanded Path."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{func}: argument '{name}' must be a non-empty path (str or os.PathLike), got {value!r}")
    return Path(value).expanduser()


def optional_path(func: str, name: str, value) -> Path | None:
    return None if value is None else path(func, name, value)
