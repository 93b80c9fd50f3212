"""Optimizers for models with complex parameters and the learning-rate schedule
of the training recipes.

For a real loss L of a complex parameter w = x + iy, jax.grad returns
dL/dx - i dL/dy, the conjugate of the steepest-ascent direction, so the
gradients of complex parameters are conjugated before the optimizer sees them
(``conjugate_complex_gradients``); real parameters are untouched."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def conjugate_complex_gradients() -> optax.GradientTransformation:
    """Conjugate the gradients of complex parameters (see the module docstring)."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: jnp.conj(g) if jnp.iscomplexobj(g) else g, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def adam(learning_rate) -> optax.GradientTransformation:
    """Adam for models with complex parameters (gradients conjugated first)."""
    return optax.chain(conjugate_complex_gradients(), optax.adam(learning_rate))



def learning_rate_schedule(base: float, steps_per_epoch: int, warmup_epochs: float, num_epochs: float):
    """lr(step) = base * min(1, e / warmup) * (1 + cos(pi * max(0, (e - warmup) / (epochs - warmup)))) / 2
    with e = step / steps_per_epoch (linear warm-up, then cosine decay to 0)."""

    def schedule(step):
        epoch = jnp.asarray(step, jnp.float32) / steps_per_epoch
        warm = jnp.minimum(1.0, epoch / warmup_epochs) if warmup_epochs > 0 else 1.0
        span = max(num_epochs - warmup_epochs, 1e-9)
        progress = jnp.clip((epoch - warmup_epochs) / span, 0.0, 1.0)
        return base * warm * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))

    return schedule


def make_optimizer(schedule, weight_decay: float = 0.0) -> optax.GradientTransformation:
    """Adam with complex gradients conjugated first; weight decay (L2 on the
    parameters with more than one dimension, as the original) if nonzero."""
    parts = [conjugate_complex_gradients()]
    if weight_decay > 0:
        parts.append(optax.add_decayed_weights(weight_decay, mask=lambda p: jax.tree.map(lambda v: v.ndim > 1, p)))
    parts.append(optax.adam(schedule))
    return optax.chain(*parts)
