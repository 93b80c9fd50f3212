"""Batch normalization for spherical and spin-weighted spherical features.

Statistics are moments over the batch and over the sphere, the sphere part
computed with the exact quadrature of the grid (area weights, not plain means
over grid points), or from coefficients by Parseval:

    mean over the sphere of f      = a_00 / sqrt(4 pi)          (spin 0)
    mean over the sphere of |f|^2  = sum_lm |a_lm|^2 / (4 pi)

which agree exactly for band-limited f. Spin-0 features are centered (mean
subtracted, learned complex bias added); spin-weighted features (s != 0) have no
rotation-invariant mean and are only divided by their RMS magnitude, which keeps
the layer rotation-equivariant. Every scale is a learned complex number per
(spin, channel). SpinSphericalBatchNorm(variance="uncentered") divides spin 0
too by its RMS magnitude E|f|^2 (still subtracting its mean): the batch norm of
the Scaling Spherical CNNs code (google-research/spherical-cnn, layers.py,
SphericalBatchNormalization used by SpinSphericalBatchNormPhaseCollapse).

All three modules: per-example weights (e.g. 0 for padding) weight each example's
statistics; with ``axis_name`` the weighted sums are also summed across devices
(jax.lax.psum) under data parallelism; in training mode the running averages
(momentum 0.99) are updated, and with ``use_running_average`` (``model.eval()``)
they are used instead of batch statistics.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

import sphcnn_kernels as sk
from sphcnn_kernels import validation as checks
from sphcnn.nn.options import VARIANCES
from sphcnn_kernels.ops import constant_coefficient, scale_and_shift, spin_rows, sum_like


def _example_weights(weights, batch: int, dtype) -> jax.Array:
    if weights is None:
        return jnp.ones((batch,), dtype)
    weights = jnp.asarray(weights, dtype)
    if weights.shape != (batch,):
        raise ValueError(f"batch norm: argument 'example_weights' has shape {weights.shape}; expected ({batch},)")
    return weights


def _pooled(first: jax.Array, second: jax.Array, weights: jax.Array, axis_name):
    """Weighted batch averages of per-example moments (B, S, C), summed over devices."""
    # weighted sums as reductions (they fuse with the moments; a product with the
    # weight vector would be a separate matrix-vector kernel and transposes)
    total = jnp.sum(weights)
    first = jnp.sum(weights[:, None, None] * first, axis=0)
    second = jnp.sum(weights[:, None, None] * second, axis=0)
    if axis_name is not None:
        total, first, second = jax.lax.psum((total, first, second), axis_name)
    return first / total, second / total


def spatial_moments(x: jax.Array, example_weights=None, axis_name=None):
    """(E f, E |f|^2), each (S, C), over the batch and the sphere of x (B, n, n, S, C)."""
    n = x.shape[1]
    ring = jnp.asarray(sk.quadrature_weights(n) / (4 * math.pi * n), jnp.finfo(x.dtype).dtype)
    # Sum over longitude first (a plain reduction that fuses with |x|^2), then
    # weight the rings on the small (B, n, S, C) result (reductions, no matrix products).
    ring = ring[:, None, None]
    first = jnp.sum(jnp.sum(x, axis=2) * ring, axis=1)
    second = jnp.sum(jnp.sum(jnp.real(x * jnp.conj(x)), axis=2) * ring, axis=1)
    weights = _example_weights(example_weights, x.shape[0], ring.dtype)
    return _pooled(first, second, weights, axis_name)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def coefficient_moments(a: jax.Array, degree_axis: int) -> tuple[jax.Array, jax.Array]:
    """Per example (B, S, C): the constant coefficient a_00 (complex) and
    sum_lm |a_lm|^2 (real) of coefficients a whose degree axis is `degree_axis`
    (0: (L, B, 2L - 1, S, C); 1: (B, L, 2L - 1, S, C)).

    Forward: a_00 by static slicing and one reduction. Backward, written out as
    one elementwise expression (it fuses with the rest of the batch norm's
    gradient): ct_a = 2 ct_second conj(a) + ct_first at a_00, where automatic
    differentiation makes a scatter-add or a full-size pad and several passes.
    """
    ell_max = a.shape[degree_axis] - 1
    constant = jax.lax.index_in_dim(jax.lax.index_in_dim(a, 0, degree_axis, keepdims=False), ell_max, 1,
                                    keepdims=False)
    return constant, jnp.sum(jnp.real(a * jnp.conj(a)), axis=(degree_axis, 2))


def _coefficient_moments_forward(a, degree_axis):
    return coefficient_moments(a, degree_axis), a


def _coefficient_moments_backward(degree_axis, a, cotangents):
    ct_first, ct_second = cotangents
    ell_max = a.shape[degree_axis] - 1
    # (B, S, C) -> broadcast against a, and a mask with 1 at a_00
    ct_first = jnp.expand_dims(ct_first, (degree_axis, 2))
    ct_second = jnp.expand_dims(ct_second, (degree_axis, 2))
    at_constant = constant_coefficient(ell_max, None, 1, a.ndim, degree_axis, a.real.dtype) / math.sqrt(4 * math.pi)
    return (2 * ct_second * jnp.conj(a) + at_constant * ct_first.astype(a.dtype),)


coefficient_moments.defvjp(_coefficient_moments_forward, _coefficient_moments_backward)


def spectral_moments(a: jax.Array, example_weights=None, axis_name=None, layout: str = "batch_major",
                     moments=None):
    """The same moments from coefficients a (B, L, 2L - 1, S, C) (or degree-major
    (L, B, 2L - 1, S, C)) by Parseval. moments: coefficient_moments(a) when the
    caller has them already (sphcnn_kernels.ops.mixing_analysis), else computed here."""
    degree_axis, batch_axis = (0, 1) if layout == "degree_major" else (1, 0)
    constant, energy = coefficient_moments(a, degree_axis) if moments is None else moments
    first = constant / math.sqrt(4 * math.pi)
    second = energy / (4 * math.pi)
    weights = _example_weights(example_weights, a.shape[batch_axis], second.dtype)
    return _pooled(first, second, weights, axis_name)


class _SphericalNorm(nnx.Module):
    """Shared parameters, running statistics and normalization.

    centered: per spin, whether that spin is mean-subtracted and gets a bias.
    uncentered_variance: divide every spin by its RMS magnitude sqrt(E|f|^2),
    centered or not (else centered spins by their standard deviation).
    """

    def __init__(self, spins, channels, centered, momentum, epsilon, axis_name, use_running_average,
                 uncentered_variance: bool = False):
        name = type(self).__name__
        self.spins = checks.spins(name, "spins", spins)
        self.channels = checks.positive_int(name, "channels", channels)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"{name}: argument 'momentum' must be in [0, 1), got {momentum}")
        if not epsilon > 0:
            raise ValueError(f"{name}: argument 'epsilon' must be > 0, got {epsilon}")
        self.centered = tuple(bool(c) for c in centered)
        self.uncentered_variance = bool(uncentered_variance)
        self.momentum = momentum
        self.epsilon = epsilon
        self.axis_name = axis_name
        self.use_running_average = use_running_average
        shape = (len(self.spins), self.channels)
        self.centered_index = tuple(i for i, c in enumerate(self.centered) if c)
        self.scale = nnx.Param(jnp.ones(shape, jnp.complex64))
        self.bias = (
            nnx.Param(jnp.zeros((len(self.centered_index), self.channels), jnp.complex64))
            if self.centered_index else None
        )
        self.mean = nnx.BatchStat(jnp.zeros(shape, jnp.complex64))
        self.var = nnx.BatchStat(jnp.ones(shape, jnp.float32))

    def _statistics(self, moments):
        """(mean, var) to normalize with: batch statistics from moments() -> (E f,
        E |f|^2) in training (also updating the running averages), running
        averages otherwise (moments() is not evaluated)."""
        if self.use_running_average:
            return self.mean[...], self.var[...]
        first, second = moments()
        centered = jnp.asarray(self.centered)[:, None]
        mean = jnp.where(centered, first, 0).astype(jnp.complex64)
        subtract = centered & (not self.uncentered_variance)
        var = jnp.where(subtract, second - jnp.abs(first) ** 2, second).astype(jnp.float32)
        var = jnp.maximum(var, 0.0)
        keep = self.momentum
        self.mean[...] = keep * self.mean[...] + (1 - keep) * mean
        self.var[...] = keep * self.var[...] + (1 - keep) * var
        return mean, var

    def _factors(self, mean, var, dtype):
        """y = x * factor + offset with factor (S, C) and offset (S, C)."""
        factor = self.scale[...] * jax.lax.rsqrt(var + self.epsilon)
        offset = -mean * factor
        if self.bias is not None:
            offset = offset + spin_rows(self.bias[...], self.centered_index, len(self.spins))
        return factor.astype(dtype), offset.astype(dtype)

    def _check(self, x, spins, expect_spectral: bool):
        name = type(self).__name__
        checks.input_spins(name, self.spins, spins)
        if x.ndim != 5 or tuple(x.shape[-2:]) != (len(self.spins), self.channels):
            layout = "(batch, L, 2L - 1 (or L, batch, 2L - 1)" if expect_spectral else "(batch, n, n"
            raise ValueError(
                f"{name}: input has shape {tuple(x.shape)}; expected {layout}, {len(self.spins)}, {self.channels})"
            )


class SphericalBatchNorm(_SphericalNorm):
    """Batch norm of spatial scalar features (batch, n, n, S, C): every spin is
    centered and biased, statistics with the quadrature weights.

    Per (spin, channel), y = scale (x - mean) / sqrt(var + epsilon) + bias, with
    mean = E f and var = E|f - mean|^2 over the batch and the sphere.

    Parameters: scale, bias (S, C) complex64 (ones, zeros). Batch stats: mean
    (S, C) complex64, var (S, C) float32 (the centered variance E|f - mean|^2).

    Args:
      spins: the spins of the spin axis (S distinct integers).
      channels: C.
      momentum: of the running averages, in [0, 1) (default 0.99): running =
        momentum running + (1 - momentum) batch statistic.
      epsilon: added to the variance before the square root, > 0.
      axis_name: None, or the name of a mapped axis (data parallelism): the
        weighted sums of the statistics are also summed over it (jax.lax.psum).
      use_running_average: normalize with the running averages instead of batch
        statistics (``model.eval()`` sets it).

    Raises:
      ValueError: on invalid spins, a non-positive channel count, momentum
        outside [0, 1) or epsilon <= 0.
    """

    def __init__(self, spins, channels: int, *, momentum: float = 0.99, epsilon: float = 1e-5,
                 axis_name=None, use_running_average: bool = False):
        super().__init__(spins, channels, [True] * len(checks.spins(type(self).__name__, "spins", spins)),
                         momentum, epsilon, axis_name, use_running_average)

    def __call__(self, x: jax.Array, example_weights=None, spins=None) -> jax.Array:
        """Normalizes x.

        In training mode (use_running_average False) the statistics are those
        of the batch and the running averages are updated; otherwise the
        running averages are used.

        Args:
          x: spatial features (batch, n, n, S, C).
          example_weights: None (all 1) or (batch,) weights of each example's
            statistics (e.g. 0 for padding).
          spins: optional spins the input carries, checked against the layer's.

        Returns:
          (batch, n, n, S, C) in x's dtype.

        Raises:
          ValueError: if x is not (batch, n, n, S, C) with the layer's S and C,
            example_weights is not (batch,) or spins differ from the layer's.
        """
        self._check(x, spins, expect_spectral=False)
        mean, var = self._statistics(lambda: spatial_moments(x, example_weights, self.axis_name))
        factor, offset = self._factors(mean, var, x.dtype)
        return x * factor + offset


def _spin_centering(module: str, spins) -> list[bool]:
    return [s == 0 for s in checks.spins(module, "spins", spins)]


class SpinSphericalBatchNorm(_SphericalNorm):
    """Batch norm of spatial spin-weighted features (batch, n, n, S, C): spin 0 is
    centered and biased, every other spin only divided by its RMS magnitude (never
    mean-subtracted), so the layer stays rotation-equivariant.

    Per channel, spin 0: y = scale (x - mean) / sqrt(var + epsilon) + bias, var
    = E|x - mean|^2 (E|x|^2 with variance='uncentered'); spin s != 0: y = scale x
    / sqrt(E|x|^2 + epsilon); moments over the batch and the sphere (quadrature
    weights).

    Parameters: scale (S, C) complex64 (ones); bias (1, C) complex64 for spin 0
    (zeros; none without spin 0). Batch stats: mean (S, C) complex64, var (S, C)
    float32 (mean stays 0 for s != 0).

    Args:
      spins: the spins of the spin axis (S distinct integers).
      channels: C.
      momentum: of the running averages, in [0, 1) (default 0.99): running =
        momentum running + (1 - momentum) batch statistic.
      epsilon: added to the variance before the square root, > 0.
      axis_name: None, or the name of a mapped axis (data parallelism): the
        weighted sums of the statistics are also summed over it (jax.lax.psum).
      use_running_average: normalize with the running averages instead of batch
        statistics (``model.eval()`` sets it).
      variance: 'centered' (spin 0 divided by its standard deviation, default)
        or 'uncentered' (every spin by sqrt(E|f|^2), spin 0 still
        mean-subtracted: the Scaling Spherical CNNs variant, see the module
        docstring).

    Raises:
      ValueError: on invalid spins, a non-positive channel count, momentum
        outside [0, 1), epsilon <= 0 or an unknown variance.
    """

    def __init__(self, spins, channels: int, *, momentum: float = 0.99, epsilon: float = 1e-5,
                 axis_name=None, use_running_average: bool = False, variance: str = "centered"):
        name = type(self).__name__
        variance = checks.choice(name, "variance", variance, VARIANCES)
        super().__init__(spins, channels, _spin_centering(name, spins), momentum, epsilon,
                         axis_name, use_running_average, uncentered_variance=variance == "uncentered")

    def __call__(self, x: jax.Array, example_weights=None, spins=None) -> jax.Array:
        """Normalizes x.

        In training mode (use_running_average False) the statistics are those
        of the batch and the running averages are updated; otherwise the
        running averages are used.

        Args:
          x: spatial spin-weighted features (batch, n, n, S, C).
          example_weights: None (all 1) or (batch,) weights of each example's
            statistics (e.g. 0 for padding).
          spins: optional spins the input carries, checked against the layer's.

        Returns:
          (batch, n, n, S, C) in x's dtype.

        Raises:
          ValueError: if x is not (batch, n, n, S, C) with the layer's S and C,
            example_weights is not (batch,) or spins differ from the layer's.
        """
        self._check(x, spins, expect_spectral=False)
        mean, var = self._statistics(lambda: spatial_moments(x, example_weights, self.axis_name))
        factor, offset = self._factors(mean, var, x.dtype)
        return x * factor + offset


class SpectralBatchNorm(_SphericalNorm):
    """SpinSphericalBatchNorm computed and applied on coefficients
    (batch, L, 2L - 1, S, C), or (L, batch, 2L - 1, S, C) with
    layout='degree_major': the mean of spin 0 is its l = 0 coefficient, the
    variance comes from Parseval; centering and the bias act on a_00 only, the
    scale on every coefficient. Equal to SpinSphericalBatchNorm on band-limited
    inputs; saves the transforms around a batch norm between convolutions.

    With the moments E f = a_00 / sqrt(4 pi) (spin 0) and E|f|^2 =
    sum_lm |a_lm|^2 / (4 pi) (Parseval), per channel: b = scale a / sqrt(var +
    epsilon), and for spin 0 b_00 += sqrt(4 pi) (bias - scale mean / sqrt(var +
    epsilon)), var the centered variance of spin 0, E|f|^2 for s != 0.

    Parameters: scale (S, C) complex64 (scale_init); bias (1, C) complex64 for
    spin 0 (zeros; none without spin 0). Batch stats: mean (S, C) complex64, var
    (S, C) float32.

    Args:
      spins: the spins of the spin axis (S distinct integers).
      channels: C.
      momentum: of the running averages, in [0, 1) (default 0.99): running =
        momentum running + (1 - momentum) batch statistic.
      epsilon: added to the variance before the square root, > 0.
      axis_name: None, or the name of a mapped axis (data parallelism): the
        weighted sums of the statistics are also summed over it (jax.lax.psum).
      use_running_average: normalize with the running averages instead of batch
        statistics (``model.eval()`` sets it).
      scale_init: initial value of every entry of scale (default 1.0).
      layout: 'batch_major' (batch, L, 2L - 1, S, C) or 'degree_major'
        (L, batch, 2L - 1, S, C).

    Raises:
      ValueError: on invalid spins, a non-positive channel count, momentum
        outside [0, 1), epsilon <= 0 or an unknown layout.
    """

    def __init__(self, spins, channels: int, *, momentum: float = 0.99, epsilon: float = 1e-5,
                 axis_name=None, use_running_average: bool = False, scale_init: float = 1.0,
                 layout: str = "batch_major"):
        super().__init__(spins, channels, _spin_centering(type(self).__name__, spins), momentum, epsilon,
                         axis_name, use_running_average)
        self.layout = checks.choice(type(self).__name__, "layout", layout, checks.LAYOUTS)
        self.scale[...] = jnp.full(self.scale[...].shape, scale_init, jnp.complex64)

    def __call__(self, a: jax.Array, example_weights=None, spins=None) -> jax.Array:
        """Normalizes coefficients a.

        In training mode (use_running_average False) the statistics are those
        of the batch and the running averages are updated; otherwise the
        running averages are used.

        Args:
          a: coefficients in the layer's layout, (batch, L, 2L - 1, S, C) or
            (L, batch, 2L - 1, S, C), complex.
          example_weights: None (all 1) or (batch,) weights of each example's
            statistics (e.g. 0 for padding).
          spins: optional spins the input carries, checked against the layer's.

        Returns:
          Coefficients of a's shape and dtype.

        Raises:
          ValueError: if a is not 5-dimensional with the layer's S and C,
            example_weights is not (batch,) or spins differ from the layer's.
        """
        factor, offset = self.affine(a, example_weights, spins)
        # offsets go to a_00 of every spin (the offsets of spins s != 0 are 0)
        return scale_and_shift(a, factor, offset, 0 if self.layout == "degree_major" else 1)

    def affine(self, a: jax.Array, example_weights=None, spins=None, moments=None) -> tuple[jax.Array, jax.Array]:
        """(factor, offset), each (S, C) in a's dtype: __call__(a) is a * factor with
        sqrt(4 pi) offset added to a_00 (scale_and_shift). Statistics and running
        averages as __call__; for applying the map elsewhere (inside a synthesis:
        sphcnn_kernels.ops.affine_synthesis). moments: (a_00, sum_lm |a_lm|^2), each
        (B, S, C), as coefficient_moments(a) gives them, when the caller computed
        them with a (sphcnn_kernels.ops.mixing_analysis); else they are computed here."""
        self._check(a, spins, expect_spectral=True)
        if moments is not None:
            batch = a.shape[1 if self.layout == "degree_major" else 0]
            expected = (batch, len(self.spins), self.channels)
            if any(tuple(m.shape) != expected for m in moments):
                raise ValueError(f"{type(self).__name__}: argument 'moments' has shapes "
                                 f"{[tuple(m.shape) for m in moments]}; expected two of {expected}")
        mean, var = self._statistics(
            lambda: spectral_moments(a, example_weights, self.axis_name, self.layout, moments))
        return self._factors(mean, var, a.dtype)
