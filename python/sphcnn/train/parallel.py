"""Data parallelism: a 1-d device mesh over axis 'batch'; the train and
evaluation steps run under jax.shard_map with the batch sharded and the state
replicated (batch-norm statistics and gradients summed across devices inside
the step), compiled with the XLA options of sphcnn.train.runtime (CUDA graphs
on GPUs). Over several hosts, jax.distributed.initialize() first (see the
README): every host builds the same global batches and contributes its rows.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sphcnn.train import runtime
from sphcnn.train import step as training

AXIS = "batch"


def device_mesh() -> Mesh:
    """All devices (of every host) on one 'batch' axis."""
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def check_batch(batch_size: int, mesh: Mesh) -> None:
    count = mesh.devices.size
    if batch_size % count:
        raise ValueError(f"batch_size {batch_size} must be divisible by the number of devices ({count})")


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Global host arrays -> arrays sharded over 'batch' (this host's rows only
    are transferred when several processes take part)."""
    sharding = NamedSharding(mesh, P(AXIS))
    if jax.process_count() == 1:
        return {k: jax.device_put(v, sharding) for k, v in batch.items()}
    rows = len(next(iter(batch.values()))) // jax.process_count()
    start = jax.process_index() * rows
    return {k: jax.make_array_from_process_local_data(sharding, v[start:start + rows], v.shape)
            for k, v in batch.items()}


def to_host(tree):
    """The whole of (a pytree of) possibly multi-host sharded arrays as NumPy
    arrays on every host."""

    def gather(array: jax.Array) -> np.ndarray:
        if array.is_fully_addressable:
            return np.asarray(array)
        return np.asarray(multihost_utils.process_allgather(array, tiled=True))

    return jax.tree.map(gather, tree)


def is_chief() -> bool:
    """True in the process that writes files and prints (process 0)."""
    return jax.process_index() == 0


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, NamedSharding(mesh, P()))


def train_step_fn(model: training.Model, optimizer: optax.GradientTransformation, task, seed: int, mesh: Mesh):
    """jit(shard_map(train_step)): (state, batch) -> (state, metrics), the batch
    dict sharded over the devices, the state replicated."""
    step = functools.partial(training.train_step, model, optimizer, task, seed, axis_name=AXIS)
    sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=0, compiler_options=runtime.step_compiler_options())


def predict_fn(model: training.Model, task, mesh: Mesh):
    """jit(shard_map(predict)): (state, batch) -> outputs sharded like the batch."""
    sharded = jax.shard_map(functools.partial(training.predict, model, task), mesh=mesh, in_specs=(P(), P(AXIS)),
                            out_specs=P(AXIS))
    return jax.jit(sharded, compiler_options=runtime.step_compiler_options())


def metrics_fn(model: training.Model, task, mesh: Mesh):
    """jit(shard_map(example_metrics)): (state, batch) -> per-example metrics
    (name -> (B,)) sharded like the batch."""
    sharded = jax.shard_map(functools.partial(training.example_metrics, model, task), mesh=mesh,
                            in_specs=(P(), P(AXIS)), out_specs=P(AXIS))
    return jax.jit(sharded, compiler_options=runtime.step_compiler_options())


def all_finite(tree) -> jax.Array:
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))
