"""Batch norms: quadrature statistics, spin rules, running averages, per-example
weights, cross-device averaging, and spectral == spatial."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sphcnn
import sphcnn_kernels as sk
from references import random_coefficients, random_maps


def sphere_moments(x, weights=None):
    """float64 (E f, E |f - E f|^2, E |f|^2) over batch and sphere, (S, C)."""
    n = x.shape[1]
    w = sk.quadrature_weights(n) / (4 * np.pi * n)
    per_first = np.einsum("j,bjksc->bsc", w, x)
    per_second = np.einsum("j,bjksc->bsc", w, np.abs(x) ** 2)
    ex = np.ones(x.shape[0]) if weights is None else np.asarray(weights, float)
    first = np.einsum("b,bsc->sc", ex, per_first) / ex.sum()
    second = np.einsum("b,bsc->sc", ex, per_second) / ex.sum()
    return first, second - np.abs(first) ** 2, second


def test_spherical_batch_norm_uses_quadrature_statistics():
    rng = np.random.default_rng(0)
    x = random_maps(rng, (3,), 16, (0, 1), 2, np.complex64) + 0.7
    bn = sphcnn.SphericalBatchNorm((0, 1), 2)
    y = np.asarray(bn(jnp.asarray(x)))
    mean, var, _ = sphere_moments(x.astype(complex))
    np.testing.assert_allclose(np.asarray(bn.mean[...]), 0.01 * mean, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.var[...]), 0.99 + 0.01 * var, rtol=1e-5)
    out_mean, out_var, _ = sphere_moments(y.astype(complex))
    np.testing.assert_allclose(out_mean, 0, atol=1e-5)
    np.testing.assert_allclose(out_var, var / (var + 1e-5), rtol=1e-4)
    # a plain (unweighted) grid mean would differ: the weights matter
    assert np.abs(x.mean(axis=(0, 1, 2)) - mean).max() > 1e-2


def test_spin_batch_norm_only_rescales_nonzero_spins():
    rng = np.random.default_rng(1)
    x = random_maps(rng, (2,), 16, (1, 0), 2, np.complex64) + 0.5
    bn = sphcnn.SpinSphericalBatchNorm((1, 0), 2)
    y = np.asarray(bn(jnp.asarray(x)))
    mean, var, second = sphere_moments(x.astype(complex))
    np.testing.assert_allclose(y[..., 0, :], x[..., 0, :] / np.sqrt(second[0] + 1e-5), rtol=1e-4)
    np.testing.assert_allclose(y[..., 1, :], (x[..., 1, :] - mean[1]) / np.sqrt(var[1] + 1e-5), rtol=1e-4,
                               atol=1e-5)
    assert bn.bias[...].shape == (1, 2)
    np.testing.assert_allclose(np.asarray(bn.mean[...])[0], 0)


def test_eval_mode_uses_running_averages():
    rng = np.random.default_rng(2)
    x = random_maps(rng, (2,), 8, (0,), 3, np.complex64)
    bn = sphcnn.SphericalBatchNorm((0,), 3)
    bn.mean[...] = jnp.full((1, 3), 0.5 + 0.5j, jnp.complex64)
    bn.var[...] = jnp.full((1, 3), 4.0, jnp.float32)
    bn.eval()
    y = np.asarray(bn(jnp.asarray(x)))
    np.testing.assert_allclose(y, (x - (0.5 + 0.5j)) / np.sqrt(4.0 + 1e-5), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(bn.var[...]), 4.0)  # unchanged in eval mode


@pytest.mark.parametrize("layout", ["batch_major", "degree_major"])
def test_spectral_equals_spatial_on_band_limited_inputs(layout):
    rng = np.random.default_rng(3)
    spins = (0, 1, -2)
    a = random_coefficients(rng, (3,), 15, spins, 2, np.complex64)
    a[:, 0, 15, 0, :] += 3.0  # a nonzero spin-0 mean
    f = sk.inverse(a, spins)
    spatial = sphcnn.SpinSphericalBatchNorm(spins, 2)
    spectral = sphcnn.SpectralBatchNorm(spins, 2, layout=layout)
    for bn in (spatial, spectral):
        bn.scale[...] = jnp.asarray(rng.standard_normal((3, 2)) + 1j, jnp.complex64)
    spectral.scale[...] = spatial.scale[...]
    spatial.bias[...] = spectral.bias[...] = jnp.asarray([[0.3 - 0.1j, 2.0]], jnp.complex64)
    want = spatial(f)
    coeffs = sk.forward(f, spins, layout=layout)
    got = sk.inverse(spectral(coeffs), spins, layout=layout)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5)
    np.testing.assert_allclose(np.asarray(spectral.mean[...]), np.asarray(spatial.mean[...]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(spectral.var[...]), np.asarray(spatial.var[...]), rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: sphcnn.SphericalBatchNorm((0, 1), 2),
    lambda: sphcnn.SpinSphericalBatchNorm((0, 1), 2),
])
def test_example_weights_equal_the_unmasked_subset(make):
    rng = np.random.default_rng(4)
    x = random_maps(rng, (4,), 8, (0, 1), 2, np.complex64)
    masked, subset = make(), make()
    y_masked = np.asarray(masked(jnp.asarray(x), example_weights=jnp.asarray([1.0, 0.0, 1.0, 1.0])))
    y_subset = np.asarray(subset(jnp.asarray(x[[0, 2, 3]])))
    np.testing.assert_allclose(y_masked[[0, 2, 3]], y_subset, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(masked.mean[...]), np.asarray(subset.mean[...]), atol=1e-7)
    np.testing.assert_allclose(np.asarray(masked.var[...]), np.asarray(subset.var[...]), rtol=1e-6)


def test_spectral_example_weights():
    rng = np.random.default_rng(5)
    a = jnp.asarray(random_coefficients(rng, (3,), 7, (0, 1), 2, np.complex64))
    masked, subset = sphcnn.SpectralBatchNorm((0, 1), 2), sphcnn.SpectralBatchNorm((0, 1), 2)
    y = masked(a, example_weights=jnp.asarray([0.0, 1.0, 1.0]))
    np.testing.assert_allclose(np.asarray(y[1:]), np.asarray(subset(a[1:])), rtol=1e-5, atol=1e-6)


def test_statistics_are_averaged_across_devices():
    # Two "devices" (a vmapped axis named 'devices') with half the batch each see
    # the statistics of the whole batch.
    rng = np.random.default_rng(6)
    x = jnp.asarray(random_maps(rng, (4,), 8, (0, 1), 2, np.complex64))
    weights = jnp.asarray([1.0, 1.0, 0.0, 1.0])
    whole = sphcnn.SpinSphericalBatchNorm((0, 1), 2)
    want = whole(x, example_weights=weights)
    graph, state = nnx.split(sphcnn.SpinSphericalBatchNorm((0, 1), 2, axis_name="devices"))

    def per_device(part, part_weights):
        bn = nnx.merge(graph, state, copy=True)
        return bn(part, example_weights=part_weights), nnx.state(bn, nnx.BatchStat)

    got, stats = jax.vmap(per_device, axis_name="devices")(x.reshape(2, 2, *x.shape[1:]), weights.reshape(2, 2))
    np.testing.assert_allclose(np.asarray(got).reshape(want.shape), np.asarray(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(stats["var"][...][0]), np.asarray(whole.var[...]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(stats["var"][...][1]), np.asarray(whole.var[...]), rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"'momentum'.*1.5"):
        sphcnn.SphericalBatchNorm((0,), 2, momentum=1.5)
    with pytest.raises(ValueError, match=r"'epsilon'"):
        sphcnn.SpinSphericalBatchNorm((0,), 2, epsilon=0.0)
    with pytest.raises(ValueError, match=r"'layout'.*'lm'"):
        sphcnn.SpectralBatchNorm((0,), 2, layout="lm")
    bn = sphcnn.SpinSphericalBatchNorm((0, 1), 2)
    with pytest.raises(ValueError, match=r"input has shape \(2, 8, 8, 1, 2\)"):
        bn(jnp.zeros((2, 8, 8, 1, 2), jnp.complex64))
    with pytest.raises(ValueError, match=r"'example_weights' has shape \(3,\); expected \(2,\)"):
        bn(jnp.zeros((2, 8, 8, 2, 2), jnp.complex64), example_weights=jnp.ones(3))


@pytest.mark.parametrize("degree_axis", [0, 1])
def test_hand_written_gradients_of_the_spectral_batch_norm(degree_axis):
    # coefficient_moments and scale_and_shift have written-out VJPs; against central
    # differences of float64 NumPy formulas along random directions (JAX pairs
    # complex cotangents as Re(sum ct dy)), for both layouts.
    from sphcnn.nn.batch_norm import coefficient_moments, scale_and_shift

    rng = np.random.default_rng(12)
    L, B, S, C = 4, 3, 2, 5
    shape = (L, B, 2 * L - 1, S, C) if degree_axis == 0 else (B, L, 2 * L - 1, S, C)
    cplx = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)
    a, factor, offset = cplx(*shape), cplx(S, C), cplx(S, C)
    sqrt4pi = np.sqrt(4 * np.pi)

    def a00(v):
        return v[0, :, L - 1] if degree_axis == 0 else v[:, 0, L - 1]

    def moments_numpy(v):
        return a00(v), np.sum(np.abs(v) ** 2, axis=(degree_axis, 2))

    def shift_numpy(v, k, o):
        y = v * k
        if degree_axis == 0:
            y[0, :, L - 1] += sqrt4pi * o
        else:
            y[:, 0, L - 1] += sqrt4pi * o
        return y

    (first, second), vjp = jax.vjp(lambda v: coefficient_moments(v, degree_axis), jnp.asarray(a))
    for got, want in zip((first, second), moments_numpy(a)):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-13)
    ct_first, ct_second = cplx(B, S, C), rng.standard_normal((B, S, C))
    (ct_a,) = vjp((jnp.asarray(ct_first), jnp.asarray(ct_second)))
    y, vjp = jax.vjp(lambda v, k, o: scale_and_shift(v, k, o, degree_axis), *map(jnp.asarray, (a, factor, offset)))
    np.testing.assert_allclose(np.asarray(y), shift_numpy(a, factor, offset), rtol=1e-13, atol=1e-14)
    ct_y = cplx(*shape)
    ct_v, ct_k, ct_o = (np.asarray(g) for g in vjp(jnp.asarray(ct_y)))
    h = 1e-6
    for _ in range(3):
        da, dk, do = cplx(*shape), cplx(S, C), cplx(S, C)
        plus, minus = moments_numpy(a + h * da), moments_numpy(a - h * da)
        want = (np.sum(np.real(ct_first * (plus[0] - minus[0]))) + np.sum(ct_second * (plus[1] - minus[1]))) / (2 * h)
        assert abs(np.sum(np.real(np.asarray(ct_a) * da)) - want) < 1e-6 * max(1, abs(want))
        dy = (shift_numpy(a + h * da, factor + h * dk, offset + h * do)
              - shift_numpy(a - h * da, factor - h * dk, offset - h * do)) / (2 * h)
        want = np.sum(np.real(ct_y * dy))
        got = np.sum(np.real(ct_v * da)) + np.sum(np.real(ct_k * dk)) + np.sum(np.real(ct_o * do))
        assert abs(got - want) < 1e-6 * max(1, abs(want)), (got, want)
