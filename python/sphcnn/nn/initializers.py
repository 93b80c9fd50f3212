"""Parameter initializers that draw on the host.

jax.random.normal compiles one XLA program per shape and dtype, and the normal's
inverse error function makes it a slow one: 1.4 to 2.2 s each on 2 CPU cores
(measured 2026-11-30), once per convolution of a new model, most of the time a
model took to be created. These draw the same distributions with NumPy's PCG64
generator seeded by the key's bits: deterministic per key on every machine,
no compilation (the arrays are put on the device as they are).
"""

from __future__ import annotations

import math

import jax
import numpy as np

# The standard deviation of a standard normal truncated to [-2, 2] (as
# jax.nn.initializers.variance_scaling divides by it).
_TRUNCATED_STDDEV = 0.87962566103423978


def _generator(key: jax.Array) -> np.random.Generator:
    """NumPy's PCG64 seeded by the bits of a JAX key (typed, or a raw uint32 key)."""
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    bits = np.asarray(jax.random.key_data(key) if typed else key, np.uint32).ravel()
    return np.random.default_rng([int(b) for b in bits])


def _standard(generator: np.random.Generator, shape, dtype, truncated: bool) -> np.ndarray:
    """Standard normal samples (complex: each part of variance 1/2), optionally
    truncated to [-2, 2] per real part by redrawing."""
    dtype = np.dtype(dtype)
    parts = 2 if np.issubdtype(dtype, np.complexfloating) else 1
    values = generator.standard_normal((parts,) + tuple(shape))
    if truncated:
        outside = np.abs(values) > 2
        while outside.any():
            values[outside] = generator.standard_normal(int(outside.sum()))
            outside = np.abs(values) > 2
        values /= _TRUNCATED_STDDEV
    if parts == 2:
        return ((values[0] + 1j * values[1]) / math.sqrt(2)).astype(dtype)
    return values[0].astype(dtype)


def normal(key: jax.Array, shape, dtype, stddev: float = 1.0) -> jax.Array:
    """stddev times standard normal samples of `shape` and `dtype` (complex: real
    and imaginary parts each of variance stddev^2 / 2, as jax.random.normal)."""
    return jax.device_put(stddev * _standard(_generator(key), shape, dtype, truncated=False))


def lecun_normal(in_axis: int = -2):
    """An initializer (key, shape, dtype) like jax.nn.initializers.lecun_normal:
    truncated normal with variance 1 / fan_in (fan_in: the size of `in_axis`)."""

    def init(key: jax.Array, shape, dtype=np.float32) -> jax.Array:
        stddev = 1.0 / math.sqrt(shape[in_axis])
        return jax.device_put(stddev * _standard(_generator(key), shape, dtype, truncated=True))

    return init
