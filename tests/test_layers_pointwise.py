"""Nonlinearities, pooling and readout against their formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sphcnn
import sphcnn_kernels as sk
from references import random_coefficients, random_maps


def test_magnitude_nonlinearity_formula():
    rng = np.random.default_rng(0)
    layer = sphcnn.MagnitudeNonlinearity((0, 1), 3)
    bias = rng.standard_normal((2, 3)).astype(np.float32)
    layer.bias[...] = jnp.asarray(bias)
    z = random_maps(rng, (2,), 8, (0, 1), 3, np.complex64)
    want = np.maximum(np.abs(z) + bias, 0) * z / (np.abs(z) + 1e-6)
    np.testing.assert_allclose(np.asarray(layer(jnp.asarray(z))), want, rtol=1e-5, atol=1e-6)


def test_leaky_relu_variant_formula():
    rng = np.random.default_rng(1)
    layer = sphcnn.MagnitudeNonlinearityLeakyRelu((1, 0, -1), 2)
    bias = rng.standard_normal((2, 2)).astype(np.float32)
    layer.bias[...] = jnp.asarray(bias)
    z = random_maps(rng, (2,), 8, (1, 0, -1), 2, np.complex64)
    out = np.asarray(layer(jnp.asarray(z)))
    real = z[..., 1, :].real
    np.testing.assert_allclose(out[..., 1, :], np.where(real > 0, real, 0.01 * real), rtol=1e-6)
    for i, b in ((0, bias[0]), (2, bias[1])):
        want = np.maximum(np.abs(z[..., i, :]) + b, 0) * z[..., i, :] / (np.abs(z[..., i, :]) + 1e-6)
        np.testing.assert_allclose(out[..., i, :], want, rtol=1e-5, atol=1e-6)
    assert sphcnn.MagnitudeNonlinearityLeakyRelu((0,), 4).bias is None


def _activation_numpy(z, bias, leaky_spin):
    """float64 NumPy: relu(|z| + b) z / (|z| + eps), leaky_relu(Re z) on leaky_spin."""
    y = np.maximum(np.abs(z) + bias, 0) * z / (np.abs(z) + 1e-6)
    if leaky_spin is not None:
        real = z[..., leaky_spin, :].real
        y[..., leaky_spin, :] = np.where(real >= 0, real, 0.01 * real)
    return y


@pytest.mark.parametrize("leaky_spin", [None, 1])
def test_activation_gradient_is_the_derivative_of_the_formula(leaky_spin):
    # The hand-written VJP (sphcnn.nn.nonlinearities.activation) against central
    # differences of the float64 NumPy formula along random directions: for every
    # direction (dz, db), Re(sum ct dy) = Re(sum ct_z dz) + sum ct_b db (JAX's
    # pairing of complex cotangents), with biases that switch entries off; then
    # equal to automatic differentiation of the plain formula, zeros included
    # (where the gain b / eps varies on the scale of eps, too fine for differences).
    from sphcnn.nn.nonlinearities import activation

    rng = np.random.default_rng(11)
    shape = (2, 6, 6, 3, 4)
    z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    bias = rng.uniform(-1.5, 0.5, (3, 4))
    ct = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    y, vjp = jax.vjp(lambda v, b: activation(v, b, leaky_spin), jnp.asarray(z), jnp.asarray(bias))
    np.testing.assert_allclose(np.asarray(y), _activation_numpy(z, bias, leaky_spin), rtol=1e-12, atol=1e-15)
    ct_z, ct_b = (np.asarray(g) for g in vjp(jnp.asarray(ct)))
    assert ct_z.dtype == np.complex128 and ct_b.shape == bias.shape
    h = 1e-6
    for _ in range(4):
        dz = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        db = rng.standard_normal(bias.shape)
        dy = (_activation_numpy(z + h * dz, bias + h * db, leaky_spin)
              - _activation_numpy(z - h * dz, bias - h * db, leaky_spin)) / (2 * h)
        want = np.sum(np.real(ct * dy))
        got = np.sum(np.real(ct_z * dz)) + np.sum(ct_b * db)
        assert abs(got - want) < 1e-6 * max(1.0, abs(want)), (got, want)
    z[0, 0, 0] = 0
    ct_z, ct_b = (np.asarray(g) for g in jax.vjp(lambda v, b: activation(v, b, leaky_spin), jnp.asarray(z),
                                                jnp.asarray(bias))[1](jnp.asarray(ct)))

    def plain(v, b):
        r = jnp.abs(v)
        out = jax.nn.relu(r + b) / (r + 1e-6) * v
        if leaky_spin is not None:
            leaky = jax.nn.leaky_relu(jnp.real(v), 0.01).astype(v.dtype)
            out = jnp.where((np.arange(3) == leaky_spin)[:, None], leaky, out)
        return out
    auto_z, auto_b = jax.vjp(plain, jnp.asarray(z), jnp.asarray(bias))[1](jnp.asarray(ct))
    np.testing.assert_allclose(ct_z, np.asarray(auto_z), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ct_b, np.asarray(auto_b), rtol=1e-12, atol=1e-12)


def test_phase_collapse_formula():
    rng = np.random.default_rng(2)
    layer = sphcnn.PhaseCollapse((0, 2), 3, rngs=nnx.Rngs(0))
    for p in (layer.spin0_bias, layer.magnitude_bias):
        p[...] = jnp.asarray(rng.standard_normal(3) + 1j * rng.standard_normal(3), jnp.complex64)
    z = random_maps(rng, (2,), 8, (0, 2), 3, np.complex64)
    out = np.asarray(layer(jnp.asarray(z)))
    k0, b0 = np.asarray(layer.spin0_kernel[...]), np.asarray(layer.spin0_bias[...])
    km, bm = np.asarray(layer.magnitude_kernel[...]), np.asarray(layer.magnitude_bias[...])
    magnitudes = np.abs(z).reshape(z.shape[:-2] + (-1,))
    want0 = 0.5 * (z[..., 0, :] @ k0 + b0 + magnitudes @ km + bm)
    np.testing.assert_allclose(out[..., 0, :], want0, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out[..., 1, :], z[..., 1, :])


@pytest.mark.parametrize("make", [
    lambda: sphcnn.MagnitudeNonlinearityLeakyRelu((1, 2), 2),
    lambda: sphcnn.PhaseCollapse((1,), 2, rngs=nnx.Rngs(0)),
])
def test_spin0_layers_need_spin0(make):
    with pytest.raises(ValueError, match="spin 0"):
        make()


def test_spatial_pool_weights_and_constants():
    rng = np.random.default_rng(3)
    n = 16
    # a constant stays that constant; the weights of each output point sum to 1
    ones = jnp.ones((1, n, n, 1, 1), jnp.complex64)
    np.testing.assert_allclose(np.asarray(sphcnn.spatial_pool(ones)), 1.0, rtol=1e-6)
    # against an explicit triangle-weighted, area-weighted mean
    x = random_maps(rng, (1,), n, (0,), 1, np.complex64)[0, :, :, 0, 0]
    theta, _ = sk.equiangular_grid(n)
    area = sk.quadrature_weights(n)
    coarse_theta = np.pi * np.arange(n // 2) / (n // 2 - 1)
    want = np.zeros((n // 2, n // 2), complex)
    for J, t in enumerate(coarse_theta):
        ring_w = np.maximum(0, 1 - np.abs(theta - t) / (2 * np.pi / (n - 1))) * area
        for K in range(n // 2):
            lon_w = np.zeros(n)
            lon_w[[2 * K - 1, 2 * K, (2 * K + 1) % n]] = [0.25, 0.5, 0.25]
            want[J, K] = np.sum(np.outer(ring_w, lon_w) * x) / ring_w.sum()
    got = np.asarray(sphcnn.spatial_pool(jnp.asarray(x[None, :, :, None, None])))[0, :, :, 0, 0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="divisible by 4"):
        sphcnn.spatial_pool(jnp.ones((1, 6, 6, 1, 1)))


def test_spectral_pool_keeps_low_degrees_exactly():
    rng = np.random.default_rng(4)
    spins = (0, 1)
    a = random_coefficients(rng, (2,), 15, spins, 2, np.complex64)
    a[:, 8:] = 0  # band-limited to the coarse grid's band limit
    pooled = sphcnn.spectral_pool(sk.inverse(a, spins), spins)
    assert pooled.shape == (2, 16, 16, 2, 2)
    np.testing.assert_allclose(np.asarray(pooled), np.asarray(sk.inverse(a[:, :8, 8:23], spins)), atol=1e-5)


def test_readout_is_mean_of_spin0_and_of_magnitudes():
    rng = np.random.default_rng(5)
    spins = (0, 1)
    x = random_maps(rng, (2,), 16, spins, 3, np.complex64)
    got = np.asarray(sphcnn.spherical_readout(jnp.asarray(x), spins))
    w = sk.quadrature_weights(16) / (4 * np.pi * 16)
    np.testing.assert_allclose(got[:, 0], np.einsum("j,bjkc->bc", w, x[..., 0, :].real), rtol=1e-5)
    np.testing.assert_allclose(got[:, 1], np.einsum("j,bjkc->bc", w, np.abs(x[..., 1, :])), rtol=1e-5)


def test_spatial_pool_under_vmap_is_the_loop():
    # The batching rule moves the mapped axis to the front and binds once on
    # (..., n, n, S, C): the same values as pooling each slice, for the pool,
    # its transpose (the VJP) and nested vmaps, eager and jitted, float64.
    rng = np.random.default_rng(6)
    x = jnp.asarray(random_maps(rng, (2, 3), 16, (0, 1), 2))  # (2, 3, 16, 16, 2, 2)
    loop = np.stack([np.asarray(sphcnn.spatial_pool(x[:, i])) for i in range(3)], axis=1)
    for pool in (jax.vmap(sphcnn.spatial_pool, in_axes=1, out_axes=1),
                 jax.jit(jax.vmap(sphcnn.spatial_pool, in_axes=1, out_axes=1))):
        got = np.asarray(pool(x))
        assert got.shape == (2, 3, 8, 8, 2, 2)
        np.testing.assert_allclose(got, loop, rtol=0, atol=1e-14)
    nested = jax.vmap(jax.vmap(sphcnn.spatial_pool, in_axes=0), in_axes=1, out_axes=1)(x[:, :, None])
    np.testing.assert_allclose(np.asarray(nested)[:, :, 0], loop, rtol=0, atol=1e-14)

    y = jnp.asarray(random_maps(rng, (2, 3), 8, (0, 1), 2))
    def transpose(v, w):
        return jax.vjp(sphcnn.spatial_pool, v)[1](w)[0]

    batched = np.asarray(jax.vmap(transpose, in_axes=(1, 1), out_axes=1)(x, y))
    want = np.stack([np.asarray(transpose(x[:, i], y[:, i])) for i in range(3)], axis=1)
    np.testing.assert_allclose(batched, want, rtol=0, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_spatial_pool_vjp_is_the_transpose(dtype):
    # <pool(x), y> = <x, pool^T(y)> (bilinear, no conjugation: JAX's transpose),
    # and pool^T equals the transpose of the explicit matrix of the pool.
    rng = np.random.default_rng(7)
    n = 16
    def draw(shape):
        values = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if dtype == np.complex128 else 0)
        return values.astype(dtype)

    x, y = draw((2, n, n, 2, 3)), draw((2, n // 2, n // 2, 2, 3))
    pooled, vjp = jax.vjp(sphcnn.spatial_pool, jnp.asarray(x))
    back = np.asarray(vjp(jnp.asarray(y))[0])
    assert back.shape == x.shape and back.dtype == dtype
    lhs, rhs = np.sum(np.asarray(pooled) * y), np.sum(x * back)
    assert abs(lhs - rhs) < 1e-12 * np.sqrt(np.sum(np.abs(x) ** 2) * np.sum(np.abs(y) ** 2))
    basis = np.eye(n * n).reshape(n * n, n, n, 1, 1)
    matrix = np.asarray(sphcnn.spatial_pool(jnp.asarray(basis))).reshape(n * n, -1).T  # (n^2 / 4, n^2)
    flat_y = np.moveaxis(y, (1, 2), (-2, -1)).reshape(y.shape[0], *y.shape[3:], -1)
    want = np.moveaxis((flat_y @ matrix).reshape(*flat_y.shape[:-1], n, n), (-2, -1), (1, 2))
    np.testing.assert_allclose(back, want, rtol=0, atol=1e-14)


def test_spatial_pool_and_its_gradient_are_slices_and_pads():
    # strided slices and interior pads of the ring axis (fusible elementwise
    # work): no gather in the pool, no scatter-add in its transpose
    x = jnp.ones((2, 16, 16, 1, 3), jnp.complex64)
    grad = jax.jit(jax.grad(lambda v: jnp.sum(jnp.abs(sphcnn.spatial_pool(v)) ** 2)))
    text = grad.lower(x).as_text()
    assert "scatter" not in text and "gather" not in text
    assert text.count("stablehlo.slice") >= 4 and text.count("stablehlo.pad") >= 4
