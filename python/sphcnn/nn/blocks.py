"""Blocks of spin-weighted spherical CNNs.

SpinSphericalBlock (Esteves et al. 2020): [spatial pooling] -> convolution ->
  batch norm -> magnitude nonlinearity (leaky ReLU on spin 0). The batch norm
  runs on the convolution's coefficients by default (SpectralBatchNorm: the
  convolution output is band-limited, so its statistics from Parseval equal the
  quadrature ones and the result is the same as SpinSphericalBatchNorm on the
  grid, at half the memory traffic); batch_norm="spatial" normalizes on the grid.
SpinSphericalResidualBlock (Esteves et al., "Scaling Spherical CNNs", 2023):
  forward transform (with spectral pooling) -> convolution -> spectral batch
  norm -> inverse -> phase collapse -> forward -> convolution -> spectral batch
  norm (scale initialized to 0, so the block starts as its shortcut) -> + shortcut
  (the input coefficients, projected when spins or widths change) -> inverse ->
  phase collapse. Four transforms per block, none repeated: the batch norms and
  the residual sum work on coefficients.
"""

from __future__ import annotations

import jax
from flax import nnx

from sphcnn_kernels import _validation as checks
from sphcnn.nn.batch_norm import SpectralBatchNorm, SpinSphericalBatchNorm
from sphcnn.nn.convolution import SpinSphericalConvolution, layer_input, layer_transform
from sphcnn.nn.nonlinearities import MagnitudeNonlinearity, MagnitudeNonlinearityLeakyRelu, PhaseCollapse
from sphcnn.nn.pooling import spatial_pool


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
    pooling in the convolution with spectral_pooling=True). batch_norm:
    'spectral' (SpectralBatchNorm before the inverse transform, default) or
    'spatial' (SpinSphericalBatchNorm after it); same parameters, same result.
    kernel_init: the convolution's initialization (SpinSphericalConvolution).
    Static: output_transform (the inverse after a spectral batch norm; None with
    batch_norm='spatial', where the convolution transforms back itself), built
    once. Computes in complex64, as SpinSphericalConvolution; returns complex64.
    """

    def __init__(self, in_channels: int, out_channels: int, spins_in, spins_out, *, resolution_in: int,
                 resolution_out: int, num_filter_params: int | None = None, spectral_pooling: bool = False,
                 batch_norm: str = "spectral", kernel_init: str = "unit_energy", axis_name=None,
                 backend: str = "auto", rngs: nnx.Rngs):
        name = type(self).__name__
        halve = _resolutions(name, resolution_in, resolution_out)
        self.spectral_batch_norm = checks.choice(name, "batch_norm", batch_norm, checks.BATCH_NORMS) == "spectral"
        self.pool_spatially = halve and not spectral_pooling
        self.conv = SpinSphericalConvolution(
            in_channels, out_channels, spins_in, spins_out,
            resolution=resolution_out if self.pool_spatially else resolution_in,
            num_filter_params=num_filter_params, spectral_pooling=halve and spectral_pooling,
            output_representation="spectral" if self.spectral_batch_norm else "spatial",
            spectral_layout="degree_major", kernel_init=kernel_init, backend=backend, rngs=rngs,
        )
        if self.spectral_batch_norm:
            self.batch_norm = SpectralBatchNorm(spins_out, out_channels, axis_name=axis_name, layout="degree_major")
        else:
            self.batch_norm = SpinSphericalBatchNorm(spins_out, out_channels, axis_name=axis_name)
        self.resolution_out = resolution_out
        self.backend = self.conv.backend
        spins_out = self.conv.spins_out
        self.output_transform = (layer_transform(resolution_out, spins_out, self.conv.ell_max, self.backend)
                                 if self.spectral_batch_norm else None)
        if 0 in spins_out:
            self.nonlinearity = MagnitudeNonlinearityLeakyRelu(spins_out, out_channels)
        else:
            self.nonlinearity = MagnitudeNonlinearity(spins_out, out_channels)

    def __call__(self, x: jax.Array, example_weights=None) -> jax.Array:
        """x (batch, n_in, n_in, S_in, C_in) -> (batch, n_out, n_out, S_out, C_out)."""
        if self.pool_spatially:
            x = spatial_pool(x)
        y = self.batch_norm(self.conv(x), example_weights)
        if self.spectral_batch_norm:
            y = self.output_transform.inverse(y)
        return self.nonlinearity(y)


class SpinSphericalResidualBlock(nnx.Module):
    """The efficient residual block of Scaling Spherical CNNs (see module docstring).

    Spatial in (batch, n_in, n_in, S_in, C_in), spatial out (batch, n_out, n_out,
    S_out, C_out), n_out = n_in or n_in / 2 (spectral pooling). spins_out must
    contain 0 (phase collapse writes into spin 0). Static: input_transform (n_in
    -> n_out/2 - 1, spins_in) and output_transform (back to n_out, spins_out),
    built once. Computes in complex64 (inputs cast by
    sphcnn.nn.convolution.layer_input); returns complex64.
    """

    def __init__(self, in_channels: int, out_channels: int, spins_in, spins_out, *, resolution_in: int,
                 resolution_out: int, num_filter_params: int | None = None, axis_name=None,
                 backend: str = "auto", rngs: nnx.Rngs):
        name = type(self).__name__
        _resolutions(name, resolution_in, resolution_out)
        self.spins_in = checks.spins(name, "spins_in", spins_in)
        self.spins_out = checks.spins(name, "spins_out", spins_out)
        if 0 not in self.spins_out:
            raise ValueError(f"{name}: spins_out {self.spins_out} must contain 0 for the phase collapse")
        self.resolution_in, self.resolution_out = resolution_in, resolution_out
        self.ell_max = resolution_out // 2 - 1
        self.backend = checks.choice(name, "backend", backend, checks.BACKEND_OPTIONS)
        self.input_transform = layer_transform(resolution_in, self.spins_in, self.ell_max, self.backend)
        self.output_transform = layer_transform(resolution_out, self.spins_out, self.ell_max, self.backend)
        spectral = dict(resolution=resolution_out, num_filter_params=num_filter_params, backend=backend, rngs=rngs,
                        spectral_layout="degree_major")
        norm = dict(axis_name=axis_name, layout="degree_major")
        self.conv1 = SpinSphericalConvolution(in_channels, out_channels, spins_in, spins_out,
                                              input_representation="spectral", output_representation="spectral",
                                              **spectral)
        self.batch_norm1 = SpectralBatchNorm(spins_out, out_channels, **norm)
        self.collapse = PhaseCollapse(spins_out, out_channels, rngs=rngs)
        self.conv2 = SpinSphericalConvolution(out_channels, out_channels, spins_out, spins_out,
                                              output_representation="spectral", **spectral)
        self.batch_norm2 = SpectralBatchNorm(spins_out, out_channels, scale_init=0.0, **norm)
        if self.spins_in == self.spins_out and in_channels == out_channels:
            self.projection = None
            self.batch_norm_shortcut = None
        else:
            self.projection = SpinSphericalConvolution(
                in_channels, out_channels, spins_in, spins_out, resolution=resolution_out, num_filter_params=1,
                input_representation="spectral", output_representation="spectral", spectral_layout="degree_major",
                backend=backend, rngs=rngs)
            self.batch_norm_shortcut = SpectralBatchNorm(spins_out, out_channels, **norm)
        self.nonlinearity = PhaseCollapse(spins_out, out_channels, rngs=rngs)

    def __call__(self, x: jax.Array, example_weights=None) -> jax.Array:
        """x (batch, n_in, n_in, S_in, C_in) -> (batch, n_out, n_out, S_out, C_out)."""
        checks.spatial_input(type(self).__name__, x, self.resolution_in, self.spins_in, self.conv1.in_channels)
        a = self.input_transform.forward(layer_input(self.input_transform, x))
        h = self.batch_norm1(self.conv1(a), example_weights)
        h = self.collapse(self.output_transform.inverse(h))
        h = self.batch_norm2(self.conv2(h), example_weights)
        shortcut = a if self.projection is None else self.batch_norm_shortcut(self.projection(a), example_weights)
        return self.nonlinearity(self.output_transform.inverse(h + shortcut))
