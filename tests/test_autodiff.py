"""jit, vmap, grad and jvp on every backend: the transforms are linear
primitives whose transposes are written with each other."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import sphcnn_kernels as sk
from references import random_coefficients, random_maps

BACKENDS = sk.available_backends()
SPINS = (0, 1, -2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jit_gives_identical_results(backend):
    rng = np.random.default_rng(20)
    x = random_maps(rng, (2,), 16, SPINS, 3)
    a = random_coefficients(rng, (2,), 7, SPINS, 3)
    fwd = lambda v: sk.forward(v, SPINS, backend=backend)  # noqa: E731
    inv = lambda v: sk.inverse(v, SPINS, backend=backend)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(jax.jit(fwd)(x)), np.asarray(fwd(x)))
    np.testing.assert_array_equal(np.asarray(jax.jit(inv)(a)), np.asarray(inv(a)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axis", [0, 1])
def test_vmap_gives_identical_results(backend, axis):
    rng = np.random.default_rng(21)
    x = random_maps(rng, (3, 2), 16, SPINS, 2)
    a = random_coefficients(rng, (3, 2), 7, SPINS, 2)
    fwd = lambda v: sk.forward(v, SPINS, backend=backend)  # noqa: E731
    inv = lambda v: sk.inverse(v, SPINS, backend=backend)  # noqa: E731
    got = np.asarray(jax.vmap(fwd, in_axes=axis, out_axes=axis)(x))
    np.testing.assert_allclose(got, np.asarray(fwd(x)), rtol=0, atol=1e-15 * np.abs(got).max())
    got = np.asarray(jax.vmap(inv, in_axes=axis, out_axes=axis)(a))
    np.testing.assert_allclose(got, np.asarray(inv(a)), rtol=0, atol=1e-15 * np.abs(got).max())


@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_over_channel_axis_with_an_extra_axis(backend):
    rng = np.random.default_rng(22)
    x = random_maps(rng, (2,), 8, (0,), 3)
    got = jax.vmap(lambda v: sk.forward(v[..., None, None], [0], backend=backend)[..., 0, 0], in_axes=-1, out_axes=-1)(
        x[..., 0, :]
    )
    np.testing.assert_allclose(np.asarray(got), np.asarray(sk.forward(x, [0], backend=backend))[..., 0, :], atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_grads_forward_and_inverse(backend):
    rng = np.random.default_rng(23)
    x = jnp.asarray(random_maps(rng, (1,), 8, SPINS[:2], 2))
    a = jnp.asarray(random_coefficients(rng, (1,), 3, SPINS[:2], 2))
    check_grads(lambda v: sk.forward(v, SPINS[:2], backend=backend), (x,), order=1, modes=("fwd", "rev"))
    check_grads(lambda v: sk.inverse(v, SPINS[:2], backend=backend), (a,), order=1, modes=("fwd", "rev"))
    check_grads(lambda v: sk.forward(v, SPINS[:2], ell_max=2, backend=backend), (x,), order=1, modes=("fwd", "rev"))
    check_grads(lambda v: sk.inverse(v, SPINS[:2], n=12, backend=backend), (a,), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_order_and_real_input(backend):
    rng = np.random.default_rng(24)
    x = jnp.asarray(rng.standard_normal((1, 8, 8, 1, 2)))

    def loss(v):
        a = sk.forward(v, [0], backend=backend)
        return jnp.sum(jnp.abs(sk.inverse(a * a, [0], backend=backend)) ** 2)

    check_grads(loss, (x,), order=2, modes=("fwd", "rev"))
    assert jax.grad(loss)(x).dtype == x.dtype


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_matches_adjoint_identity(backend):
    # <forward(x), a> = <x, forward^T(a)> with the transpose from JAX's vjp, and
    # forward^T(a) = w * conj(inverse(conj(a))) (the analytic adjoint).
    rng = np.random.default_rng(25)
    n, spins = 16, (1, 0)
    x = random_maps(rng, (2,), n, spins, 2)
    a = random_coefficients(rng, (2,), 7, spins, 2)
    _, vjp = jax.vjp(lambda v: sk.forward(v, spins, backend=backend), jnp.asarray(x))
    (transposed,) = vjp(jnp.asarray(a))
    w = (sk.quadrature_weights(n) / n)[:, None, None, None]
    analytic = w * np.conj(np.asarray(sk.inverse(np.conj(a), spins, backend=backend)))
    np.testing.assert_allclose(np.asarray(transposed), analytic, atol=1e-13)
    lhs = np.sum(np.asarray(sk.forward(x, spins, backend=backend)) * a)
    np.testing.assert_allclose(lhs, np.sum(x * np.asarray(transposed)), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jvp_is_the_transform_of_the_tangent(backend):
    rng = np.random.default_rng(26)
    x, t = (jnp.asarray(random_maps(rng, (1,), 8, (0,), 1)) for _ in range(2))
    out, tangent = jax.jvp(lambda v: sk.forward(v, [0], backend=backend), (x,), (t,))
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(sk.forward(t, [0], backend=backend)), atol=1e-15)
    np.testing.assert_allclose(np.asarray(out), np.asarray(sk.forward(x, [0], backend=backend)), atol=1e-15)
