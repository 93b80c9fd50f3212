"""Pointwise nonlinearities for spin-weighted spherical functions, on spatial
inputs (batch, n, n, S, C).

A pointwise map of the magnitude that keeps the phase is rotation-equivariant
for every spin (rotation changes a spin-s value only by a phase), but on a
grid it creates frequencies above the band limit, so after the next forward
transform it is equivariant only approximately. Measured relative error of
forward(N(R f)) against rotate(forward(N(f))) up to the band limit, for random
rotations R and random band-limited f with a flat spectrum up to n/4 - 1
(protocol: sphcnn.nn.equivariance; `python -m benchmarks.equivariance`; the tests
assert 1.5 times these levels), magnitude biases set to -0.5:

  MagnitudeNonlinearity             n = 32: 2.1e-2   n = 64: 1.1e-2
  MagnitudeNonlinearityLeakyRelu    n = 32: 2.6e-2   n = 64: 2.0e-2
  PhaseCollapse                     n = 32: 1.1e-2   n = 64: 1.1e-2
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from sphcnn_kernels import _validation as checks
from sphcnn.nn import initializers
from sphcnn.nn.collectives import sum_like
from sphcnn.nn.placement import spin_mask, spin_rows
from sphcnn_kernels.precision import matmul_precision

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


def _check_input(layer: nnx.Module, x: jax.Array, spins) -> None:
    """x of a pointwise layer built for (layer.spins, layer.channels): (batch..., n, n, S, C)."""
    name = type(layer).__name__
    checks.input_spins(name, layer.spins, spins)
    if x.ndim < 5 or tuple(x.shape[-2:]) != (len(layer.spins), layer.channels):
        raise ValueError(f"{name}: input has shape {tuple(x.shape)}; expected (batch, n, n, {len(layer.spins)}, "
                         f"{layer.channels})")


class MagnitudeNonlinearity(nnx.Module):
    """relu(|z| + b) z/|z| with a learned real bias b per (spin, channel), zero-initialized.

    Computed as relu(|z| + b) z / (|z| + 1e-6) (0 at z = 0); the phase is kept.

    Parameters: bias (S, C) float32.

    Args:
      spins: the spins of the spin axis (S distinct integers).
      channels: C.

    Raises:
      ValueError: on invalid spins or a non-positive channel count.
    """

    def __init__(self, spins, channels: int):
        name = type(self).__name__
        self.spins = checks.spins(name, "spins", spins)
        self.channels = checks.positive_int(name, "channels", channels)
        self.bias = nnx.Param(jnp.zeros((len(self.spins), self.channels), jnp.float32))

    def __call__(self, x: jax.Array, spins=None) -> jax.Array:
        """Applies the nonlinearity pointwise.

        Args:
          x: spatial features (batch..., n, n, S, C), complex.
          spins: optional spins the input carries, checked against the layer's.

        Returns:
          x's shape and dtype.

        Raises:
          ValueError: if x is not (batch..., n, n, S, C) with the layer's S and C
            or spins differ from the layer's.
        """
        _check_input(self, x, spins)
        return activation(x, self.bias[...], None)

    def activation_arguments(self) -> tuple[jax.Array, None]:
        """(bias (S, C), leaky spin None): __call__(x) is activation(x, *these)."""
        return self.bias[...], None


class MagnitudeNonlinearityLeakyRelu(nnx.Module):
    """Spin 0: leaky_relu(Re z) (slope 0.01; spin-0 features become real); every
    other spin: relu(|z| + b) z/|z| with a bias per (nonzero spin, channel).

    Parameters: bias (S - 1, C) float32 for the nonzero spins, in spin-axis
    order (zeros; none when spins is (0,)).

    Args:
      spins: the spins of the spin axis (S distinct integers); must contain 0.
      channels: C.

    Raises:
      ValueError: on invalid spins, spins without 0 (use
        MagnitudeNonlinearity) or a non-positive channel count.
    """

    def __init__(self, spins, channels: int):
        name = type(self).__name__
        self.spins = checks.spins(name, "spins", spins)
        self.channels = checks.positive_int(name, "channels", channels)
        if 0 not in self.spins:
            raise ValueError(f"{name}: spins {self.spins} have no spin 0; use MagnitudeNonlinearity")
        self.spin0 = self.spins.index(0)
        others = len(self.spins) - 1
        self.bias = nnx.Param(jnp.zeros((others, self.channels), jnp.float32)) if others else None

    def __call__(self, x: jax.Array, spins=None) -> jax.Array:
        """Applies the nonlinearity pointwise.

        Args:
          x: spatial features (batch..., n, n, S, C), complex.
          spins: optional spins the input carries, checked against the layer's.

        Returns:
          x's shape and dtype; spin 0 real-valued (zero imaginary part).

        Raises:
          ValueError: if x is not (batch..., n, n, S, C) with the layer's S and C
            or spins differ from the layer's.
        """
        _check_input(self, x, spins)
        if self.bias is None:
            return jax.nn.leaky_relu(jnp.real(x), LEAKY_SLOPE).astype(x.dtype)
        # one elementwise pass over every spin, selecting per spin (no slicing and
        # re-concatenating); spin 0's bias row is 0 and unused
        return activation(x, *self.activation_arguments())

    def activation_arguments(self) -> tuple[jax.Array, int]:
        """(bias (S, C) with a zero row for spin 0, the spin index of spin 0):
        __call__(x) is activation(x, *these) (the leaky ReLU of spin 0 is what
        activation does on that spin)."""
        if self.bias is None:
            return jnp.zeros((len(self.spins), self.channels), jnp.float32), self.spin0
        others = tuple(i for i in range(len(self.spins)) if i != self.spin0)
        return spin_rows(self.bias[...], others, len(self.spins)), self.spin0


class PhaseCollapse(nnx.Module):
    """Phase collapse (Esteves et al., "Scaling Spherical CNNs", ICML 2023).

    New spin 0 = (Dense_0(z_0) + Dense_|.|(|z_{s,c}| for all spins and channels)) / 2,
    two complex dense maps to C channels with biases; the magnitudes of the
    spin-weighted features (rotation-invariant scalars) feed the spin-0 channel,
    whose phase can then be discarded. Spins other than 0 pass through unchanged.

    Parameters: spin0_kernel (C, C), spin0_bias (C,), magnitude_kernel (S C, C),
    magnitude_bias (C,), all complex64; lecun-normal kernels, zero biases. The
    magnitudes enter spin-major (index s C + c).

    Args:
      spins: the spins of the spin axis (S distinct integers); must contain 0.
      channels: C.
      rngs: random streams; the kernels are drawn from rngs.params().

    Raises:
      ValueError: on invalid spins, spins without 0 or a non-positive channel
        count.
    """

    def __init__(self, spins, channels: int, *, rngs: nnx.Rngs):
        name = type(self).__name__
        self.spins = checks.spins(name, "spins", spins)
        self.channels = checks.positive_int(name, "channels", channels)
        if 0 not in self.spins:
            raise ValueError(f"{name}: spins {self.spins} have no spin 0 to collapse into")
        self.spin0 = self.spins.index(0)
        init = initializers.lecun_normal()
        width = len(self.spins) * self.channels
        self.spin0_kernel = nnx.Param(init(rngs.params(), (self.channels, self.channels), jnp.complex64))
        self.spin0_bias = nnx.Param(jnp.zeros((self.channels,), jnp.complex64))
        self.magnitude_kernel = nnx.Param(init(rngs.params(), (width, self.channels), jnp.complex64))
        self.magnitude_bias = nnx.Param(jnp.zeros((self.channels,), jnp.complex64))

    def __call__(self, x: jax.Array, spins=None) -> jax.Array:
        """Replaces spin 0 by its collapse.

        Args:
          x: spatial features (batch..., n, n, S, C), complex.
          spins: optional spins the input carries, checked against the layer's.

        Returns:
          x's shape and dtype: the new spin 0, every other spin unchanged.

        Raises:
          ValueError: if x is not (batch..., n, n, S, C) with the layer's S and C
            or spins differ from the layer's.
        """
        _check_input(self, x, spins)
        hi = matmul_precision()
        z0 = x[..., self.spin0, :]
        magnitudes = jnp.abs(x).reshape(x.shape[:-2] + (-1,)).astype(x.dtype)
        new0 = jnp.matmul(z0, self.spin0_kernel[...].astype(x.dtype), precision=hi) + self.spin0_bias[...]
        new0 = new0 + jnp.matmul(magnitudes, self.magnitude_kernel[...].astype(x.dtype), precision=hi)
        new0 = 0.5 * (new0 + self.magnitude_bias[...])
        return jnp.where(spin_mask(self.spin0, len(self.spins)), new0[..., None, :].astype(x.dtype), x)
