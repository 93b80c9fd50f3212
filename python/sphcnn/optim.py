"""Learning-rate schedule and optimizer of the training recipes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from sphcnn.training import conjugate_complex_gradients


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
