"""The convolution's mixing over the orders |m| <= l
(sphcnn_kernels.ops.mixing: the C++ kernels sphcnn_mixing and
sphcnn_mixing_weight_gradient on CPUs) against the dense einsum of
SpinSphericalConvolution, in float32 and float64: values, both gradients, vmap,
odd widths (tails of the register tiles), and the checks of its arguments."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sphcnn_kernels.ops import mixing
from numerics import relative_error


def _dense(a, filters):
    return jnp.einsum("l...mia,lioab->l...mob", a, filters)


def _triangular(shape, dtype, rng):
    """Random degree-major coefficients (L, batch..., 2L - 1, S, C), zero at |m| > l."""
    L = shape[0]
    a = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    m = np.abs(np.arange(2 * L - 1) - (L - 1))
    keep = (m[None, :] <= np.arange(L)[:, None]).reshape((L,) + (1,) * (len(shape) - 4) + (2 * L - 1, 1, 1))
    return jnp.asarray((a * keep).astype(dtype)), jnp.asarray(keep)


def _filters(L, s_in, s_out, c_in, c_out, dtype, rng):
    shape = (L, s_in, s_out, c_in, c_out)
    return jnp.asarray((rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype))


CASES = [(6, (3,), 2, 3, 2, 5), (9, (2, 3), 1, 1, 3, 7), (12, (4,), 2, 16, 2, 16), (5, (2,), 3, 9, 1, 11)]


@pytest.mark.parametrize("L,batch,s_in,c_in,s_out,c_out", CASES)
@pytest.mark.parametrize("dtype,tolerance", [(np.complex64, 2e-6), (np.complex128, 1e-14)])
def test_product_and_gradients_match_the_einsum(L, batch, s_in, c_in, s_out, c_out, dtype, tolerance):
    rng = np.random.default_rng(L)
    a, keep = _triangular((L,) + batch + (2 * L - 1, s_in, c_in), dtype, rng)
    filters = _filters(L, s_in, s_out, c_in, c_out, dtype, rng)
    got = jax.jit(lambda a, k: mixing(a, k, "ffi", 2 * L))(a, filters)
    want = _dense(a, filters)
    assert relative_error(got, want) < tolerance
    assert float(jnp.max(jnp.abs(jnp.where(keep, 0, got)))) == 0.0  # rows |m| > l are exact zeros
    weights = jnp.asarray(rng.normal(size=want.shape) + 1j * rng.normal(size=want.shape), want.dtype)

    def loss(f):
        return lambda a, k: jnp.sum(jnp.abs(weights * f(a, k)) ** 2)

    grads = jax.jit(jax.grad(loss(lambda a, k: mixing(a, k, "ffi", 2 * L)), argnums=(0, 1)))(a, filters)
    dense = jax.grad(loss(_dense), argnums=(0, 1))(a, filters)
    # the kernel leaves a's cotangent at |m| > l zero (every transform ignores those entries)
    assert relative_error(grads[0], jnp.where(keep, dense[0], 0)) < tolerance
    assert float(jnp.max(jnp.abs(jnp.where(keep, 0, grads[0])))) == 0.0
    assert relative_error(grads[1], dense[1]) < tolerance


def test_cpu_lowering_uses_the_kernels_and_the_xla_backend_the_einsum():
    rng = np.random.default_rng(0)
    a, _ = _triangular((8, 2, 15, 2, 4), np.complex64, rng)
    filters = _filters(8, 2, 2, 4, 3, np.complex64, rng)
    for backend, calls in (("ffi", 1), ("xla", 0)):
        loss = lambda a, k: jnp.sum(jnp.abs(mixing(a, k, backend, 16)) ** 2)
        forward = jax.jit(lambda a, k: mixing(a, k, backend, 16)).lower(a, filters).as_text()
        backward = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(a, filters).as_text()
        assert len(re.findall(r"custom_call @sphcnn_mixing\b", forward)) == calls
        assert len(re.findall(r"custom_call @sphcnn_mixing\b", backward)) == 2 * calls
        assert len(re.findall(r"custom_call @sphcnn_mixing_weight_gradient\b", backward)) == calls


def test_vmap():
    rng = np.random.default_rng(1)
    a, _ = _triangular((6, 4, 2, 11, 2, 3), np.complex128, rng)  # vmapped over axis 1
    filters = _filters(6, 2, 1, 3, 5, np.complex128, rng)
    mapped = jax.vmap(lambda a: mixing(a, filters, "ffi", 12), in_axes=1, out_axes=1)(a)
    assert relative_error(mapped, _dense(a, filters)) < 1e-14
    stacked = jnp.stack([filters, 2 * filters])
    per_filter = jax.vmap(lambda k: mixing(a[:, 0], k, "ffi", 12))(stacked)
    assert relative_error(per_filter[1], _dense(a[:, 0], 2 * filters)) < 1e-14
    loss = lambda a: jnp.sum(jnp.abs(mixing(a, filters, "ffi", 12)) ** 2)
    per_item = jax.vmap(jax.grad(lambda k, a: jnp.sum(jnp.abs(mixing(a, k, "ffi", 12)) ** 2)),
                        in_axes=(None, 1))(filters, a)
    want = jax.vmap(jax.grad(lambda k, a: jnp.sum(jnp.abs(_dense(a, k)) ** 2)), in_axes=(None, 1))(filters, a)
    assert relative_error(per_item, want) < 1e-13
    assert jnp.isfinite(jax.grad(loss)(a)).all()


def test_bad_arguments_are_named():
    rng = np.random.default_rng(2)
    a, _ = _triangular((6, 2, 11, 2, 3), np.complex64, rng)
    with pytest.raises(ValueError, match=r"argument 'a' has shape \(6, 2, 11, 2, 3\); expected \(5, batch\.\.\., 9, 2, 3\)"):
        mixing(a, _filters(5, 2, 1, 3, 4, np.complex64, rng), "ffi", 12)
    with pytest.raises(ValueError, match=r"a has dtype complex64 and filters complex128"):
        mixing(a, _filters(6, 2, 1, 3, 4, np.complex128, rng), "ffi", 12)


def test_the_kernel_checks_its_operands():
    from sphcnn_kernels.backends import ffi_backend

    ffi_backend.extension("cpu")
    x = jnp.zeros((4, 2, 7, 6), jnp.complex64)
    call = jax.ffi.ffi_call("sphcnn_mixing", jax.ShapeDtypeStruct((4, 2, 7, 5), jnp.complex64))
    with pytest.raises(Exception, match=r"sphcnn_mixing: w has shape \(4, 6, 3\); expected \(L, K_in, K_out\) = \(4, 6, 5\)"):
        jax.jit(call)(x, jnp.zeros((4, 6, 3), jnp.complex64)).block_until_ready()
    bad = jax.ffi.ffi_call("sphcnn_mixing", jax.ShapeDtypeStruct((4, 2, 5, 5), jnp.complex64))
    with pytest.raises(Exception, match=r"expected degree-major \(L, batch\.\.\., 2L - 1, K_in\)"):
        jax.jit(bad)(jnp.zeros((4, 2, 5, 6), jnp.complex64), jnp.zeros((4, 6, 5), jnp.complex64)).block_until_ready()
