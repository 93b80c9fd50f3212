"""sphcnn_grid_forward: the forward transform on the grids without kernels
(``mw``, ``mwss`` and ``healpix`` of :mod:`sphcnn_kernels.grids`),

    a_lm = integral f conj(sY_lm) dOmega
    (..., *grid.shape, S, C) -> (..., L, 2L - 1, S, C)  (real: (..., L, L, 1, C))

computed by :func:`sphcnn_kernels.grid_transforms.transform_forward` (the
McEwen-Wiaux sampling theorem on mw and mwss, the ring quadrature refined by
Jacobi iterations on HEALPix). It is an op so that, with several devices, a
batch sharded over them stays sharded (each device transforms its shard;
:mod:`sphcnn_kernels.ops.sharding`): XLA's partitioner gathers the batch at
the FFT of the plain jnp composition.

Parameters (static): grid, ell_max, spins, real, iterations, as
:func:`sphcnn_kernels.grid_transforms.forward` takes them, checked. No
target: the reference runs on every platform. Linear; differentiated by the
linear transpose of the reference, partitioned over the batch like the op
(:func:`sphcnn_kernels.ops.spec.reference_transpose_vjp`).
"""

from __future__ import annotations

import jax.numpy as jnp

from sphcnn_kernels import grid_transforms
from sphcnn_kernels.ops.spec import Op, reference_transpose_vjp, register


def _abstract(x, *, grid, ell_max, spins, real, **_):
    batch = x.shape[: x.ndim - len(grid.shape) - 2]
    orders = ell_max + 1 if real else 2 * ell_max + 1
    dtype = jnp.result_type(x.dtype, jnp.complex64)
    return x.update(shape=batch + (ell_max + 1, orders) + x.shape[-2:], dtype=dtype)


def _reference(x, **params):
    return grid_transforms.transform_forward(x, **params)


def _operand_shape(cotangent_shape: tuple, params: dict) -> tuple:
    return cotangent_shape[:-4] + params["grid"].shape + (len(params["spins"]), cotangent_shape[-1])


OP = Op(
    name="sphcnn_grid_forward",
    abstract_eval=_abstract,
    reference=_reference,
    targets={},
    direction="analysis",
    setting=lambda params: ("xla", params["grid"].n_rings),
    vjp=reference_transpose_vjp(_reference, _operand_shape, lambda rank, params: rank - 4),
    batch_axes=lambda params, operand_rank, result_rank: (tuple(range(operand_rank - len(params["grid"].shape) - 2)),
                                                           tuple(range(result_rank - 4))),
)
grid_forward = register(OP)
