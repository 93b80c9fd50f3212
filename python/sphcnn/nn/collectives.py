"""Sums over devices under jax.shard_map that a training step does once: a
gradient that automatic differentiation already summed is not summed again
(device-varying types: :mod:`sphcnn_kernels.ops.device_varying`)."""

from __future__ import annotations

import jax

from sphcnn_kernels.ops import varying_axes


def sum_over_devices(value: jax.Array, axis_name: str) -> jax.Array:
    """value summed over `axis_name` once: psum where it still varies over the
    axis (or where this JAX cannot tell), unchanged where it is already the same
    on every device (e.g. a gradient that automatic differentiation summed)."""
    axes = varying_axes(value)
    return jax.lax.psum(value, axis_name) if axes is None or axis_name in axes else value
