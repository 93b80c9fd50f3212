"""Blocks of spin-weighted spherical CNNs.

SpinSphericalBlock (Esteves et al. 2020): [spatial pooling] -> convolution ->
  batch norm -> magnitude nonlinearity (leaky ReLU on spin 0). The batch norm
  runs on the convolution's coefficients by default (SpectralBatchNorm: the
  convolution output is band-limited, so its statistics from Parseval equal the
  quadrature ones and the result is the same as SpinSphericalBatchNorm on the
  grid, at half the memory traffic); batch_norm="spatial" normalizes on the grid,
  "spatial_uncentered" on the grid with the uncentered variance. With
  nonlinearity="phase_collapse" and batch_norm="spatial_uncentered" it is the
  plain block of the Scaling Spherical CNNs QM9 models.
SpinSphericalResidualBlock (Esteves et al., "Scaling Spherical CNNs", 2023):
  forward transform (with spectral pooling) -> convolution -> spectral batch
  norm -> inverse -> phase collapse -> forward -> convolution -> spectral batch
  norm (scale initialized to 0, so the block starts as its shortcut) -> + shortcut
  -> inverse -> phase collapse. Four transforms per block, none repeated: the
  batch norms and the residual sum work on coefficients. Shortcuts:
  "projection" (default): the input coefficients, or, when spins or widths
  change, a degree-independent complex channel map (a convolution with one
  filter anchor) and a spectral batch norm. "dense": always a real channel map
  with a bias and a spectral batch norm, as the Scaling Spherical CNNs code
  (google-research/spherical-cnn, layers.py, SpinSphericalResidualBlock), except
  that the bias goes to the constant (l = 0) coefficient of spin 0 only: the
  original adds it to every coefficient, which is not rotation-equivariant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sphcnn_kernels import ops
from sphcnn_kernels import validation as checks
from sphcnn.nn.options import BATCH_NORMS, NONLINEARITIES, SHORTCUTS
from sphcnn.nn import initializers
from sphcnn.nn.batch_norm import SpectralBatchNorm, SpinSphericalBatchNorm
from sphcnn.nn.convolution import SpinSphericalConvolution, layer_input, layer_transform
from sphcnn.nn.nonlinearities import MagnitudeNonlinearity, MagnitudeNonlinearityLeakyRelu, PhaseCollapse
from sphcnn_kernels.precision import matmul_precision


def _resolutions(module: str, resolution_in, resolution_out) -> bool:
    """Validates the pair; True when the block halves the resolution."""
    resolution_in = checks.grid_size(module, "resolution_in", resolution_in)
    resolution_out = checks.grid_size(module, "resolution_out", resolution_out)
    if resolution_out not in (resolution_in, resolution_in // 2):
        raise ValueError(
            f"{module}: resolution_out must equal resolution_in = {resolution_in} or half of it, got {resolution_out}"
        )
    return resolution_out != resolution_in


class SpinSphericalBlock(nnx.Module):
    """[pooling] -> SpinSphericalConvolution -> batch norm -> nonlinearity.

    Spatial in (batch, n_in, n_in, S_in, C_in), spatial out (batch, n_out, n_out,
    S_out, C_out), n_out = n_in or n_in / 2 (spatial pooling first, or spectral
    pooling in the convolution with spectral_pooling=True).
    Static: output_transform (the inverse after a spectral batch norm; None with
    a spatial batch norm, where the convolution transforms back itself), built
    once. Computes in complex64, as SpinSphericalConvolution; returns complex64.

    Args:
      in_channels: C_in.
      out_channels: C_out.
      spins_in: the spins of the input spin axis.
      spins_out: the spins of the output spin axis.
      resolution_in: grid size n_in of the input (even, >= 4).
      resolution_out: grid size n_out of the output, n_in or n_in / 2.
      num_filter_params: the convolution's filter anchors (None: one per degree).
      spectral_pooling: when n_out = n_in / 2, halve the resolution by spectral
        pooling in the convolution instead of spatial pooling
        (sphcnn.nn.pooling.spatial_pool) before it.
      batch_norm: 'spectral' (SpectralBatchNorm before the inverse transform,
        default) or 'spatial' (SpinSphericalBatchNorm after it), same
        parameters, same result; 'spatial_uncentered'
        (SpinSphericalBatchNorm(variance='uncentered')).
      nonlinearity: 'magnitude' (MagnitudeNonlinearityLeakyRelu, or
        MagnitudeNonlinearity without spin 0) or 'phase_collapse' (PhaseCollapse).
      kernel_init: the convolution's initialization (SpinSphericalConvolution).
      batch_norm_momentum: of the batch norm's running averages (default 0.99).
      axis_name: the batch norm's axis_name (statistics summed over that mapped
        axis), or None.
      backend: transform backend, as in sphcnn_kernels.SphericalTransform.
      rngs: random streams of the convolution (and of PhaseCollapse).

    Raises:
      ValueError: if resolution_out is neither resolution_in nor half of it, on
        an unknown batch_norm or nonlinearity, or on arguments the convolution,
        batch norm or nonlinearity reject (e.g. 'phase_collapse' without spin 0
        in spins_out).
    """

    def __init__(self, in_channels: int, out_channels: int, spins_in, spins_out, *, resolution_in: int,
                 resolution_out: int, num_filter_params: int | None = None, spectral_pooling: bool = False,
                 batch_norm: str = "spectral", nonlinearity: str = "magnitude", kernel_init: str = "unit_energy",
                 batch_norm_momentum: float = 0.99, axis_name=None, backend: str = "auto", rngs: nnx.Rngs):
        name = type(self).__name__
        halve = _resolutions(name, resolution_in, resolution_out)
        batch_norm = checks.choice(name, "batch_norm", batch_norm, BATCH_NORMS)
        nonlinearity = checks.choice(name, "nonlinearity", nonlinearity, NONLINEARITIES)
        self.spectral_batch_norm = batch_norm == "spectral"
        self.pool_spatially = halve and not spectral_pooling
        self.conv = SpinSphericalConvolution(
            in_channels, out_channels, spins_in, spins_out,
            resolution=resolution_out if self.pool_spatially else resolution_in,
            num_filter_params=num_filter_params, spectral_pooling=halve and spectral_pooling,
            output_representation="spectral" if self.spectral_batch_norm else "spatial",
            spectral_layout="degree_major", kernel_init=kernel_init, backend=backend, rngs=rngs,
        )
        if self.spectral_batch_norm:
            self.batch_norm = SpectralBatchNorm(spins_out, out_channels, momentum=batch_norm_momentum,
                                                axis_name=axis_name, layout="degree_major")
        else:
            variance = "uncentered" if batch_norm == "spatial_uncentered" else "centered"
            self.batch_norm = SpinSphericalBatchNorm(spins_out, out_channels, momentum=batch_norm_momentum,
                                                     axis_name=axis_name, variance=variance)
        self.resolution_out = resolution_out
        self.backend = self.conv.backend
        spins_out = self.conv.spins_out
        self.output_transform = (layer_transform(resolution_out, spins_out, self.conv.ell_max, self.backend)
                                 if self.spectral_batch_norm else None)
        if nonlinearity == "phase_collapse":
            self.nonlinearity = PhaseCollapse(spins_out, out_channels, rngs=rngs)
        elif 0 in spins_out:
            self.nonlinearity = MagnitudeNonlinearityLeakyRelu(spins_out, out_channels)
        else:
            self.nonlinearity = MagnitudeNonlinearity(spins_out, out_channels)

    def __call__(self, x: jax.Array, example_weights=None, incoming: ops.Activation | None = None) -> jax.Array:
        """Applies the block.

        Args:
          x: spatial input (batch, n_in, n_in, S_in, C_in), real or complex.
          example_weights: None or (batch,) weights of each example in the batch
            norm's statistics (e.g. 0 for padding).
          incoming: the previous block's magnitude nonlinearity, not yet applied
            to x (see pre_activation), or None.

        Returns:
          (batch, n_out, n_out, S_out, C_out) complex64.

        Raises:
          ValueError: if x's shape does not match the block.
        """
        return self.nonlinearity(self.pre_activation(x, example_weights, incoming))

    def pre_activation(self, x: jax.Array, example_weights=None,
                       incoming: ops.Activation | None = None) -> jax.Array:
        """The block without its nonlinearity.

        The forward transform (sphcnn_kernels.ops.mixing_analysis, or
        activated_analysis with a spatial batch norm) applies `incoming` and
        this block's spatial pooling to the rings it reads, and ends with the
        convolution's mixing and the spectral batch norm's moments; the batch
        norm's apply runs inside the inverse transform
        (sphcnn_kernels.ops.affine_synthesis). Which of these are kernels is
        decided in sphcnn_kernels.ops; the function is the same either way.

        Args:
          x: (batch, n_in, n_in, S_in, C_in), real or complex; with `incoming`,
            the previous block's pre-activation.
          example_weights: None or (batch,) weights of the batch norm's
            statistics.
          incoming: the previous block's magnitude nonlinearity
            (nonlinearity.as_activation()), or None.

        Returns:
          (batch, n_out, n_out, S_out, C_out) complex64.

        Raises:
          ValueError: if x's shape does not match the block.
        """
        transform = self.conv.input_transform
        n_in = self.conv.resolution * (2 if self.pool_spatially else 1)
        checks.spatial_input(type(self).__name__, x, n_in, self.conv.spins_in, self.conv.in_channels)
        x = layer_input(transform, x)
        if self.spectral_batch_norm:
            h, moments = ops.mixing_analysis(transform, x, self.conv.filters(), incoming, self.pool_spatially)
            factor, offset = self.batch_norm.affine(h, example_weights, moments=moments)
            return ops.affine_synthesis(self.output_transform, h, factor, offset)
        a = ops.activated_analysis(transform, x, incoming, self.pool_spatially)
        return self.batch_norm(self.conv.from_coefficients(a), example_weights)


class SpectralChannelDense(nnx.Module):
    """A real channel map of degree-major coefficients (L, batch..., 2L - 1, S,
    C_in) -> (..., C_out), the same for every degree, order and spin, plus a real
    bias on the constant function of spin 0: a rotation-equivariant linear map,

        b[l, m, s, :] = a[l, m, s, :] @ kernel,   b_00 of spin 0 += sqrt(4 pi) bias.

    Parameters: kernel (C_in, C_out) float32 (lecun normal), bias (C_out,)
    float32 (zeros).

    Args:
      in_channels: C_in.
      out_channels: C_out.
      spins: the spins of the spin axis; must contain 0 (for the bias).
      rngs: random streams; the kernel is drawn from rngs.params().

    Raises:
      ValueError: on non-positive channel counts, invalid spins or spins without 0.
    """

    def __init__(self, in_channels: int, out_channels: int, spins, *, rngs: nnx.Rngs):
        name = type(self).__name__
        self.in_channels = checks.positive_int(name, "in_channels", in_channels)
        self.out_channels = checks.positive_int(name, "out_channels", out_channels)
        self.spins = checks.spins(name, "spins", spins)
        if 0 not in self.spins:
            raise ValueError(f"{name}: spins {self.spins} have no spin 0 for the bias")
        init = initializers.lecun_normal()
        self.kernel = nnx.Param(init(rngs.params(), (self.in_channels, self.out_channels), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((self.out_channels,), jnp.float32))

    def __call__(self, a: jax.Array) -> jax.Array:
        """Applies the map.

        Args:
          a: degree-major coefficients (L, batch..., 2L - 1, S, C_in).

        Returns:
          (L, batch..., 2L - 1, S, C_out) in a's dtype (complex64 for complex64 a).
        """
        ell_max = a.shape[0] - 1
        b = jnp.matmul(a, self.kernel[...].astype(a.dtype), precision=matmul_precision())
        constant = ops.constant_coefficient(ell_max, self.spins.index(0), len(self.spins), b.ndim, 0, b.real.dtype)
        return b + constant * self.bias[...]


class SpinSphericalResidualBlock(nnx.Module):
    """The efficient residual block of Scaling Spherical CNNs (see module docstring).

    With a = forward(x) up to n_out/2 - 1 (spectral pooling when n_out = n_in / 2),
    spectral batch norms BN and phase collapses PC,

        h = PC_1(inverse(BN_1(conv_1(a))))
        y = PC_2(inverse(BN_2(conv_2(h)) + shortcut(a)))

    where conv_2 transforms h forward itself, BN_2's scale starts at 0 and
    shortcut(a) is a, or BN(projection(a)).

    Spatial in (batch, n_in, n_in, S_in, C_in), spatial out (batch, n_out, n_out,
    S_out, C_out), n_out = n_in or n_in / 2 (spectral pooling).
    Static: input_transform (n_in -> n_out/2 - 1, spins_in) and output_transform
    (back to n_out, spins_out), built once. Computes in complex64 (inputs cast by
    sphcnn.nn.convolution.layer_input); returns complex64.

    Args:
      in_channels: C_in.
      out_channels: C_out.
      spins_in: the spins of the input spin axis.
      spins_out: the spins of the output spin axis; must contain 0 (phase
        collapse writes into spin 0).
      resolution_in: grid size n_in of the input (even, >= 4).
      resolution_out: grid size n_out of the output, n_in or n_in / 2.
      num_filter_params: the convolutions' filter anchors (None: one per degree).
      shortcut: 'projection' or 'dense' (see the module docstring; 'dense' needs
        spins_in == spins_out).
      kernel_init: the convolutions' initialization (SpinSphericalConvolution).
      batch_norm_momentum: of the batch norms' running averages (default 0.99).
      axis_name: the batch norms' axis_name (statistics summed over that mapped
        axis), or None.
      backend: transform backend, as in sphcnn_kernels.SphericalTransform.
      rngs: random streams of the convolutions, dense map and phase collapses.

    Raises:
      ValueError: if resolution_out is neither resolution_in nor half of it, on
        invalid spins, spins_out without 0, an unknown shortcut, 'dense' with
        spins_in != spins_out, or arguments the layers reject.
    """

    def __init__(self, in_channels: int, out_channels: int, spins_in, spins_out, *, resolution_in: int,
                 resolution_out: int, num_filter_params: int | None = None, shortcut: str = "projection",
                 kernel_init: str = "unit_energy", batch_norm_momentum: float = 0.99, axis_name=None,
                 backend: str = "auto", rngs: nnx.Rngs):
        name = type(self).__name__
        _resolutions(name, resolution_in, resolution_out)
        self.spins_in = checks.spins(name, "spins_in", spins_in)
        self.spins_out = checks.spins(name, "spins_out", spins_out)
        if 0 not in self.spins_out:
            raise ValueError(f"{name}: spins_out {self.spins_out} must contain 0 for the phase collapse")
        shortcut = checks.choice(name, "shortcut", shortcut, SHORTCUTS)
        if shortcut == "dense" and self.spins_in != self.spins_out:
            raise ValueError(f"{name}: shortcut 'dense' maps channels within each spin and needs spins_in == "
                             f"spins_out, got {self.spins_in} and {self.spins_out}; use shortcut 'projection'")
        self.resolution_in, self.resolution_out = resolution_in, resolution_out
        self.ell_max = resolution_out // 2 - 1
        self.backend = checks.choice(name, "backend", backend, checks.BACKEND_OPTIONS)
        self.input_transform = layer_transform(resolution_in, self.spins_in, self.ell_max, self.backend)
        self.output_transform = layer_transform(resolution_out, self.spins_out, self.ell_max, self.backend)
        spectral = dict(resolution=resolution_out, num_filter_params=num_filter_params, backend=backend, rngs=rngs,
                        spectral_layout="degree_major", kernel_init=kernel_init)
        norm = dict(momentum=batch_norm_momentum, axis_name=axis_name, layout="degree_major")
        self.conv1 = SpinSphericalConvolution(in_channels, out_channels, spins_in, spins_out,
                                              input_representation="spectral", output_representation="spectral",
                                              **spectral)
        self.batch_norm1 = SpectralBatchNorm(spins_out, out_channels, **norm)
        self.collapse = PhaseCollapse(spins_out, out_channels, rngs=rngs)
        self.conv2 = SpinSphericalConvolution(out_channels, out_channels, spins_out, spins_out,
                                              output_representation="spectral", **spectral)
        self.batch_norm2 = SpectralBatchNorm(spins_out, out_channels, scale_init=0.0, **norm)
        if shortcut == "dense":
            self.projection = SpectralChannelDense(in_channels, out_channels, self.spins_in, rngs=rngs)
            self.batch_norm_shortcut = SpectralBatchNorm(spins_out, out_channels, **norm)
        elif self.spins_in == self.spins_out and in_channels == out_channels:
            self.projection = None
            self.batch_norm_shortcut = None
        else:
            self.projection = SpinSphericalConvolution(
                in_channels, out_channels, spins_in, spins_out, resolution=resolution_out, num_filter_params=1,
                input_representation="spectral", output_representation="spectral", spectral_layout="degree_major",
                kernel_init=kernel_init, backend=backend, rngs=rngs)
            self.batch_norm_shortcut = SpectralBatchNorm(spins_out, out_channels, **norm)
        self.nonlinearity = PhaseCollapse(spins_out, out_channels, rngs=rngs)

    def __call__(self, x: jax.Array, example_weights=None) -> jax.Array:
        """Applies the block.

        Args:
          x: spatial input (batch, n_in, n_in, S_in, C_in), real or complex.
          example_weights: None or (batch,) weights of each example in the batch
            norms' statistics (e.g. 0 for padding).

        Returns:
          (batch, n_out, n_out, S_out, C_out) complex64.

        Raises:
          ValueError: if x's shape does not match the block.
        """
        checks.spatial_input(type(self).__name__, x, self.resolution_in, self.spins_in, self.conv1.in_channels)
        a = self.input_transform.forward(layer_input(self.input_transform, x))
        h = self.batch_norm1(self.conv1(a), example_weights)
        h = self.collapse(self.output_transform.inverse(h))
        h = self.batch_norm2(self.conv2(h), example_weights)
        shortcut = a if self.projection is None else self.batch_norm_shortcut(self.projection(a), example_weights)
        return self.nonlinearity(self.output_transform.inverse(h + shortcut))
