"""The transform backends as implementations of the analysis and synthesis ops.

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
