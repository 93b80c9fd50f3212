"""The convolution's product and the batch norm's moments as the forward
transform's epilogue (sphcnn_kernels.ops.mixing_analysis) against a
composition written here on the xla backend: b = einsum(analysis(activation?(
pool?(x))), filters), b_00 and sum_lm |b|^2, in float32 and float64, with and
without the previous block's nonlinearity and pooling, real input, vmapped;
gradients of every input through all three outputs; argument errors; the CUDA
lowering holds one custom call forward (sphcnn_mixing_analysis) and one for the
product's transpose and the activation's gradient (sphcnn_mixing_gradient) where
they apply, and the composition elsewhere. The CUDA kernels themselves run emulated in
tests/test_cuda_blocks_emulated.py, and on a GPU below against the composition
in complex128."""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sphcnn_kernels as sk
from sphcnn.nn import nonlinearities, pooling
from sphcnn_kernels import ops
from numerics import assert_close, relative_error

needs_cuda_module = pytest.mark.skipif(importlib.util.find_spec("sphcnn_kernels._cuda") is None,
                                       reason="the CUDA module is not built (no nvcc)")


def _transform(n, spins, dtype="complex64", backend="ffi", layout="degree_major", ell_max=None, mode="auto"):
    return sk.SphericalTransform(n, spins, ell_max, dtype, backend=backend, layout=layout, mode=mode)


def mixed(transform, x, filters, activation=None, pool=False):
    """The mixing analysis with the activation given as (bias, leaky spin) or None."""
    return ops.mixing_analysis(transform, x, filters, None if activation is None else ops.Activation(*activation), pool)


def _complex(rng, shape, dtype):
    return jnp.asarray((rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype))


def _case(n, spins_in, spins_out, c_in, c_out, dtype, pool=False, activate=True, batch=(3,), seed=0, ell_max=None):
    """(transform, x, filters, activation) of a random convolution."""
    rng = np.random.default_rng(seed)
    transform = _transform(n, spins_in, dtype, ell_max=ell_max)
    p = 2 if pool else 1
    shape = batch + (p * n, p * n, len(spins_in), c_in)
    real = np.finfo(dtype).dtype
    x = _complex(rng, shape, dtype) if activate else jnp.asarray(rng.normal(size=shape).astype(real))
    filters = _complex(rng, (transform.ell_max + 1, len(spins_in), len(spins_out), c_in, c_out), dtype)
    activation = None
    if activate:
        leaky = spins_in.index(0) if 0 in spins_in else None
        activation = (jnp.asarray((0.7 * rng.normal(size=(len(spins_in), c_in))).astype(real)), leaky)
    return transform, x, filters, activation


def _composition(transform, x, filters, activation, pool):
    """(b, (b_00, sum_lm |b|^2)) on the xla backend in complex128, written out."""
    exact = _transform(transform.n, transform.spins, "complex128", backend="xla", ell_max=transform.ell_max)
    wide = np.complex128 if jnp.iscomplexobj(x) else np.float64
    z = x.astype(wide)
    if activation is not None:
        bias, leaky = activation
        z = nonlinearities.activation(z, bias.astype(np.float64), leaky)
        if pool:
            z = pooling.spatial_pool(z)
    a = exact.forward(z)
    b = jnp.einsum("l...mic,liocd->l...mod", a, filters.astype(np.complex128))
    ell = transform.ell_max
    return b, (b[0, ..., ell, :, :], jnp.sum(jnp.abs(b) ** 2, axis=(0, b.ndim - 3)))


@pytest.mark.parametrize("dtype,tolerance", [("complex64", 2e-5), ("complex128", 1e-12)])
@pytest.mark.parametrize("pool,activate", [(False, True), (True, True), (False, False)],
                         ids=["activated", "activated-pooled", "plain"])
def test_outputs_match_the_composition(dtype, tolerance, pool, activate):
    spins_in = (0, 1) if activate else (0,)
    transform, x, filters, activation = _case(8, spins_in, (0, 1), 3, 4, dtype, pool, activate)
    got = jax.jit(lambda x, w: mixed(transform, x, w, activation, pool))(x, filters)
    assert_close(got, _composition(transform, x, filters, activation, pool), tolerance)


def test_spin_weighted_only_and_a_pooled_band_limit():
    transform, x, filters, activation = _case(16, (1, -2), (1,), 2, 3, "complex128", ell_max=5, seed=3)
    got = mixed(transform, x, filters, activation)
    assert_close(got, _composition(transform, x, filters, activation, False), 1e-12)


def test_leading_batch_axes_and_vmap():
    transform, x, filters, activation = _case(8, (0, 1), (0, 1), 2, 3, "complex128", batch=(2, 3), seed=4)
    want = _composition(transform, x, filters, activation, False)
    assert_close(mixed(transform, x, filters, activation), want, 1e-12)
    b, (constant, energy) = jax.vmap(lambda u: mixed(transform, u, filters, activation))(x)
    # vmap puts the mapped axis first: (2, L, 3, M, S, C)
    assert_close((jnp.moveaxis(b, 0, 1), constant, energy), want, 1e-12)


@pytest.mark.parametrize("pool,activate", [(False, True), (True, True), (False, False)],
                         ids=["activated", "activated-pooled", "plain"])
def test_gradients_match_the_composition(pool, activate):
    spins_in = (0, 1) if activate else (0,)
    transform, x, filters, activation = _case(8, spins_in, (0, 1), 2, 3, "complex128", pool, activate, seed=5)
    rng = np.random.default_rng(6)
    b_shape = transform.spectral_shape((3,), 3)[:-2] + (2, 3)
    weights = (_complex(rng, b_shape, np.complex128), _complex(rng, (3, 2, 3), np.complex128),
               jnp.asarray(rng.normal(size=(3, 2, 3))))
    bias = activation[0] if activate else jnp.zeros((1, 2))
    leaky = activation[1] if activate else None

    def loss(f):
        def value(x, bias, filters):
            b, (constant, energy) = f(x, bias, filters)
            return (jnp.sum(jnp.real(weights[0] * b)) + jnp.sum(jnp.real(weights[1] * constant))
                    + jnp.sum(weights[2] * energy))
        return value

    fused = loss(lambda x, v, w: mixed(transform, x, w, (v, leaky) if activate else None, pool))
    exact = loss(lambda x, v, w: _composition(transform, x, w, (v, leaky) if activate else None, pool))
    argnums = (0, 1, 2) if activate else (0, 2)
    got = jax.jit(jax.grad(fused, argnums=argnums))(x, bias, filters)
    want = jax.grad(exact, argnums=argnums)(x, bias, filters)
    assert_close(got, want, 1e-11)


def test_argument_errors_name_the_argument():
    transform, x, filters, activation = _case(8, (0, 1), (0, 1), 2, 3, "complex64")
    with pytest.raises(ValueError, match=r"mixing_analysis: argument 'filters' has shape \(5, 2, 2, 3, 3\); "
                                         r"expected \(L, S, S_out, C, C_out\) = \(4, 2, S_out, 2, C_out\)"):
        mixed(transform, x, jnp.zeros((5, 2, 2, 3, 3), jnp.complex64), activation)
    with pytest.raises(ValueError, match="argument 'filters' has dtype complex128; expected complex64"):
        mixed(transform, x, filters.astype(jnp.complex128), activation)
    with pytest.raises(ValueError, match=r"mixing_analysis: argument 'x' has shape \(3, 8, 8, 2, 2\); "
                                         r"expected \(batch..., 16, 16, 2, C\) for a transform of n = 8 after pooling"):
        mixed(transform, x, filters, activation, pool=True)
    batch_major = _transform(8, (0, 1), layout="batch_major")
    with pytest.raises(ValueError, match="argument 'transform' must have layout 'degree_major'"):
        mixed(batch_major, x, filters, activation)


def test_pooling_without_an_activation_pools_the_maps_first():
    transform, x, filters, _ = _case(8, (0, 1), (0, 1), 2, 3, "complex64")
    rng = np.random.default_rng(4)
    fine = jnp.asarray(_complex(rng, (3, 16, 16, 2, 2), np.complex64))
    b, (constant, energy) = mixed(transform, fine, filters, None, pool=True)
    want, (want_constant, want_energy) = mixed(transform, pooling.spatial_pool(fine), filters)
    assert_close((b, constant, energy), (want, want_constant, want_energy), 1e-6)


def _cuda_text(transform, x, filters, activation, pool=False) -> str:
    f = jax.jit(lambda x, w: mixed(transform, x, w, activation, pool))
    return f.trace(x, filters).lower(lowering_platforms=("cuda",)).as_text()


def _cuda_gradient_text(transform, x, filters, activation, pool=False) -> str:
    def loss(x, w):
        b, (constant, energy) = mixed(transform, x, w, activation, pool)
        return jnp.sum(jnp.abs(b) ** 2) + jnp.sum(energy) + jnp.sum(jnp.abs(constant))

    return jax.jit(jax.grad(loss, argnums=(0, 1))).trace(x, filters).lower(lowering_platforms=("cuda",)).as_text()


@needs_cuda_module
def test_cuda_lowering_is_one_custom_call_where_it_applies():
    transform, x, filters, activation = _case(16, (0, 1), (0, 1), 3, 4, "complex64", pool=True)
    text = _cuda_text(transform, x, filters, activation, pool=True)
    assert text.count("custom_call @sphcnn_mixing_analysis") == 1
    assert "sphcnn_activated_analysis" not in text and "dot_general" not in text
    # its gradient: the transposed product and the activated gradient in one call
    text = _cuda_gradient_text(transform, x, filters, activation, pool=True)
    assert text.count("custom_call @sphcnn_mixing_gradient") == 1
    assert "sphcnn_activated_gradient" not in text
    # lambda on the fly: the composition (the activated analysis and the mixing)
    transform = _transform(16, (0, 1), mode="onthefly")
    text = _cuda_text(transform, x, filters, activation, pool=True)
    assert "sphcnn_mixing_analysis" not in text and "custom_call @sphcnn_activated_analysis" in text
    text = _cuda_gradient_text(transform, x, filters, activation, pool=True)
    assert "sphcnn_mixing_gradient" not in text and "custom_call @sphcnn_activated_gradient" in text
    # another backend: no custom call at all
    transform = _transform(16, (0, 1), backend="xla")
    assert "custom_call" not in _cuda_text(transform, x, filters, activation, pool=True)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tolerance", [("complex64", 2e-5), ("complex128", 1e-11)])
@pytest.mark.parametrize("pool,activate", [(False, True), (True, True), (False, False)],
                         ids=["activated", "activated-pooled", "plain"])
def test_cuda_kernel_matches_the_composition(dtype, tolerance, pool, activate):
    """On a GPU: sphcnn_mixing_analysis (CUDA) against the composition on the xla
    backend in complex128, outputs and gradients."""
    gpu = next(d for d in jax.devices() if d.platform == "gpu")
    spins_in = (0, 1) if activate else (0,)
    transform, x, filters, activation = _case(32, spins_in, (0, 1), 16, 16, dtype, pool, activate, batch=(5,),
                                              seed=9)
    x, filters = jax.device_put(x, gpu), jax.device_put(filters, gpu)
    f = jax.jit(lambda x, w: mixed(transform, x, w, activation, pool))
    assert "sphcnn_mixing_analysis" in f.lower(x, filters).as_text()
    assert_close(f(x, filters), _composition(transform, x, filters, activation, pool), tolerance)

    def loss(g):
        return lambda x, w: jnp.sum(g(x, w)[1][1]) + jnp.sum(jnp.abs(g(x, w)[0]) ** 2)

    got = jax.jit(jax.grad(loss(lambda x, w: mixed(transform, x, w, activation, pool)),
                           argnums=(0, 1)))(x, filters)
    want = jax.grad(loss(lambda x, w: _composition(transform, x, w, activation, pool)), argnums=(0, 1))(x, filters)
    assert_close(got, want, 10 * tolerance)
