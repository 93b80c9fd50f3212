"""A functional train step for sphcnn models: the model split into a static
graph and pure pytrees (parameters, batch statistics, optimizer state), so a
whole step (forward, backward, optimizer update, batch-norm statistics) is one
jax.jit-compiled function.

Complex parameters: for a real loss L of a complex parameter w = x + iy, jax.grad
returns dL/dx - i dL/dy, the conjugate of the steepest-ascent direction, so the
gradients of complex parameters are conjugated before the optimizer sees them
(``conjugate_complex_gradients``); real parameters are untouched.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def conjugate_complex_gradients() -> optax.GradientTransformation:
    """Conjugate the gradients of complex parameters (see the module docstring)."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: jnp.conj(g) if jnp.iscomplexobj(g) else g, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def adam(learning_rate) -> optax.GradientTransformation:
    """Adam for models with complex parameters (gradients conjugated first)."""
    return optax.chain(conjugate_complex_gradients(), optax.adam(learning_rate))


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


def train_step(model: Model, optimizer: optax.GradientTransformation, state: TrainState, images: jax.Array,
               labels: jax.Array, weights: jax.Array | None = None, axis_name: str | None = None
               ) -> tuple[TrainState, dict]:
    """One optimizer step on a batch; returns the new state and {'loss', 'accuracy'}.

    images (B, n, n, S, C), labels (B,) int, weights (B,) (default ones). Under
    data parallelism (inside shard_map, with the model's batch norms built with
    the same axis_name) each device passes its shard and `axis_name`: the loss is
    the weighted mean over the global batch and the gradients are summed across
    devices, so the result equals the single-device step. Jit with ``model`` and
    ``optimizer`` static (e.g. functools.partial).
    """
    if weights is None:
        weights = jnp.ones(labels.shape, jnp.float32)

    def total(value):
        return value if axis_name is None else jax.lax.psum(value, axis_name)

    weight_sum = jnp.maximum(total(jnp.sum(weights)), 1.0)

    def loss_fn(params, batch_stats):
        network = nnx.merge(model.train_graph, params, batch_stats, copy=True)
        logits = network(images, example_weights=weights)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return jnp.sum(losses * weights) / weight_sum, (logits, nnx.state(network, nnx.BatchStat))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.batch_stats)
    grads = jax.tree.map(total, grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    metrics = {"loss": total(loss), "accuracy": total(jnp.sum(correct * weights)) / weight_sum}
    return TrainState(params, batch_stats, opt_state, state.step + 1), metrics


def predict(model: Model, state: TrainState, images: jax.Array) -> jax.Array:
    """Logits in evaluation mode (running batch statistics)."""
    return nnx.merge(model.eval_graph, state.params, state.batch_stats, copy=True)(images)
