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

import jax
import jax.numpy as jnp
from flax import nnx

from sphcnn_kernels import validation as checks
from sphcnn.nn import initializers
from sphcnn_kernels.ops import LEAKY_SLOPE, Activation, activation, spin_mask, spin_rows
from sphcnn_kernels.precision import matmul_precision


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

    def as_activation(self) -> Activation:
        """This nonlinearity as an activation to apply later (bias (S, C), no
        leaky spin): its __call__(x) is as_activation()(x)."""
        return Activation(self.bias[...], None)


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
        return self.as_activation()(x)

    def as_activation(self) -> Activation:
        """This nonlinearity as an activation to apply later: bias (S, C) with a
        zero row for spin 0, leaky spin the index of spin 0 (the leaky ReLU of
        spin 0 is what the activation does on that spin); its __call__(x) is
        as_activation()(x)."""
        if self.bias is None:
            return Activation(jnp.zeros((len(self.spins), self.channels), jnp.float32), self.spin0)
        others = tuple(i for i in range(len(self.spins)) if i != self.spin0)
        return Activation(spin_rows(self.bias[...], others, len(self.spins)), self.spin0)


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
