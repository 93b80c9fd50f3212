"""sphcnn_spatial_pool and sphcnn_spatial_unpool: the stride-2 pooling of
spatial maps (..., n, n, S, C) -> (..., n/2, n/2, S, C) weighted by cell areas,
and its transpose.

Each point of the n/2 grid gets the mean of its neighbourhood on the n grid,
with triangle weights centred on it: longitudes 2k - 1, 2k, 2k + 1 with 1/4,
1/2, 1/4, and the rings within two ring spacings of its colatitude with
triangle weights times their quadrature weights (:func:`ring_taps`). The
fused kernels apply the same stencil to the rings they read
(csrc/include/sphcnn/activation.h, given these taps). Linear: the pooling is
a primitive whose transpose is the gather-free unpooling (the automatic
transpose of a gather is a slow scatter-add on CPUs). Both take any leading
axes. No FFI target: the jnp reference runs everywhere.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.grid import quadrature_weights
from sphcnn_kernels.ops.spec import PRIMITIVES, Op, register
from sphcnn_kernels.ops.transform_stage import leading_batch


@functools.lru_cache(maxsize=None)
def ring_taps(n: int) -> np.ndarray:
    """Latitude kernel of spatial_pool: ring J of the n/2 grid (colatitude
    pi J / (n/2 - 1), i.e. u = J (n - 1) / (n/2 - 1) input rings) averages the
    input rings 2J - 1 + t, t = 0 .. 3 (u lies in [2J, 2J + 1]) with a triangle of
    half-width two rings centred on u times their quadrature weights (cell areas),
    normalized; rings outside the grid (-1 and n) get weight 0. Returns the
    weights (n/2, 4), tap t in column t."""
    coarse = n // 2
    area = quadrature_weights(n)
    weight = np.zeros((coarse, 4))
    for J in range(coarse):
        u = J * (n - 1) / (coarse - 1)
        rings = 2 * J - 1 + np.arange(4)
        inside = (rings >= 0) & (rings < n)
        tent = np.maximum(0.0, 1.0 - np.abs(rings - u) / 2.0)
        w = np.where(inside, tent * area[np.clip(rings, 0, n - 1)], 0.0)
        weight[J] = w / w.sum()
    return weight


def _tap_weights(n: int, dtype) -> list[jax.Array]:
    """The 4 columns of ring_taps(n), each shaped (n/2, 1, 1, 1) against (..., n/2, lon, S, C)."""
    weight = ring_taps(n)
    return [jnp.asarray(weight[:, t, None, None, None], jnp.finfo(dtype).dtype) for t in range(4)]


# Both directions are reshapes into (even, odd) pairs, shifts by one along an
# axis (edge pads, negative on one side) and products with the weights:
# elementwise work that XLA fuses into one pass, with no gather (whose automatic
# transpose is a scatter-add) and no concatenation.
def _pad(x: jax.Array, axis: int, low: int, high: int, interior: int = 0) -> jax.Array:
    """x zero-padded along one axis (negative low / high crop; interior: zeros between neighbours)."""
    config = [(0, 0, 0)] * x.ndim
    config[axis % x.ndim] = (low, high, interior)
    return jax.lax.pad(x, jnp.zeros((), x.dtype), config)


def _shift(x: jax.Array, axis: int, k: int) -> jax.Array:
    """out[i] = x[i - k] along `axis` (k = +-1), 0 where i - k is outside."""
    return _pad(x, axis, k, -k)


def _cyclic_shift(x: jax.Array, axis: int, k: int) -> jax.Array:
    """out[i] = x[(i - k) mod size] along `axis` (k = +-1): the shift plus the
    element that wraps around, padded into place."""
    size = x.shape[axis]
    wrapped = jax.lax.slice_in_dim(x, size - 1, size, axis=axis % x.ndim) if k == 1 else \
        jax.lax.slice_in_dim(x, 0, 1, axis=axis % x.ndim)
    return _shift(x, axis, k) + (_pad(wrapped, axis, 0, size - 1) if k == 1 else _pad(wrapped, axis, size - 1, 0))


def _pairs(x: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
    """(x[..., 0::2, ...], x[..., 1::2, ...]) along `axis` as a reshape and two slices."""
    axis %= x.ndim
    pairs = x.reshape(x.shape[:axis] + (x.shape[axis] // 2, 2) + x.shape[axis + 1:])
    return (jax.lax.index_in_dim(pairs, 0, axis + 1, keepdims=False),
            jax.lax.index_in_dim(pairs, 1, axis + 1, keepdims=False))


def _interleave(even: jax.Array, odd: jax.Array, axis: int) -> jax.Array:
    """The inverse of _pairs: out[2i] = even[i], out[2i + 1] = odd[i] along `axis`."""
    return _pad(even, axis, 0, 1, 1) + _pad(odd, axis, 1, 0, 1)


def _pool_impl(x: jax.Array) -> jax.Array:
    """spatial_pool of x (..., n, n, S, C) -> (..., n/2, n/2, S, C), any leading axes."""
    w0, w1, w2, w3 = _tap_weights(x.shape[-4], x.dtype)
    # rings: taps 2J - 1, 2J, 2J + 1, 2J + 2 are odd[J - 1], even[J], odd[J], even[J + 1]
    even, odd = _pairs(x, -4)
    rings = w0 * _shift(odd, -4, 1) + w1 * even + w2 * odd + w3 * _shift(even, -4, -1)
    # longitude: (x[2k - 1] + 2 x[2k] + x[2k + 1]) / 4 with wrap-around
    even, odd = _pairs(rings, -3)
    return 0.5 * even + 0.25 * (odd + _cyclic_shift(odd, -3, 1))


def _unpool_impl(y: jax.Array) -> jax.Array:
    """The transpose of _pool_impl, (..., n/2, n/2, S, C) -> (..., n, n, S, C)."""
    w0, w1, w2, w3 = _tap_weights(2 * y.shape[-4], y.dtype)
    # longitude transpose: fine 2k <- y[k] / 2; fine 2k + 1 <- (y[k] + y[k + 1]) / 4
    rings = _interleave(0.5 * y, 0.25 * (y + _cyclic_shift(y, -3, -1)), -3)
    # ring transpose: even[J] <- taps 1 of J and 3 of J - 1; odd[J] <- taps 2 of J and 0 of J + 1
    even = w1 * rings + _shift(w3 * rings, -4, 1)
    odd = w2 * rings + _shift(w0 * rings, -4, -1)
    return _interleave(even, odd, -4)


def _resized(factor: float):
    """Abstract evaluation of a map (..., n, n, S, C) -> (..., factor n, factor n, S, C)."""

    def rule(x):
        n = int(x.shape[-4] * factor)
        return x.update(shape=x.shape[:-4] + (n, n) + x.shape[-2:])

    return rule


def _linear_op(name: str, abstract_eval, reference, transpose: str) -> Op:
    return Op(name=name, abstract_eval=abstract_eval, reference=reference, targets={}, direction="analysis",
              setting=lambda params: ("xla", 0), batch=leading_batch(lambda params: 0, lambda params: 0),
              transpose=transpose)


POOL = _linear_op("sphcnn_spatial_pool", _resized(0.5), _pool_impl, "sphcnn_spatial_unpool")
UNPOOL = _linear_op("sphcnn_spatial_unpool", _resized(2), _unpool_impl, "sphcnn_spatial_pool")
spatial_pool = register(POOL)
register(UNPOOL)
spatial_unpool = PRIMITIVES[UNPOOL.name].bind
