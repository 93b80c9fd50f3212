"""The transform backends as implementations of the analysis and synthesis ops,
and what the grid ops (:mod:`sphcnn_kernels.ops.grid_analysis`,
:mod:`sphcnn_kernels.ops.grid_synthesis`) share.

Each backend module (:mod:`sphcnn_kernels.backends`) has ``analysis`` and
``synthesis`` stages. Backends that write only batch-major coefficients get
them moved into place around their stage (the FFI kernels write both layouts
themselves).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import jax
import jax.numpy as jnp

from sphcnn_kernels.grids import Grid


def stage(name: str, direction: str) -> Callable:
    """fn(operand, platform=..., **params): `direction` ('analysis' or
    'synthesis') on `backend` ('xla', 'ffi', 'triton') in the requested layout.

    Args:
        name: the backend module's name.
        direction: the stage.

    Returns:
        The implementation; platform defaults to 'other' (any platform without
        kernels).
    """

    def run(operand: jax.Array, *, plan, sign, weighted, backend: str, precision, layout, mode,
            platform: str = "other") -> jax.Array:
        module = importlib.import_module(f"sphcnn_kernels.backends.{name}_backend")
        native = layout == "batch_major" or module.WRITES_DEGREE_MAJOR
        stage_layout = layout if native else "batch_major"
        if not native and direction == "synthesis":
            operand = jnp.moveaxis(operand, 0, -4)
        out = getattr(module, direction)(operand, plan=plan, sign=sign, weighted=weighted, precision=precision,
                                         layout=stage_layout, mode=mode, platform=platform)
        if not native and direction == "analysis":
            out = jnp.moveaxis(out, -4, 0)
        return out

    return run


def batch_axis(layout: str) -> int:
    """Where the leading batch axis of coefficients sits: degree-major ones start with the degree."""
    return 1 if layout == "degree_major" else 0


def coefficient_batch(params: dict, rank: int) -> tuple[int, ...]:
    """The batch axes of coefficients of `rank` axes in the layout params['layout']."""
    start = batch_axis(params["layout"])
    return tuple(range(start, start + rank - 4))


def leading_batch(into: Callable[[dict], int], out: Callable[[dict], int]) -> Callable:
    """The batching rule of a one-operand op that maps a leading batch: the
    vmapped axis moves to `into(params)`, the result's is `out(params)`."""

    def rule(primitive, args, dims, **params):
        (operand,), (dim,) = args, dims
        return primitive.bind(jnp.moveaxis(operand, dim, into(params)), **params), out(params)

    return rule


def grid_setting(params: dict) -> tuple[str, int]:
    """(backend option, grid size) of a grid op: its backend and the number of rings."""
    return params["backend"], params["grid"].shape[0]


def orders_apart(operand: jax.Array, *, grid: Grid, ell_max: int, **_) -> bool:
    """Whether every order |m| <= ell_max has a longitude frequency bin of its own
    (nlon >= 2 ell_max + 1), which the grid ops' kernels require."""
    return grid.shape[1] >= 2 * ell_max + 1


def leading_batch_axes(params: dict, operand_rank: int, result_rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The batch axes of a grid op: every axis before the last four, of operand and result."""
    return tuple(range(operand_rank - 4)), tuple(range(result_rank - 4))


def check_grid_operand(func: str, name: str, shape: tuple[int, ...], *, grid: Grid, ell_max: int,
                       spins: tuple[int, ...], coefficients: bool) -> None:
    """Raises a ValueError unless `grid` is a quadrature latitude-longitude grid and
    `shape` is that of maps (..., nlat, nlon, S, C) or coefficients
    (..., ell_max + 1, 2 ell_max + 1, S, C) of a grid op.

    Args:
        func: the op, for the message.
        name: the operand's name, for the message.
        shape: the operand's shape.
        grid: the op's grid parameter.
        ell_max: the op's band limit.
        spins: the op's spins parameter.
        coefficients: whether the operand holds coefficients (else maps).
    """
    if not isinstance(grid, Grid) or grid.analysis_method != "quadrature":
        raise ValueError(f"{func}: parameter 'grid' is {grid!r}; expected an equiangular, gauss_legendre or "
                         "driscoll_healy grid of sphcnn_kernels.grids (other grids run "
                         "sphcnn_kernels.grid_transforms.forward and inverse)")
    want = ((ell_max + 1, 2 * ell_max + 1) if coefficients else grid.shape) + (len(spins),)
    if len(shape) < 4 or tuple(shape[-4:-1]) != want:
        raise ValueError(f"{func}: argument '{name}' has shape {tuple(shape)}; expected (..., "
                         f"{', '.join(map(str, want))}, n_channels) for {grid!r}, ell_max = {ell_max} and spins "
                         f"{tuple(spins)}")
