"""Host-side initializers (sphcnn.nn.initializers): the distributions of
jax.random.normal and jax.nn.initializers.lecun_normal (moments of large
samples, the truncation, complex parts), deterministic per key, different
across keys, and no XLA compilation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sphcnn
from sphcnn.nn import initializers


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
def test_normal_has_the_moments_of_jax_random_normal(dtype):
    x = np.asarray(initializers.normal(jax.random.key(0), (200, 1000), dtype, stddev=0.5))
    assert x.dtype == np.dtype(dtype) and x.shape == (200, 1000)
    # 200,000 samples: the standard error of the mean is 0.5 / 447 = 1.1e-3
    assert abs(x.mean()) < 5e-3 and abs(np.mean(np.abs(x) ** 2) - 0.25) < 5e-3
    if np.iscomplexobj(x):
        assert abs(np.var(x.real) - 0.125) < 3e-3 and abs(np.var(x.imag) - 0.125) < 3e-3
        assert abs(np.mean(x.real * x.imag)) < 3e-3


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
def test_lecun_normal_is_truncated_with_variance_one_over_fan_in(dtype):
    fan_in = 64
    w = np.asarray(initializers.lecun_normal()(jax.random.key(1), (fan_in, 4000), dtype))
    assert abs(np.mean(np.abs(w) ** 2) * fan_in - 1.0) < 0.02
    parts = [w.real, w.imag] if np.iscomplexobj(w) else [w]
    scale = (1 / np.sqrt(2) if np.iscomplexobj(w) else 1.0) / np.sqrt(fan_in) / 0.87962566103423978
    for part in parts:
        assert np.abs(part).max() <= 2 * scale * (1 + 1e-6)  # cut at 2 standard deviations of the untruncated normal
        assert np.abs(part).max() > 1.9 * scale
    reference = np.asarray(jax.nn.initializers.lecun_normal()(jax.random.key(1), (fan_in, 4000), jnp.float32))
    if not np.iscomplexobj(w):
        # the same distribution as JAX's own (not the same samples): quantiles agree
        qs = [0.05, 0.25, 0.5, 0.75, 0.95]
        np.testing.assert_allclose(np.quantile(w, qs), np.quantile(reference, qs), atol=2e-3)


def test_draws_are_a_function_of_the_key_and_compile_nothing_per_shape():
    # jax.random.normal compiles one program per shape; these compile at most the
    # reading of a key's bits, once, whatever the shapes
    compiles = []
    key, other = jax.random.key(3), jax.random.key(4)
    raw = jax.random.PRNGKey(3)
    initializers.normal(key, (1,), jnp.float32)
    initializers.normal(raw, (1,), jnp.float32)
    listener = lambda event, duration, **kwargs: compiles.append(event) if "backend_compile" in event else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    a = initializers.normal(key, (3, 4), jnp.complex64)
    b = initializers.normal(key, (3, 4), jnp.complex64)
    c = initializers.normal(other, (3, 4), jnp.complex64)
    d = initializers.normal(raw, (3, 4), jnp.complex64)
    assert not compiles, compiles
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(d))  # a raw key with the same bits
    assert np.abs(np.asarray(a) - np.asarray(c)).min() > 0


def test_models_built_twice_from_one_seed_are_equal():
    one = nnx.state(sphcnn.spin_classifier_6_layers(rngs=nnx.Rngs(7)), nnx.Param)
    two = nnx.state(sphcnn.spin_classifier_6_layers(rngs=nnx.Rngs(7)), nnx.Param)
    other = nnx.state(sphcnn.spin_classifier_6_layers(rngs=nnx.Rngs(8)), nnx.Param)
    for a, b, c in zip(jax.tree.leaves(one), jax.tree.leaves(two), jax.tree.leaves(other)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        if np.ptp(np.abs(np.asarray(a))) > 0:  # drawn (not a constant initial value)
            assert not np.array_equal(np.asarray(a), np.asarray(c))
