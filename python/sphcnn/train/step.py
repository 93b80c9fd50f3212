"""A functional train step for sphcnn models: the model split into a static
graph and pure pytrees (parameters, batch statistics, optimizer state), so a
whole step (forward, backward, optimizer update, batch-norm statistics) is one
jax.jit-compiled function.

Complex parameters: for a real loss L of a complex parameter w = x + iy, jax.grad
returns dL/dx - i dL/dy, the conjugate of the steepest-ascent direction; the
optimizers of :mod:`sphcnn.train.optimizers` conjugate those gradients first.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from sphcnn.nn.collectives import sum_over_devices


class TrainState(NamedTuple):
    """Everything a step changes, as pytrees."""

    params: Any
    batch_stats: Any
    opt_state: Any
    step: jax.Array


class Model(NamedTuple):
    """The static graphs of a model in training and in evaluation mode."""

    train_graph: Any
    eval_graph: Any


def split(model: nnx.Module, optimizer: optax.GradientTransformation) -> tuple[Model, TrainState]:
    """Static graphs and the initial train state of a model."""
    model.train()
    train_graph, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    model.eval()
    eval_graph = nnx.split(model, nnx.Param, nnx.BatchStat)[0]
    model.train()
    return Model(train_graph, eval_graph), TrainState(params, batch_stats, optimizer.init(params), jnp.zeros((), jnp.int32))


def example_keys(seed: int, step: jax.Array, count: int, axis_name: str | None = None) -> jax.Array:
    """Random keys (count,) of the examples of a step (augmentation): a function
    of (seed, step, the example's row in the global batch), so that a batch split
    over devices draws what one device would."""
    key = jax.random.fold_in(jax.random.key(seed), step)
    first = 0 if axis_name is None else jax.lax.axis_index(axis_name) * count
    return jax.vmap(lambda row: jax.random.fold_in(key, row))(first + jnp.arange(count))


def train_step(model: Model, optimizer: optax.GradientTransformation, task, seed: int, state: TrainState,
               batch: dict, axis_name: str | None = None) -> tuple[TrainState, dict]:
    """One optimizer step on a batch of `task`; returns the new state and the
    weighted means of the task's per-example metrics (and 'loss').

    batch: the task's arrays with float32 ``weights`` (B,). Under data
    parallelism (inside shard_map, with the model's batch norms built with the
    same axis_name) each device passes its shard and `axis_name`: the loss is
    the weighted mean over the global batch and the gradients are summed across
    devices, so the result equals the single-device step. Jit with ``model``,
    ``optimizer``, ``task`` and ``seed`` static (e.g. functools.partial).
    """
    weights = batch["weights"]

    def total(value):
        return value if axis_name is None else jax.lax.psum(value, axis_name)

    weight_sum = jnp.maximum(total(jnp.sum(weights)), 1.0)
    inputs = task.model_inputs(batch, True, example_keys(seed, state.step, weights.shape[0], axis_name))

    def loss_fn(params, batch_stats):
        network = nnx.merge(model.train_graph, params, batch_stats, copy=True)
        outputs = network(inputs, example_weights=weights)
        loss = jnp.sum(task.losses(outputs, batch) * weights) / weight_sum
        return loss, (outputs, nnx.state(network, nnx.BatchStat))

    (_, (outputs, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.batch_stats)
    if axis_name is not None:
        # summed over the devices once (automatic differentiation already sums the
        # gradients of the replicated parameters under shard_map's typing)
        grads = jax.tree.map(lambda g: sum_over_devices(g, axis_name), grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {name: total(jnp.sum(values * weights)) / weight_sum
               for name, values in task.example_metrics(outputs, batch).items()}
    return TrainState(params, batch_stats, opt_state, state.step + 1), metrics


def predict(model: Model, task, state: TrainState, batch: dict):
    """The model's outputs on a batch in evaluation mode (running batch statistics)."""
    network = nnx.merge(model.eval_graph, state.params, state.batch_stats, copy=True)
    return network(task.model_inputs(batch, False, example_keys(0, jnp.zeros((), jnp.int32), len(batch["weights"]))))


def example_metrics(model: Model, task, state: TrainState, batch: dict) -> dict:
    """The task's per-example metrics (and 'loss') on a batch in evaluation mode."""
    return task.example_metrics(predict(model, task, state, batch), batch)
