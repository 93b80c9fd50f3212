"""sphcnn_grid_inverse: the inverse transform on the grids without kernels
(``mw``, ``mwss`` and ``healpix`` of :mod:`sphcnn_kernels.grids`),

    f = sum_lm a_lm sY_lm at the grid points
    (..., L, 2L - 1, S, C) (real: (..., L, L, 1, C)) -> (..., *grid.shape, S, C)

computed by :func:`sphcnn_kernels.grid_transforms.transform_inverse`; an op
so that a batch sharded over devices stays sharded, as
:mod:`sphcnn_kernels.ops.grid_forward`.

Parameters (static): grid, ell_max (a's band limit), spins, real, as
:func:`sphcnn_kernels.grid_transforms.inverse` takes them, checked. No target:
the reference runs on every platform. Linear; differentiated by the linear
transpose of the reference, partitioned over the batch like the op
(:func:`sphcnn_kernels.ops.spec.reference_transpose_vjp`).
"""

from __future__ import annotations

import jax.numpy as jnp

from sphcnn_kernels import grid_transforms
from sphcnn_kernels.ops.spec import Op, reference_transpose_vjp, register


def _abstract(a, *, grid, real, **_):
    dtype = jnp.finfo(a.dtype).dtype if real else a.dtype
    return a.update(shape=a.shape[:-4] + grid.shape + a.shape[-2:], dtype=dtype)


def _reference(a, *, ell_max, **params):
    return grid_transforms.transform_inverse(a, **params)


def _operand_shape(cotangent_shape: tuple, params: dict) -> tuple:
    ell_max, grid = params["ell_max"], params["grid"]
    batch = cotangent_shape[: len(cotangent_shape) - len(grid.shape) - 2]
    orders = ell_max + 1 if params["real"] else 2 * ell_max + 1
    return batch + (ell_max + 1, orders, len(params["spins"]), cotangent_shape[-1])


def _batch_rank(rank: int, params: dict) -> int:
    return rank - len(params["grid"].shape) - 2


OP = Op(
    name="sphcnn_grid_inverse",
    abstract_eval=_abstract,
    reference=_reference,
    targets={},
    direction="synthesis",
    setting=lambda params: ("xla", params["grid"].n_rings),
    vjp=reference_transpose_vjp(_reference, _operand_shape, _batch_rank),
    batch_axes=lambda params, operand_rank, result_rank: (tuple(range(operand_rank - 4)),
                                                           tuple(range(_batch_rank(result_rank, params)))),
)
grid_inverse = register(OP)
