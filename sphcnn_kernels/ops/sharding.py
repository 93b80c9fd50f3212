"""Batch-sharded inputs stay sharded through an op.

XLA cannot see into a custom call, and its partitioner gathers the operand of
one (and of an FFT over a sharded batch) onto every device. An op that maps its
batch axes independently declares them (:class:`~sphcnn_kernels.ops.spec.Op`'s
``batch_axes``); its lowering is then wrapped in
:func:`jax.experimental.custom_partitioning.custom_partitioning` with a
sharding rule in which the batch axes of the operand and of the result share
their factors and every other axis needs replication: each device runs the op
on its own shard of the batch, and the result keeps the operand's batch
sharding. With one device the wrapper lowers to the op itself; inside
``shard_map`` the op sees its local shard anyway.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax._src import dispatch
from jax.experimental.custom_partitioning import custom_partitioning
from jax.extend.core import Primitive
from jax.sharding import NamedSharding, PartitionSpec

from sphcnn_kernels.ops.device_varying import varying_axes


def needs_devices(primitive: Primitive) -> None:
    """Lets the lowering of `primitive` see the computation's devices, which a
    partitioned lowering needs (JAX passes them only to the primitives it lists
    in dispatch.prim_requires_devices_during_lowering)."""
    dispatch.prim_requires_devices_during_lowering.add(primitive)


def partitioned(operand) -> bool:
    """Whether a computation on `operand` is wrapped by :func:`batch_partitioned`:
    where several devices may hold its batch, but not inside shard_map (an
    operand varying over manual axes is a shard already)."""
    return jax.device_count() > 1 and not varying_axes(operand)


def over_batch(run: Callable, operand: jax.Array, operand_axes: tuple[int, ...],
               result_axes: tuple[int, ...]) -> jax.Array:
    """run(operand), partitioned over the batch axes where :func:`partitioned` says
    so (for a function traced outside an op's lowering, e.g. a VJP's backward).

    Args:
        run: fn(operand) -> result, mapping its batch axes independently.
        operand: the operand.
        operand_axes: the operand's batch axes.
        result_axes: the result's batch axes, as many, in the same order.

    Returns:
        run's result.
    """
    if not partitioned(operand):
        return run(operand)
    aval = jax.ShapeDtypeStruct(operand.shape, operand.dtype)
    return batch_partitioned(run, aval, operand_axes, result_axes)(operand)


def _spec(rank: int, batch_axes: tuple[int, ...], batch_specs: tuple) -> PartitionSpec:
    entries = [None] * rank
    for axis, entry in zip(batch_axes, batch_specs):
        entries[axis] = entry
    return PartitionSpec(*entries)


def _factors(rank: int, batch_axes: tuple[int, ...], prefix: str) -> tuple[str, ...]:
    """Factor names of one array's axes: b<i> for its i-th batch axis, <prefix><k> otherwise."""
    return tuple(f"b{batch_axes.index(k)}" if k in batch_axes else f"{prefix}{k}" for k in range(rank))


def batch_partitioned(run: Callable, operand: jax.core.ShapedArray, operand_axes: tuple[int, ...],
                      result_axes: tuple[int, ...]) -> Callable:
    """`run` (one operand -> one result) partitioned over its batch axes.

    Args:
        run: fn(operand) -> result, for any batch size; its constants (the
            plan's tables) become replicated operands of the partitioned call.
        operand: the operand's abstract value.
        operand_axes: the operand's batch axes.
        result_axes: the result's batch axes, as many, in the same order.

    Returns:
        fn(operand) -> result, the same function, partitioned over the batch.
    """
    operand_axes, result_axes = tuple(operand_axes), tuple(result_axes)
    closed = jax.make_jaxpr(run)(jax.ShapeDtypeStruct(operand.shape, operand.dtype))
    consts = tuple(np.asarray(c) for c in closed.consts)
    operand_rank, result_rank = len(operand.shape), len(closed.out_avals[0].shape)

    def call(x, *tables):
        return jax.core.eval_jaxpr(closed.jaxpr, tables, x)[0]

    def local(x, *tables):
        return run(x)  # traced again for the shard's shape

    def shardings(mesh, operand_spec):
        spec = tuple(operand_spec) + (None,) * operand_rank
        batch = tuple(spec[axis] for axis in operand_axes)
        return (NamedSharding(mesh, _spec(operand_rank, operand_axes, batch)),
                NamedSharding(mesh, _spec(result_rank, result_axes, batch)))

    def partition(mesh, arg_shapes, result_shape):
        x, result = shardings(mesh, arg_shapes[0].sharding.spec)
        replicated = NamedSharding(mesh, PartitionSpec())
        return mesh, local, result, (x,) + (replicated,) * len(consts)

    def infer(mesh, arg_shapes, result_shape):
        return shardings(mesh, arg_shapes[0].sharding.spec)[1]

    x_factors = _factors(operand_rank, operand_axes, "i")
    result_factors = _factors(result_rank, result_axes, "o")
    table_factors = [tuple(f"t{k}_{d}" for d in range(c.ndim)) for k, c in enumerate(consts)]
    # in the order the factors first appear (operands, then the result): Shardy wants them sorted
    others = tuple(f for f in x_factors + sum(table_factors, ()) + result_factors if not f.startswith("b"))
    operands = ", ".join(" ".join(f) for f in (x_factors, *table_factors))
    wrapped = custom_partitioning(call)
    wrapped.def_partition(partition=partition, infer_sharding_from_operands=infer,
                          sharding_rule=f"{operands} -> {' '.join(result_factors)}",
                          need_replication_factors=others)
    return lambda x: wrapped(x, *consts)
