"""The magnitude nonlinearity, the pointwise prologue of the fused analysis.

activation(x, bias, leaky_spin) = relu(|z| + b) z / (|z| + eps) per (spin,
channel), with leaky_relu(Re z) on the spin index leaky_spin: the function of
sphcnn.nn's magnitude nonlinearities and the reference of the prologue the
fused kernels apply to each ring they read (csrc/include/sphcnn/activation.h).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from sphcnn_kernels.ops.device_varying import sum_like
from sphcnn_kernels.ops.placement import spin_mask

EPSILON = 1e-6
LEAKY_SLOPE = 0.01


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def activation(x: jax.Array, bias: jax.Array, leaky_spin: int | None) -> jax.Array:
    """The magnitude nonlinearity of x (..., S, C), complex: relu(|z| + b) z / (|z| + eps)
    with b = bias (S, C), real; on spin index `leaky_spin` (None: none)
    leaky_relu(Re z) instead (its bias row is ignored).

    One elementwise pass forward; the gradient is written out (below) so that
    the backward pass is one elementwise pass for x and one reduction for the
    bias, keeping only x and the bias, where automatic differentiation keeps
    |z| and the gain and makes several passes.
    """
    magnitude = jnp.abs(x)
    y = (jax.nn.relu(magnitude + bias) / (magnitude + EPSILON)).astype(x.dtype) * x
    if leaky_spin is None:
        return y
    leaky = jax.nn.leaky_relu(jnp.real(x), LEAKY_SLOPE).astype(x.dtype)
    return jnp.where(spin_mask(leaky_spin, x.shape[-2]), leaky, y)


def _activation_forward(x, bias, leaky_spin):
    return activation(x, bias, leaky_spin), (x, bias)


def _activation_backward(leaky_spin, residuals, ct):
    x, bias = residuals
    ct_x, ct_bias = activation_cotangents(leaky_spin, x, bias, ct)
    return ct_x, sum_like(ct_bias, bias)


def activation_cotangents(leaky_spin: int | None, x: jax.Array, bias: jax.Array, ct: jax.Array):
    """The cotangents (of x, of bias) of activation(x, bias, leaky_spin) for the
    output cotangent ct, the bias's summed over this device's data only (inside
    shard_map it still varies over the batch axes).

    JAX's cotangents pair as Re(ct dy). With r = |z| and y = g(r) z, g = relu(r + b) / (r + eps):
    ct_z = g ct + g'(r) Re(ct z) conj(z) / r, g'(r) = [r + b > 0] (eps - b) / (r + eps)^2
    (the second term vanishes as r -> 0), ct_b = sum of Re(ct z) [r + b > 0] / (r + eps);
    leaky spin: ct_z = Re(ct) (1 where Re z >= 0, else the slope), as jax.nn.leaky_relu."""
    real_dtype = bias.dtype
    magnitude = jnp.abs(x)
    shifted = magnitude + bias
    on = shifted > 0
    denominator = magnitude + EPSILON
    gain = jnp.where(on, shifted, 0) / denominator
    slope = jnp.where(on, EPSILON - bias, 0) / denominator**2
    projection = jnp.real(ct * x)
    radial = slope * projection / jnp.where(magnitude > 0, magnitude, 1)
    ct_x = gain.astype(x.dtype) * ct + radial.astype(x.dtype) * jnp.conj(x)
    ct_bias = jnp.where(on, projection / denominator, 0)
    if leaky_spin is not None:
        mask = spin_mask(leaky_spin, x.shape[-2])
        leaky = jnp.real(ct) * jnp.where(jnp.real(x) >= 0, 1, LEAKY_SLOPE).astype(real_dtype)
        ct_x = jnp.where(mask, leaky.astype(x.dtype), ct_x)
        ct_bias = jnp.where(mask, 0, ct_bias)
    ct_bias = jnp.sum(ct_bias, axis=tuple(range(x.ndim - bias.ndim)))
    return ct_x, jnp.broadcast_to(ct_bias, bias.shape).astype(real_dtype)


activation.defvjp(_activation_forward, _activation_backward)


@dataclasses.dataclass(frozen=True)
class Activation:
    """A magnitude nonlinearity not yet applied: what a block hands to the next
    block, whose analysis applies it to the rings it reads.

    Args:
        bias: (S, C) real; the row leaky_spin is unused.
        leaky_spin: the spin index with the leaky ReLU of the real part, or None.
    """

    bias: jax.Array
    leaky_spin: int | None

    def __call__(self, x: jax.Array) -> jax.Array:
        """activation(x, bias, leaky_spin) of maps x (..., S, C), complex."""
        return activation(x, self.bias, self.leaky_spin)
