"""The fused block boundary (sphcnn.nn.fused.activated: a block's
magnitude nonlinearity and the next block's spatial pooling inside the next
forward transform) against the reference composition transform.forward(
spatial_pool?(activation(y))): the C++ kernel (sphcnn_activated_analysis) in
float32 and float64, both layouts, every leaky-spin choice, pooled or not,
batched and vmapped; its gradients; the spectral batch norm's apply inside the
inverse transform (sphcnn.nn.fused.affine_synthesis, sphcnn_affine_synthesis)
against transform.inverse(scale_and_shift(...)); and whole classifiers fused and
unfused (logits, gradients, batch statistics, evaluation mode). On a GPU the
CUDA kernels against the composition in complex128."""

from __future__ import annotations

import importlib.util
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sphcnn
import sphcnn_kernels as sk
from sphcnn.nn import nonlinearities, pooling
from sphcnn_kernels import ops
from sphcnn_kernels.ops import affine_synthesis
from numerics import relative_error

SPINS = (0, 1)


def activated(transform, y, bias, leaky_spin, pool):
    """The activated analysis with the activation given by its bias and leaky spin."""
    return ops.activated_analysis(transform, y, ops.Activation(bias, leaky_spin), pool)


def _reference(transform, y, bias, leaky_spin, pool):
    z = nonlinearities.activation(y, bias, leaky_spin)
    return transform.forward(pooling.spatial_pool(z) if pool else z)


def _inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    bias = (0.7 * rng.normal(size=shape[-2:])).astype(np.finfo(dtype).dtype)
    return jnp.asarray(y), jnp.asarray(bias)


def _transform(n, dtype="complex64", backend="ffi", layout="degree_major", ell_max=None, spins=SPINS):
    return sk.SphericalTransform(n, spins, ell_max, dtype, backend=backend, layout=layout)


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("leaky_spin", [None, 0, 1])
@pytest.mark.parametrize("dtype,tolerance", [("complex64", 2e-6), ("complex128", 1e-13)])
def test_kernel_matches_the_composition(pool, leaky_spin, dtype, tolerance):
    n = 16
    transform = _transform(n, dtype)
    y, bias = _inputs((3, 2 * n if pool else n, 2 * n if pool else n, 2, 5), dtype)
    fused_out = jax.jit(lambda y, b: activated(transform, y, b, leaky_spin, pool))(y, bias)
    assert relative_error(fused_out, _reference(transform, y, bias, leaky_spin, pool)) < tolerance


@pytest.mark.parametrize("layout", ["batch_major", "degree_major"])
def test_layouts_batch_axes_and_spectral_pooling(layout):
    # two leading batch axes; a transform whose ell_max is below n/2 - 1
    transform = _transform(12, "complex128", layout=layout, ell_max=3)
    y, bias = _inputs((2, 3, 24, 24, 2, 4), np.complex128, seed=1)
    out = jax.jit(lambda y, b: activated(transform, y, b, 0, True))(y, bias)
    assert out.shape == transform.spectral_shape((2, 3), 4)
    assert relative_error(out, _reference(transform, y, bias, 0, True)) < 1e-13


def test_the_cpu_lowering_is_one_custom_call_and_other_backends_the_composition():
    y, bias = _inputs((2, 32, 32, 2, 3), np.complex64)
    texts = {}
    for backend in ("ffi", "xla"):
        transform = _transform(16, backend=backend)
        f = jax.jit(lambda y, b: activated(transform, y, b, 0, True))
        texts[backend] = f.lower(y, bias).as_text()
    assert len(re.findall(r"custom_call @sphcnn_activated_analysis\b", texts["ffi"])) == 1
    assert "sphcnn_analysis" not in texts["ffi"]
    assert "sphcnn_activated_analysis" not in texts["xla"]
    transform = _transform(16)
    loss = lambda y, b: jnp.sum(jnp.abs(activated(transform, y, b, 0, True)) ** 2)
    gradient = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(y, bias).as_text()
    assert len(re.findall(r"custom_call @sphcnn_activated_gradient\b", gradient)) == 1
    assert "sphcnn_synthesis" not in gradient


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("leaky_spin", [None, 0])
def test_gradients_match_the_composition(pool, leaky_spin):
    n = 8
    transform = _transform(n, "complex128")
    y, bias = _inputs((2, 2 * n if pool else n, 2 * n if pool else n, 2, 3), np.complex128, seed=2)
    rng = np.random.default_rng(3)
    shape = transform.spectral_shape((2,), 3)
    weights = jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape))

    def loss(f):
        return lambda y, b: jnp.sum(jnp.real(weights * f(transform, y, b, leaky_spin, pool)) ** 2)

    fused_grads = jax.jit(jax.grad(loss(activated), argnums=(0, 1)))(y, bias)
    reference_grads = jax.grad(loss(_reference), argnums=(0, 1))(y, bias)
    for got, want in zip(fused_grads, reference_grads):
        assert relative_error(got, want) < 1e-12


def test_vmap_over_a_leading_axis():
    transform = _transform(8, "complex128")
    y, bias = _inputs((4, 2, 16, 16, 2, 3), np.complex128, seed=4)
    mapped = jax.vmap(lambda y: activated(transform, y, bias, 0, True), in_axes=1)(y)
    want = jnp.moveaxis(_reference(transform, y, bias, 0, True), 1 + (transform.layout == "degree_major"), 0)
    assert relative_error(mapped, want) < 1e-13
    biases = jnp.stack([bias, 2 * bias])
    per_bias = jax.vmap(lambda b: activated(transform, y[:, 0], b, None, True))(biases)
    assert relative_error(per_bias[1], _reference(transform, y[:, 0], 2 * bias, None, True)) < 1e-13


def test_gradients_are_reproducible():
    """The bias cotangent is summed ring by ring in a fixed order, whichever
    worker took which ring: repeated calls agree bit for bit."""
    transform = _transform(32)
    y, bias = _inputs((8, 64, 64, 2, 8), np.complex64, seed=14)
    grad = jax.jit(jax.grad(lambda y, b: jnp.sum(jnp.abs(activated(transform, y, b, 0, True)) ** 2),
                            argnums=1))
    first = np.asarray(grad(y, bias))
    for _ in range(5):
        assert np.array_equal(np.asarray(grad(y, bias)), first)


def test_vmap_of_the_gradient():
    transform = _transform(8, "complex128")
    y, bias = _inputs((3, 2, 16, 16, 2, 3), np.complex128, seed=6)

    def loss(f):
        return lambda y, b: jnp.sum(jnp.abs(f(transform, y, b, 1, True)) ** 2)

    fused_grads = jax.jit(jax.vmap(jax.grad(loss(activated), argnums=(0, 1)), in_axes=(0, None)))(y, bias)
    reference = jax.vmap(jax.grad(loss(_reference), argnums=(0, 1)), in_axes=(0, None))(y, bias)
    for got, want in zip(fused_grads, reference):
        assert relative_error(got, want) < 1e-12


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(shape=(2, 16, 16, 2, 3)), r"argument 'y' has shape \(2, 16, 16, 2, 3\); expected \(batch\.\.\., 32, 32"),
    (dict(bias_shape=(1, 3)), r"argument 'activation' has a bias of shape \(1, 3\); expected \(2, 3\)"),
    (dict(leaky_spin=2), r"argument 'activation' has leaky_spin 2; expected None or a spin index below 2"),
    (dict(dtype=np.complex128), r"argument 'y' has dtype complex128; expected complex64"),
])
def test_bad_arguments_are_named(kwargs, pattern):
    transform = _transform(16)
    y, bias = _inputs(kwargs.get("shape", (2, 32, 32, 2, 3)), kwargs.get("dtype", np.complex64))
    if "bias_shape" in kwargs:
        bias = jnp.zeros(kwargs["bias_shape"], jnp.float32)
    with pytest.raises(ValueError, match=pattern):
        activated(transform, y, bias, kwargs.get("leaky_spin", 0), True)


def test_the_kernel_checks_its_operands():
    from sphcnn_kernels.backends import ffi_backend

    transform = _transform(16)
    y, _ = _inputs((2, 16, 16, 2, 3), np.complex64)
    plan = transform.plan
    module = ffi_backend.extension("cpu")
    result = jax.ShapeDtypeStruct(plan.spectral_shape((2,), 2, 3, "degree_major"), plan.dtype)

    def call(y, bias, taps, leaky_spin):
        extra, attributes = ffi_backend.activation_attributes(plan, bias, taps, leaky_spin, False, 1e-6, 0.01)
        scratch = ffi_backend.scratch_bytes(module, plan, "onthefly", 2, 3, True)
        return ffi_backend.contract_call("sphcnn_activated_analysis", (y, *extra), (result,), scratch, plan=plan,
                                         sign=-1, weighted=True, layout="degree_major", source="onthefly",
                                         **attributes)[0]

    with pytest.raises(Exception, match=r"bias must hold S \* C = 6 values"):
        jax.jit(lambda y: call(y, jnp.zeros((5,)), np.zeros((0,)), leaky_spin=0))(y).block_until_ready()
    with pytest.raises(Exception, match=r"leaky_spin must be -1 or a spin index below 2, got 5"):
        jax.jit(lambda y: call(y, jnp.zeros((2, 3)), np.zeros((0,)), leaky_spin=5))(y).block_until_ready()
    with pytest.raises(Exception, match=r"taps must hold 0 values"):
        jax.jit(lambda y: call(y, jnp.zeros((2, 3)), np.ones((16, 4)), leaky_spin=0))(y).block_until_ready()


def _affine_reference(transform, a, factor, offset):
    degree_axis = 0 if transform.layout == "degree_major" else a.ndim - 4
    return transform.inverse(ops.scale_and_shift(a, factor, offset, degree_axis))


def _affine_inputs(transform, batch, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = transform.spectral_shape(batch, channels)
    a = jnp.asarray((rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype))
    small = (len(transform.spins), channels)
    factor = jnp.asarray((rng.normal(size=small) + 1j * rng.normal(size=small)).astype(dtype))
    offset = jnp.asarray((rng.normal(size=small) + 1j * rng.normal(size=small)).astype(dtype))
    return a, factor, offset


@pytest.mark.parametrize("spins,ell_max", [((0, 1), None), ((1, -2), None), ((0,), 3)])
@pytest.mark.parametrize("layout", ["degree_major", "batch_major"])
@pytest.mark.parametrize("dtype,tolerance", [("complex64", 2e-6), ("complex128", 1e-13)])
def test_affine_synthesis_matches_the_composition(spins, ell_max, layout, dtype, tolerance):
    """The batch norm's apply inside the synthesis (sphcnn_affine_synthesis): the
    offset reaches only spin 0's constant; with no spin 0 it is ignored."""
    transform = _transform(16, dtype, layout=layout, ell_max=ell_max, spins=spins)
    a, factor, offset = _affine_inputs(transform, (3,), 4, dtype, seed=9)
    got = jax.jit(lambda *args: affine_synthesis(transform, *args))(a, factor, offset)
    assert relative_error(got, _affine_reference(transform, a, factor, offset)) < tolerance


def test_affine_synthesis_gradients_lowering_and_vmap():
    transform = _transform(8, "complex128")
    a, factor, offset = _affine_inputs(transform, (2,), 3, np.complex128, seed=10)
    rng = np.random.default_rng(11)
    weights = jnp.asarray(rng.normal(size=(2, 8, 8, 2, 3)) + 1j * rng.normal(size=(2, 8, 8, 2, 3)))

    def loss(f):
        return lambda a, k, o: jnp.sum(jnp.abs(weights * f(transform, a, k, o)) ** 2)

    fused_grads = jax.jit(jax.grad(loss(affine_synthesis), argnums=(0, 1, 2)))(a, factor, offset)
    reference = jax.grad(loss(_affine_reference), argnums=(0, 1, 2))(a, factor, offset)
    for got, want in zip(fused_grads, reference):
        assert relative_error(got, want) < 1e-12
    text = jax.jit(lambda *args: affine_synthesis(transform, *args)).lower(a, factor, offset).as_text()
    assert len(re.findall(r"custom_call @sphcnn_affine_synthesis\b", text)) == 1
    assert "sphcnn_synthesis" not in text
    stacked = jnp.stack([a, 2 * a], axis=1)  # vmapped over a batch axis (degree-major: axis 1)
    mapped = jax.vmap(lambda a: affine_synthesis(transform, a, factor, offset), in_axes=1)(stacked)
    assert relative_error(mapped[1], _affine_reference(transform, 2 * a, factor, offset)) < 1e-13
    # the gradient vmapped (the composition, mapped) and in the batch-major layout
    grads = jax.vmap(jax.grad(loss(affine_synthesis), argnums=(0, 1, 2)), in_axes=(1, None, None))(stacked, factor,
                                                                                              offset)
    assert relative_error(grads[1][1], jax.grad(loss(_affine_reference), argnums=1)(2 * a, factor, offset)) < 1e-12
    batch_major = _transform(8, "complex128", layout="batch_major")

    def batch_major_loss(f):
        return lambda a, k, o: jnp.sum(jnp.abs(weights * f(batch_major, a, k, o)) ** 2)

    wide = jnp.moveaxis(a, 0, 1)
    got = jax.grad(batch_major_loss(affine_synthesis), argnums=(0, 1, 2))(wide, factor, offset)
    want = jax.grad(batch_major_loss(_affine_reference), argnums=(0, 1, 2))(wide, factor, offset)
    for g, w in zip(got, want):
        assert relative_error(g, w) < 1e-12


@pytest.mark.skipif(importlib.util.find_spec("sphcnn_kernels._cuda") is None, reason="the CUDA module is not built")
def test_affine_synthesis_gradient_lowers_to_one_cuda_call():
    """Lowered for CUDA, the gradient of the affine synthesis is one call of
    sphcnn_affine_gradient (the transposed synthesis with the batch norm's
    gradient in the Legendre stage's epilogue); with lambda on the fly, the plain analysis and XLA."""
    a, factor, offset = _affine_inputs(_transform(16), (2,), 3, np.complex64, seed=12)

    def text(transform):
        loss = lambda a, k, o: jnp.sum(jnp.abs(affine_synthesis(transform, a, k, o)) ** 2)  # noqa: E731
        grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
        return grad.trace(a, factor, offset).lower(lowering_platforms=("cuda",)).as_text()

    kernel = text(_transform(16))
    assert kernel.count("custom_call @sphcnn_affine_gradient") == 1 and "custom_call @sphcnn_analysis" not in kernel
    composed = text(sk.SphericalTransform(16, SPINS, None, "complex64", backend="ffi", layout="degree_major",
                                          mode="onthefly"))
    assert "sphcnn_affine_gradient" not in composed and composed.count("custom_call @sphcnn_analysis") == 1


def test_affine_synthesis_arguments_are_checked():
    transform = _transform(8)
    a, factor, offset = _affine_inputs(transform, (2,), 3, np.complex64, seed=12)
    with pytest.raises(ValueError, match=r"argument 'factor' has shape \(3,\); expected \(2, 3\)"):
        affine_synthesis(transform, a, factor[0], offset)
    with pytest.raises(ValueError, match=r"argument 'a' has shape \(3, 2, 7, 2, 3\); expected degree_major"):
        affine_synthesis(transform, a[:3, :, :7], factor, offset)


def _classifier(fused_blocks: bool, **options):
    """Three blocks, one pooling, spins {0} -> {0, 1}, so that both the pooled and
    the plain fused boundaries and the leaky spin are covered."""
    return sphcnn.SpinSphericalClassifier(5, (16, 16, 8, 8), ((0,), (0, 1), (0, 1), (0, 1)), (1, 4, 6, 6),
                                          (None, 3, 2, 2), fused=fused_blocks, rngs=nnx.Rngs(0), **options)


def _value_and_grads(model, x, weights):
    @nnx.jit
    def run(m):
        return nnx.value_and_grad(lambda m: jnp.sum(m(x, weights) ** 2))(m)

    value, grads = run(model)
    return value, nnx.state(grads, nnx.Param), nnx.state(model, nnx.BatchStat)


def test_fused_classifier_equals_the_unfused_one():
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.uniform(0, 1, (4, 16, 16, 1, 1)).astype(np.float32))
    weights = jnp.asarray([1.0, 1.0, 0.5, 0.0], jnp.float32)
    plain, merged = _classifier(False), _classifier(True)
    # the nonlinearity biases are zero at initialization: make them matter
    for model in (plain, merged):
        for i, block in enumerate(model.blocks):
            bias = block.nonlinearity.bias
            if bias is not None:
                bias[...] = jnp.full(bias.shape, -0.3 + 0.1 * i, jnp.float32)
    results = [_value_and_grads(model, x, weights) for model in (plain, merged)]
    (value0, grads0, stats0), (value1, grads1, stats1) = results
    assert abs(float(value1 - value0)) <= 2e-6 * abs(float(value0))
    for want, got in ((grads0, grads1), (stats0, stats1)):
        errors = jax.tree.map(relative_error, got, want)
        assert max(jax.tree.leaves(errors)) < 2e-5
    plain.eval()
    merged.eval()
    assert relative_error(merged(x), plain(x)) < 2e-6


@pytest.mark.parametrize("options", [dict(spectral_pooling=True), dict(batch_norm="spatial"), dict(spins0=True)],
                         ids=["spectral-pooling", "spatial-batch-norm", "spin-0-only"])
def test_other_block_configurations_fuse_to_the_same_function(options):
    """Spectral pooling (no spatial pooling to fuse), the batch norm on the grid
    (no affine synthesis), spin 0 only (leaky ReLUs without biases)."""
    spins = ((0,),) * 4 if options.pop("spins0", False) else ((0,), (0, 1), (0, 1), (0, 1))
    rng = np.random.default_rng(15)
    x = jnp.asarray(rng.uniform(0, 1, (3, 16, 16, 1, 1)).astype(np.float32))
    models = [sphcnn.SpinSphericalClassifier(5, (16, 16, 8, 8), spins, (1, 4, 6, 6), (None, 3, 2, 2), fused=f,
                                             rngs=nnx.Rngs(1), **options) for f in (False, True)]
    (value0, grads0, stats0), (value1, grads1, stats1) = [_value_and_grads(m, x, None) for m in models]
    assert abs(float(value1 - value0)) <= 2e-6 * abs(float(value0))
    for want, got in ((grads0, grads1), (stats0, stats1)):
        assert max(jax.tree.leaves(jax.tree.map(relative_error, got, want))) < 2e-5


def test_block_arguments_are_checked():
    model = _classifier(True)
    block, previous = model.blocks[1], model.blocks[0]
    x = jnp.zeros((2, 16, 16, 2, 4), jnp.complex64)
    incoming = previous.nonlinearity.as_activation()
    with pytest.raises(ValueError, match=r"SpinSphericalBlock: input has shape \(2, 8, 8, 2, 4\)"):
        block.pre_activation(x[:, :8, :8], None, incoming)
    wrong = ops.Activation(incoming.bias[:, :3], incoming.leaky_spin)
    with pytest.raises(ValueError, match=r"argument 'activation' has a bias of shape \(2, 3\); expected \(2, 4\)"):
        block.pre_activation(x, None, wrong)


def test_fused_option_is_checked():
    with pytest.raises(ValueError, match=r"argument 'fused' must be None, True or False, got 1"):
        _classifier(1)
    with pytest.raises(ValueError, match=r"fused=True fuses the nonlinearities of 'spin' blocks"):
        sphcnn.SpinSphericalClassifier(5, (16, 8), ((0,), (0, 1)), (1, 4), (None, 2), block="residual",
                                       fused=True, rngs=nnx.Rngs(0))


def test_fused_boundaries_in_the_mnist_model():
    """spin_classifier_6_layers: blocks 2 to 6 read the previous block's
    pre-activation through the fused kernel (two of them pool)."""
    model = sphcnn.spin_classifier_6_layers(rngs=nnx.Rngs(0), backend="ffi")
    assert model.fused
    graph, state = nnx.split(model)

    def forward(state, x):
        return nnx.merge(graph, state)(x)

    x = jax.ShapeDtypeStruct((2, 64, 64, 1, 1), jnp.float32)
    text = jax.jit(forward).lower(state, x).as_text()
    assert len(re.findall(r"custom_call @sphcnn_activated_analysis\b", text)) == 5
    assert len(re.findall(r"custom_call @sphcnn_analysis\b", text)) == 1
    assert len(re.findall(r"custom_call @sphcnn_affine_synthesis\b", text)) == 6
    assert "sphcnn_synthesis" not in text


@pytest.mark.gpu
@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("dtype,tolerance", [("complex64", 2e-5), ("complex128", 1e-11)])
def test_cuda_kernels_match_the_composition(pool, dtype, tolerance):
    """On a GPU: sphcnn_activated_analysis and sphcnn_activated_gradient (CUDA)
    against the composition on the xla backend in complex128."""
    gpu = next(d for d in jax.devices() if d.platform == "gpu")
    n = 32
    y, bias = _inputs((3, 2 * n if pool else n, 2 * n if pool else n, 2, 5), dtype, seed=7)
    # values 1% or more away from the kinks, where float32 may take either side of
    # a jump in the derivative: |z| + b = 0 (spin 1), Re z = 0 (spin 0, leaky)
    r = jnp.abs(y)
    near = jnp.abs(r + bias) < 0.01 * (r + jnp.abs(bias))
    y = jnp.where(near, 3 * y, y)
    y = y.at[..., 0, :].add(jnp.where(jnp.abs(y[..., 0, :].real) < 0.01 * jnp.abs(y[..., 0, :]),
                                      jnp.sign(y[..., 0, :].real) + 0.5, 0).astype(y.dtype))
    y, bias = jax.device_put(y, gpu), jax.device_put(bias, gpu)
    kernel = _transform(n, dtype, backend="ffi")
    exact = _transform(n, "complex128", backend="xla")
    rng = np.random.default_rng(8)
    shape = kernel.spectral_shape((3,), 5)
    weights = jax.device_put(jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape)), gpu)

    def loss(transform, f):
        return lambda y, b: jnp.sum(jnp.abs(weights * f(transform, y, b, 0, pool)) ** 2)

    text = jax.jit(jax.grad(loss(kernel, activated), argnums=(0, 1))).lower(y, bias).as_text()
    assert "sphcnn_activated_analysis" in text and "sphcnn_activated_gradient" in text
    out = jax.jit(lambda y, b: activated(kernel, y, b, 0, pool))(y, bias)
    want = _reference(exact, y.astype(np.complex128), bias.astype(np.float64), 0, pool)
    assert relative_error(out, want) < tolerance
    grads = jax.jit(jax.grad(loss(kernel, activated), argnums=(0, 1)))(y, bias)
    wanted = jax.grad(loss(exact, _reference), argnums=(0, 1))(y.astype(np.complex128), bias.astype(np.float64))
    for got, want in zip(grads, wanted):
        assert relative_error(got, want) < 10 * tolerance


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tolerance", [("complex64", 2e-5), ("complex128", 1e-11)])
def test_cuda_affine_synthesis_matches_the_composition(dtype, tolerance):
    """On a GPU: sphcnn_affine_synthesis (CUDA) against the composition on the
    xla backend in complex128, values and gradients."""
    gpu = next(d for d in jax.devices() if d.platform == "gpu")
    kernel = _transform(32, dtype, backend="ffi")
    exact = _transform(32, "complex128", backend="xla")
    a, factor, offset = (jax.device_put(v, gpu) for v in _affine_inputs(kernel, (3,), 5, dtype, seed=13))
    assert "sphcnn_affine_synthesis" in jax.jit(lambda *args: affine_synthesis(kernel, *args)).lower(
        a, factor, offset).as_text()
    wide = [v.astype(np.complex128) for v in (a, factor, offset)]
    got = jax.jit(lambda *args: affine_synthesis(kernel, *args))(a, factor, offset)
    assert relative_error(got, _affine_reference(exact, *wide)) < tolerance

    def loss(transform, f):
        return lambda *args: jnp.sum(jnp.abs(f(transform, *args)) ** 2)

    grads = jax.jit(jax.grad(loss(kernel, affine_synthesis), argnums=(0, 1, 2)))(a, factor, offset)
    wanted = jax.grad(loss(exact, _affine_reference), argnums=(0, 1, 2))(*wide)
    for got, want in zip(grads, wanted):
        assert relative_error(got, want) < 10 * tolerance


def test_training_config_selects_the_path():
    """sphcnn train --set fused_blocks=false builds the layer-by-layer model (a
    resumable field: the parameters are the same)."""
    from sphcnn.models.registry import build_model
    from sphcnn.train.config import RESUMABLE_FIELDS, TrainConfig

    assert build_model("tiny_spin_classifier", 16, 10, seed=0).fused
    assert not build_model("tiny_spin_classifier", 16, 10, seed=0, fused_blocks=False).fused
    assert TrainConfig().fused_blocks and "fused_blocks" in RESUMABLE_FIELDS
    with pytest.raises(ValueError, match=r"'fused_blocks' must be true or false, got 'no'"):
        TrainConfig(fused_blocks="no").validate()
