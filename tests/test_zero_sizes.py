"""Calls with nothing to compute: a batch of 0 maps, 0 channels, 0 output
channels, through the public API on the ffi backend (the kernels of csrc/cpu)
against the xla backend, values and gradients: the same shapes, and exact zeros
for the sums without terms (the bias cotangent of an empty batch, the mixed
coefficients of no input channels, the weight gradient of an empty batch).
Each call runs a few times after arrays of garbage were freed, so that an
output a kernel leaves unwritten shows. On a machine with a CUDA GPU the same
calls run the CUDA handlers (the zeros written with cudaMemsetAsync, nothing
launched); everywhere, the CUDA handlers' launch plans for these sizes
(sphcnn_kernels._cuda, no device needed) in a subprocess: no division by
zero."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sphcnn_kernels as sk
from sphcnn_kernels.ops import Activation, activated_analysis, affine_synthesis, mixing, mixing_analysis

N = 8
SPINS = (0, 1)


def _transform(backend):
    return sk.SphericalTransform(N, SPINS, None, "complex128", backend=backend, layout="degree_major")


def _random(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=shape) + (1j * rng.normal(size=shape) if np.issubdtype(dtype, np.complexfloating) else 0)
    return jnp.asarray(values.astype(dtype))


def _after_garbage(f, *args):
    """f(*args) three times, each after freeing arrays of non-zero garbage, so
    that an output buffer a kernel does not write likely holds some."""
    results = []
    for i in range(3):
        garbage = [jnp.full((size,), 7.0 + i) for size in (2, 4, 6, 8, 12, 16, 24, 64) for _ in range(8)]
        del garbage
        results.append(jax.block_until_ready(f(*args)))
    return results


def _assert_zero_like_reference(results, reference):
    """Every result has the reference's tree, shapes and dtypes, and every value
    is an exact zero, as in the reference."""
    want = jax.tree.leaves(reference)
    assert all(not np.any(np.asarray(w)) for w in want)
    for result in results:
        got = jax.tree.leaves(result)
        assert [(g.shape, g.dtype) for g in got] == [(w.shape, w.dtype) for w in want]
        assert all(not np.any(np.asarray(g)) for g in got)


BATCH_CHANNELS = [(0, 3), (2, 0)]


@pytest.mark.parametrize("batch,channels", BATCH_CHANNELS)
def test_transforms_and_their_gradients(batch, channels):
    x = _random((batch, N, N, len(SPINS), channels), np.complex128)
    a = _random(_transform("xla").spectral_shape((batch,), channels), np.complex128)

    def calls(t):
        def run(x, a):
            ct_x = jax.vjp(t.forward, x)[1](t.forward(x))[0]
            ct_a = jax.vjp(t.inverse, a)[1](t.inverse(a))[0]
            return t.forward(x), t.inverse(a), ct_x, ct_a
        return jax.jit(run)

    _assert_zero_like_reference(_after_garbage(calls(_transform("ffi")), x, a), calls(_transform("xla"))(x, a))


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("batch,channels", BATCH_CHANNELS)
def test_activated_analysis_and_its_bias_gradient(batch, channels, pool):
    p = 2 if pool else 1
    y = _random((batch, p * N, p * N, len(SPINS), channels), np.complex128)
    bias = _random((len(SPINS), channels), np.float64, seed=1)

    def calls(t):
        def loss(y, bias):
            return jnp.sum(jnp.real(activated_analysis(t, y, Activation(bias, 0), pool)))
        return jax.jit(lambda y, bias: (activated_analysis(t, y, Activation(bias, 0), pool),
                                        jax.grad(loss, argnums=(0, 1))(y, bias)))

    # the bias's cotangent (S, C) of an empty batch: zeros, where the kernel wrote nothing before
    _assert_zero_like_reference(_after_garbage(calls(_transform("ffi")), y, bias), calls(_transform("xla"))(y, bias))


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("batch,channels,out_channels", [(0, 3, 4), (2, 0, 4), (2, 3, 0)])
def test_convolution_and_its_gradients(batch, channels, out_channels, pool):
    p = 2 if pool else 1
    L = N // 2
    x = _random((batch, p * N, p * N, len(SPINS), channels), np.complex128)
    bias = _random((len(SPINS), channels), np.float64, seed=1)
    filters = _random((L, len(SPINS), 2, channels, out_channels), np.complex128, seed=2)
    weights = _random((batch, 2, out_channels), np.float64, seed=3)

    def calls(t):
        def loss(x, bias, filters):
            b, (constant, energy) = mixing_analysis(t, x, filters, Activation(bias, 0), pool)
            return jnp.sum(jnp.real(b)) + jnp.sum(jnp.real(constant)) + jnp.sum(weights * energy)
        return jax.jit(lambda x, bias, filters: (mixing_analysis(t, x, filters, Activation(bias, 0), pool),
                                                 jax.grad(loss, argnums=(0, 1, 2))(x, bias, filters)))

    # no input channels: b, b_00 and the energies are sums without terms
    _assert_zero_like_reference(_after_garbage(calls(_transform("ffi")), x, bias, filters),
                                calls(_transform("xla"))(x, bias, filters))


@pytest.mark.parametrize("batch,channels", BATCH_CHANNELS)
def test_affine_inverse_and_its_gradients(batch, channels):
    a = _random(_transform("xla").spectral_shape((batch,), channels), np.complex128)
    factor = _random((len(SPINS), channels), np.complex128, seed=1)
    offset = _random((len(SPINS), channels), np.complex128, seed=2)

    def calls(t):
        def loss(a, factor, offset):
            return jnp.sum(jnp.real(affine_synthesis(t, a, factor, offset)))
        return jax.jit(lambda a, factor, offset: (affine_synthesis(t, a, factor, offset),
                                                  jax.grad(loss, argnums=(0, 1, 2))(a, factor, offset)))

    _assert_zero_like_reference(_after_garbage(calls(_transform("ffi")), a, factor, offset),
                                calls(_transform("xla"))(a, factor, offset))


@pytest.mark.parametrize("batch,channels,out_channels", [(0, 3, 4), (2, 0, 4), (2, 3, 0)])
def test_mixing_and_its_gradients(batch, channels, out_channels):
    L = N // 2
    a = _random((L, batch, 2 * L - 1, 2, channels), np.complex128)
    filters = _random((L, 2, 2, channels, out_channels), np.complex128, seed=1)

    def calls(backend):
        def loss(a, filters):
            return jnp.sum(jnp.real(mixing(a, filters, backend, N)))
        return jax.jit(lambda a, filters: (mixing(a, filters, backend, N),
                                           jax.grad(loss, argnums=(0, 1))(a, filters)))

    _assert_zero_like_reference(_after_garbage(calls("ffi"), a, filters), calls("xla")(a, filters))


@pytest.mark.skipif(importlib.util.find_spec("sphcnn_kernels._cuda") is None,
                    reason="the CUDA module is not built (no nvcc)")
def test_cuda_launch_plans_of_nothing():
    """The scratch sizes of every CUDA target for a batch of 0, 0 channels and 0
    output channels: the launch plans behind them divide by none of these."""
    code = """
from sphcnn_kernels import _cuda
n, ell_max, spins, table = 8, 3, 2, 0  # lambda_source: the table
for batch, channels, out_channels in [(0, 3, 4), (2, 0, 4), (2, 3, 0), (0, 0, 0)]:
    for is_double in (False, True):
        sizes = [_cuda.scratch_bytes(analysis, n, ell_max, spins, batch, channels, is_double, table)
                 for analysis in (True, False)]
        sizes.append(_cuda.mixing_analysis_scratch_bytes(n, ell_max, spins, batch, channels, 2, out_channels,
                                                         is_double, table))
        sizes.append(_cuda.affine_gradient_scratch_bytes(n, ell_max, spins, batch, channels, is_double, table))
        for pool in (False, True):
            sizes.append(_cuda.mixing_gradient_scratch_bytes(n, ell_max, spins, batch, channels, is_double, table,
                                                             pool))
            sizes.append(_cuda.activated_gradient_scratch_bytes(n, ell_max, spins, batch, channels, is_double, table,
                                                                pool))
        assert all(isinstance(size, int) and size >= 0 for size in sizes), sizes
print("plans ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "plans ok", result.stderr[-2000:]
