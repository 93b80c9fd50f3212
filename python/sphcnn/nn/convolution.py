"""Spin-weighted spherical convolution (Esteves, Makadia & Daniilidis, "Spin-Weighted
Spherical CNNs", NeurIPS 2020) as a product in the spectral domain.

For input coefficients a (batch, l, m, s_in, c_in) the output coefficients are

    b[l, m, s_out, c_out] = sum_{s_in, c_in} k[l, s_in, s_out, c_in, c_out] a[l, m, s_in, c_in]

with a complex filter k shared by all orders m, so the layer commutes with
rotations exactly on band-limited inputs (rotations mix only the m of each l).
Entries with l < |s_out| are exact zeros (no spin-s function has them).

Localized filters: with ``num_filter_params = K`` the l profile of every filter
is the piecewise-linear interpolation of K learnable anchors placed evenly on
[0, ell_max] (fewer anchors, smoother spectrum, more localized filter).

Initialization (complex normal anchors, ``kernel_init``):

- "unit_energy": variance 1 / (C_in S_in g), where C_in S_in is the number of
  terms of the sum above and g the mean over the (2l + 1)-weighted degrees of
  the squared interpolation weights, so that the expected energy sum_lm |b|^2
  equals that of the input: activations keep their variance through depth
  without normalization (see tests/test_layers_convolution.py).
- "original": the complex He initialization of the original implementation
  (google-research spin_spherical_cnns, layers.py: variance_scaling(2.0,
  "fan_in", "normal") on its kernel layout), E|k|^2 = 2 / fan_in with the fan-in
  that initializer computes there: S_in S_out C_in C_out for localized filters
  (layout (S_in, S_out, C_in, C_out, K)) and (ell_max + 1) S_in S_out C_in for
  free ones (layout (L, S_in, S_out, C_in, C_out)). Followed by a batch norm the
  scale of a kernel does not change the function, only the effective step size
  of Adam on it (about lr / |k|): these kernels are 3 to 8 times smaller than
  "unit_energy" ones in the spherical MNIST models, and the original recipe
  (lr 1e-3) is tuned for them.
- "scaling": the initialization of the Scaling Spherical CNNs code
  (google-research/spherical-cnn, layers.py: variance_scaling(1 / S_in,
  "fan_in", "normal") on the same kernel layouts), E|k|^2 = 1 / (S_in fan_in):
  1 / (S_in S_in S_out C_in C_out) for localized filters, 1 / (S_in (ell_max + 1)
  S_in S_out C_in) for free ones. Its QM9 models are tuned for it.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import sphcnn_kernels as sk
from sphcnn_kernels import ops
from sphcnn_kernels import validation as checks
from sphcnn.nn.options import KERNEL_INITS, REPRESENTATIONS
from sphcnn_kernels.precision import matmul_precision
from sphcnn.nn import initializers


@functools.lru_cache(maxsize=None)
def interpolation_matrix(ell_max: int, anchors: int) -> np.ndarray:
    """(ell_max + 1, anchors) weights of the piecewise-linear interpolation from
    `anchors` evenly spaced points on [0, ell_max] to every degree."""
    weights = np.zeros((ell_max + 1, anchors))
    if anchors == 1:
        weights[:, 0] = 1.0
        return weights
    position = np.arange(ell_max + 1) * (anchors - 1) / max(ell_max, 1)
    left = np.minimum(np.floor(position).astype(int), anchors - 2)
    frac = position - left
    weights[np.arange(ell_max + 1), left] = 1.0 - frac
    weights[np.arange(ell_max + 1), left + 1] = frac
    return weights


def kernel_variance(kernel_init: str, ell_max: int, anchors: int | None, spins_in: int, spins_out: int,
                    in_channels: int, out_channels: int) -> float:
    """E|k|^2 of the initial kernel entries (see the module docstring); anchors
    None means one free value per degree."""
    if kernel_init in ("original", "scaling"):
        if anchors is None:
            fan_in = (ell_max + 1) * spins_in * spins_out * in_channels
        else:
            fan_in = spins_in * spins_out * in_channels * out_channels
        return 2.0 / fan_in if kernel_init == "original" else 1.0 / (spins_in * fan_in)
    weights = interpolation_matrix(ell_max, ell_max + 1 if anchors is None else anchors)
    degrees = 2 * np.arange(ell_max + 1) + 1
    gain = float(np.sum(degrees * np.sum(weights**2, axis=1)) / np.sum(degrees))
    return 1.0 / (spins_in * in_channels * gain)


def degree_mask(ell_max: int, spins_in: tuple[int, ...], spins_out: tuple[int, ...]) -> np.ndarray:
    """(L, S_in, S_out) booleans: degree l carries both spins (l >= max(|s_in|, |s_out|))."""
    ell = np.arange(ell_max + 1)[:, None, None]
    s_in = np.abs(np.asarray(spins_in))[None, :, None]
    s_out = np.abs(np.asarray(spins_out))[None, None, :]
    return (ell >= s_in) & (ell >= s_out)


# The dtype of every parameter and of every transform of the model layers.
DTYPE = np.dtype(np.complex64)


def layer_transform(n: int, spins: tuple[int, ...], ell_max: int, backend: str) -> sk.SphericalTransform:
    """The transform a layer builds once, in its __init__: complex64, degree-major
    coefficients (the layout the spectral products and batch norms use)."""
    return sk.SphericalTransform(n, spins, ell_max, DTYPE, backend=backend, layout="degree_major")


def layer_input(transform: sk.SphericalTransform, x: jax.Array) -> jax.Array:
    """Maps x (batch..., n, n, S, C) cast to what `transform` takes: its real dtype
    (float32) for real maps when all its spins are 0, its complex dtype (complex64)
    otherwise; complex128 and float64 inputs are rounded to these."""
    x = jnp.asarray(x)
    real = not jnp.iscomplexobj(x) and all(s == 0 for s in transform.spins)
    return x.astype(transform.real_dtype if real else transform.dtype)


class SpinSphericalConvolution(nnx.Module):
    """Spin-weighted spherical convolution, a product in the spectral domain.

    For input coefficients a (l, m, s_in, c_in) the output coefficients are

        b[l, m, s_out, c_out] = sum_{s_in, c_in} k[l, s_in, s_out, c_in, c_out] a[l, m, s_in, c_in]

    with a complex filter k (:meth:`filters`) shared by all orders m, zero where
    a degree cannot carry both spins; with use_bias, sqrt(4 pi) bias is added to
    b_00 of spin 0 (a constant function). Spatial inputs go through a forward
    transform first, spatial outputs through an inverse one.

    Parameters: kernel (K, S_in, S_out, C_in, C_out) complex64; bias (C_out,)
    complex64 if use_bias. Static: input_transform (n -> ell_max, spatial input
    only) and output_transform (ell_max -> n_out, spatial output only), built once.

    Computes in complex64: spatial inputs are cast by :func:`layer_input` (real
    spin-0 maps go to the forward transform as float32), spectral inputs to
    complex64; the output is complex64 whatever the input precision.

    Args:
      in_channels: C_in, the input channels.
      out_channels: C_out, the output channels.
      spins_in: the spins of the input spin axis (S_in distinct integers).
      spins_out: the spins of the output spin axis (S_out distinct integers).
      resolution: grid size n of the input (even, >= 4); coefficients of a
        spectral input go up to ell_max = n/2 - 1.
      num_filter_params: anchors K of the filter's l profile (1 <= K <= ell_max + 1
        of the convolution); None: one free value per degree.
      spectral_pooling: compute at n/2 (degrees above n/4 - 1 dropped on the way
        in; n divisible by 4): ell_max = n/4 - 1, n_out = n/2.
      spectral_upsampling: output on a 2n grid (same band limit): n_out = 2n.
      input_representation: 'spatial' (batch..., n, n, S_in, C_in) or 'spectral'
        (batch..., L, 2L - 1, S_in, C_in) with L = n/2.
      output_representation: 'spatial' (batch..., n_out, n_out, S_out, C_out) or
        'spectral' (batch..., L, 2L - 1, S_out, C_out) with L = n_out/2 (degrees
        above the convolution's ell_max are zero).
      spectral_layout: layout of spectral inputs and outputs, 'batch_major' (as
        above) or 'degree_major' (L, batch..., 2L - 1, S, C); the mixing itself
        is always computed degree-major (no transposition around it).
      use_bias: add a learned complex bias to spin 0 (a constant function);
        spins_out must contain 0.
      kernel_init: 'unit_energy' (default), 'original' or 'scaling' (see the
        module docstring).
      backend: transform backend, as in sphcnn_kernels.SphericalTransform
        ('auto', 'xla', 'ffi' or 'triton').
      rngs: random streams; the kernel is drawn from rngs.params().

    Raises:
      ValueError: on a non-positive channel count, invalid spins, a resolution
        that is not an even integer >= 4, an unknown option string, both
        spectral_pooling and spectral_upsampling, spectral_pooling with n not
        divisible by 4, a spin |s| above the convolution's ell_max,
        num_filter_params outside [1, ell_max + 1], or use_bias without spin 0
        in spins_out.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spins_in,
        spins_out,
        *,
        resolution: int,
        num_filter_params: int | None = None,
        spectral_pooling: bool = False,
        spectral_upsampling: bool = False,
        input_representation: str = "spatial",
        output_representation: str = "spatial",
        spectral_layout: str = "batch_major",
        use_bias: bool = False,
        kernel_init: str = "unit_energy",
        backend: str = "auto",
        rngs: nnx.Rngs,
    ):
        name = type(self).__name__
        self.in_channels = checks.positive_int(name, "in_channels", in_channels)
        self.out_channels = checks.positive_int(name, "out_channels", out_channels)
        self.spins_in = checks.spins(name, "spins_in", spins_in)
        self.spins_out = checks.spins(name, "spins_out", spins_out)
        self.resolution = checks.grid_size(name, "resolution", resolution)
        self.input_representation = checks.choice(name, "input_representation", input_representation, REPRESENTATIONS)
        self.output_representation = checks.choice(name, "output_representation", output_representation, REPRESENTATIONS)
        self.spectral_layout = checks.choice(name, "spectral_layout", spectral_layout, checks.LAYOUTS)
        if spectral_pooling and spectral_upsampling:
            raise ValueError(f"{name}: spectral_pooling and spectral_upsampling cannot both be set")
        if spectral_pooling and resolution % 4:
            raise ValueError(f"{name}: spectral_pooling needs a resolution divisible by 4, got {resolution}")
        self.spectral_pooling = bool(spectral_pooling)
        self.spectral_upsampling = bool(spectral_upsampling)
        self.backend = checks.choice(name, "backend", backend, checks.BACKEND_OPTIONS)
        compute_resolution = resolution // 2 if spectral_pooling else resolution
        self.ell_max = compute_resolution // 2 - 1
        self.resolution_out = compute_resolution * 2 if spectral_upsampling else compute_resolution
        top = max(abs(s) for s in self.spins_in + self.spins_out)
        if top > self.ell_max:
            raise ValueError(
                f"{name}: spins up to |s| = {top} need ell_max >= {top}, but the convolution runs at "
                f"ell_max = {self.ell_max} (resolution {compute_resolution})"
            )
        anchors = self.ell_max + 1 if num_filter_params is None else num_filter_params
        anchors = checks.positive_int(name, "num_filter_params", anchors)
        if anchors > self.ell_max + 1:
            raise ValueError(
                f"{name}: argument 'num_filter_params' must be <= ell_max + 1 = {self.ell_max + 1}, got {anchors}"
            )
        self.num_filter_params = anchors
        self.kernel_init = checks.choice(name, "kernel_init", kernel_init, KERNEL_INITS)
        variance = kernel_variance(kernel_init, self.ell_max, None if num_filter_params is None else anchors,
                                   len(self.spins_in), len(self.spins_out), self.in_channels, self.out_channels)
        shape = (anchors, len(self.spins_in), len(self.spins_out), self.in_channels, self.out_channels)
        self.kernel = nnx.Param(initializers.normal(rngs.params(), shape, DTYPE, math.sqrt(variance)))
        if use_bias:
            if 0 not in self.spins_out:
                raise ValueError(f"{name}: use_bias adds to spin 0, but spins_out {self.spins_out} has none")
            self.bias = nnx.Param(jnp.zeros((self.out_channels,), DTYPE))
        else:
            self.bias = None
        self.input_transform = (layer_transform(self.resolution, self.spins_in, self.ell_max, self.backend)
                                if self.input_representation == "spatial" else None)
        self.output_transform = (layer_transform(self.resolution_out, self.spins_out, self.ell_max, self.backend)
                                 if self.output_representation == "spatial" else None)

    def filters(self) -> jax.Array:
        """(ell_max + 1, S_in, S_out, C_in, C_out) complex filter, zero where a
        degree cannot carry both spins."""
        kernel = self.kernel[...]
        weights = jnp.asarray(interpolation_matrix(self.ell_max, self.num_filter_params), jnp.float32)
        mask = jnp.asarray(degree_mask(self.ell_max, self.spins_in, self.spins_out))
        filters = jnp.einsum("lk,kioab->lioab", weights.astype(kernel.dtype), kernel)
        return filters * mask[:, :, :, None, None]

    def __call__(self, x: jax.Array, spins=None) -> jax.Array:
        """Applies the convolution.

        Args:
          x: spatial input (batch..., n, n, S_in, C_in), real or complex; with
            input_representation='spectral', coefficients up to n/2 - 1 in
            spectral_layout: (batch..., n/2, n - 1, S_in, C_in) batch-major or
            (n/2, batch..., n - 1, S_in, C_in) degree-major.
          spins: optional spins the input carries, checked against spins_in.

        Returns:
          complex64: spatial (batch..., n_out, n_out, S_out, C_out), or spectral
          coefficients up to n_out/2 - 1 in spectral_layout.

        Raises:
          ValueError: if x's shape does not match the layer or spins differ from
            spins_in.
        """
        name = type(self).__name__
        checks.input_spins(name, self.spins_in, spins)
        if self.input_representation == "spatial":
            checks.spatial_input(name, x, self.resolution, self.spins_in, self.in_channels)
            a = self.input_transform.forward(layer_input(self.input_transform, x))
        else:
            full = self.resolution // 2 - 1
            checks.spectral_input(name, x, full, self.spins_in, self.in_channels, self.spectral_layout)
            if self.spectral_layout == "batch_major":
                x = jnp.moveaxis(x, -4, 0)
            a = x[: self.ell_max + 1, ..., full - self.ell_max : full + self.ell_max + 1, :, :]
            a = a.astype(DTYPE)
        return self.from_coefficients(a)

    def from_coefficients(self, a: jax.Array) -> jax.Array:
        """The layer after its input transform.

        Args:
          a: degree-major complex64 input coefficients (L, batch..., 2L - 1,
            S_in, C_in) at the layer's ell_max, zero at |m| > l (as forward
            transforms write them).

        Returns:
          The output of __call__: spatial, or spectral in spectral_layout. The
          mixing is sphcnn_kernels.ops.mixing (on CPUs a kernel over the orders
          |m| <= l only).
        """
        b = ops.mixing(a, self.filters(), self.backend, self.resolution)
        if self.bias is not None:
            # a constant c has a_00 = sqrt(4 pi) c
            b = b + ops.constant_coefficient(self.ell_max, self.spins_out.index(0), len(self.spins_out), b.ndim, 0,
                                         b.real.dtype) * self.bias[...]
        if self.output_representation == "spatial":
            return self.output_transform.inverse(b)
        if self.spectral_upsampling:
            top = self.resolution_out // 2 - 1
            pad = [(0, top - self.ell_max)] + [(0, 0)] * (b.ndim - 4) + [(top - self.ell_max,) * 2, (0, 0), (0, 0)]
            b = jnp.pad(b, pad)
        return jnp.moveaxis(b, 0, -4) if self.spectral_layout == "batch_major" else b
