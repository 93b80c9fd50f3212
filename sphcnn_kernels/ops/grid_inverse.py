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
transpose of the reference, partitioned over the batch like the op.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sphcnn_kernels import grid_transforms
from sphcnn_kernels.ops.grid_forward import transposed
from sphcnn_kernels.ops.sharding import over_batch
from sphcnn_kernels.ops.spec import Op, register


def _abstract(a, *, grid, real, **_):
    dtype = jnp.finfo(a.dtype).dtype if real else a.dtype
    return a.update(shape=a.shape[:-4] + grid.shape + a.shape[-2:], dtype=dtype)


def _reference(a, *, ell_max, **params):
    return grid_transforms.transform_inverse(a, **params)


def _forward(bind, a, **params):
    return bind(a, **params), jnp.zeros((), a.dtype)  # the residual: a's dtype


def _backward(like, cotangent, *, grid, ell_max, spins, real, **params):
    run = functools.partial(_reference, grid=grid, ell_max=ell_max, spins=spins, real=real, **params)

    def operand_shape(ct):
        batch = ct.shape[: ct.ndim - len(grid.shape) - 2]
        return batch + (ell_max + 1, ell_max + 1 if real else 2 * ell_max + 1, len(spins), ct.shape[-1])

    axes = tuple(range(cotangent.ndim - len(grid.shape) - 2))
    return (over_batch(lambda ct: transposed(run, operand_shape(ct), like.dtype, ct), cotangent, axes, axes),)


OP = Op(
    name="sphcnn_grid_inverse",
    abstract_eval=_abstract,
    reference=_reference,
    targets={},
    direction="synthesis",
    setting=lambda params: ("xla", params["grid"].n_rings),
    vjp=(_forward, _backward),
    batch_axes=lambda params, operand_rank, result_rank: (tuple(range(operand_rank - 4)),
                                                           tuple(range(result_rank - len(params["grid"].shape) - 2))),
)
grid_inverse = register(OP)
