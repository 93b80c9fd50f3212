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
linear transpose of the reference, partitioned over the batch like the op.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sphcnn_kernels import grid_transforms
from sphcnn_kernels.ops.sharding import over_batch
from sphcnn_kernels.ops.spec import Op, register


def _abstract(x, *, grid, ell_max, spins, real, **_):
    batch = x.shape[: x.ndim - len(grid.shape) - 2]
    orders = ell_max + 1 if real else 2 * ell_max + 1
    dtype = jnp.result_type(x.dtype, jnp.complex64)
    return x.update(shape=batch + (ell_max + 1, orders) + x.shape[-2:], dtype=dtype)


def _reference(x, **params):
    return grid_transforms.transform_forward(x, **params)


def _forward(bind, x, **params):
    return bind(x, **params), jnp.zeros((), x.dtype)  # the residual: x's dtype


def _backward(like, cotangent, *, grid, spins, **params):
    run = functools.partial(_reference, grid=grid, spins=spins, **params)

    def operand_shape(ct):
        return ct.shape[:-4] + grid.shape + (len(spins), ct.shape[-1])

    axes = tuple(range(cotangent.ndim - 4))
    return (over_batch(lambda ct: transposed(run, operand_shape(ct), like.dtype, ct), cotangent, axes, axes),)


def transposed(run, shape: tuple[int, ...], dtype, cotangent: jax.Array) -> jax.Array:
    """The linear transpose of `run` at `cotangent`.

    Traced where it is called, inside the partitioned function (whose
    constants are then the reference's tables only) and again for each shard.

    Args:
        run: a linear function of one operand.
        shape: the operand's shape for this cotangent.
        dtype: the operand's dtype.
        cotangent: a cotangent of run's result.

    Returns:
        The operand's cotangent.
    """
    return jax.linear_transpose(run, jax.ShapeDtypeStruct(shape, dtype))(cotangent)[0]


OP = Op(
    name="sphcnn_grid_forward",
    abstract_eval=_abstract,
    reference=_reference,
    targets={},
    direction="analysis",
    setting=lambda params: ("xla", params["grid"].n_rings),
    vjp=(_forward, _backward),
    batch_axes=lambda params, operand_rank, result_rank: (tuple(range(operand_rank - len(params["grid"].shape) - 2)),
                                                           tuple(range(result_rank - 4))),
)
grid_forward = register(OP)
