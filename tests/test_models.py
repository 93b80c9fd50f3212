"""Models: presets and their parameter counts, train/eval modes, pure pytrees,
a jitted train step that learns, blocks and configuration errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sphcnn
import sphcnn_kernels as sk
from sphcnn.train import optimizers
from sphcnn.tasks.mnist.task import TASK
from sphcnn.train import step as training
from sphcnn.nn.equivariance import band_limited_input


@pytest.mark.parametrize("make,count", [
    (sphcnn.spin_classifier_6_layers, 39_146),
    (sphcnn.spherical_classifier_6_layers, 57_238),
    (sphcnn.cnn_classifier_6_layers, 59_230),
])
def test_preset_parameter_counts_match_the_original(make, count):
    model = make(rngs=nnx.Rngs(0))
    assert sphcnn.parameter_count(model) == count
    logits = model(jnp.ones((2, 64, 64, 1, 1), jnp.float32))
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32


def tiny(**options):
    return sphcnn.SpinSphericalClassifier(2, (16, 16, 8), ((0,), (0, 1), (0, 1)), (1, 4, 6), (None, 3, 2),
                                          rngs=nnx.Rngs(0), **options)


def test_train_and_eval_modes():
    model = tiny()
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 16, 16, 1, 1)), jnp.float32)
    before = jax.tree.map(np.asarray, sphcnn.model_state(model)["batch_stats"])
    train_out = model(x)
    after = jax.tree.map(np.asarray, sphcnn.model_state(model)["batch_stats"])
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))
    model.eval()
    first, second = model(x), model(x)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    np.testing.assert_array_equal(np.asarray(x[:1].shape), [1, 16, 16, 1, 1])
    # in eval mode an example's logits do not depend on the rest of the batch
    np.testing.assert_allclose(np.asarray(model(x[:1])), np.asarray(first[:1]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(train_out), np.asarray(first))


def test_pure_pytree_round_trip():
    source, target = tiny(), sphcnn.SpinSphericalClassifier(
        2, (16, 16, 8), ((0,), (0, 1), (0, 1)), (1, 4, 6), (None, 3, 2), rngs=nnx.Rngs(99))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 16, 16, 1, 1)), jnp.float32)
    source(x)  # move the running statistics away from their initial values
    tree = jax.tree.map(np.asarray, sphcnn.model_state(source))
    assert set(tree) == {"params", "batch_stats"}
    sphcnn.load_model_state(target, tree)
    source.eval(), target.eval()
    np.testing.assert_array_equal(np.asarray(source(x)), np.asarray(target(x)))
    bad = jax.tree.map(lambda v: v, tree)
    bad["params"]["readout"]["kernel"] = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match=r"\['params'\]\['readout'\]\['kernel'\] has shape \(3, 2\)"):
        sphcnn.load_model_state(target, bad)


def test_jitted_train_step_learns():
    # Two rotation-invariant classes: dim and bright band-limited random maps.
    rng = np.random.default_rng(2)
    a = band_limited_input(rng, 16, (0,), 1, batch=32)
    maps = np.real(np.asarray(sk.inverse(a, (0,))))
    labels = np.arange(32) % 2
    images = jnp.asarray(maps + 3.0 * labels[:, None, None, None, None], jnp.float32)
    model = tiny()
    optimizer = optimizers.adam(1e-2)
    graphs, state = training.split(model, optimizer)
    step = jax.jit(functools.partial(training.train_step, graphs, optimizer, TASK, 0))
    batch = {"images": images, "labels": jnp.asarray(labels, jnp.int32), "weights": jnp.ones(32, jnp.float32)}
    losses = []
    for _ in range(25):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.5 * losses[0], losses
    assert float(metrics["accuracy"]) == 1.0
    # eval mode: running statistics (momentum 0.99) have moved only 25 steps
    accuracy = np.mean(np.argmax(np.asarray(training.predict(graphs, TASK, state, batch)), -1) == labels)
    assert accuracy > 0.9
    assert int(state.step) == 25


def test_complex_gradients_are_conjugated_for_descent():
    # one step of plain gradient descent on |w - t|^2 must move w towards t
    target = jnp.asarray(1.0 + 2.0j, jnp.complex64)
    w = jnp.asarray(0.0j, jnp.complex64)
    grad = jax.grad(lambda v: jnp.abs(v - target) ** 2)(w)
    opt = optimizers.conjugate_complex_gradients()
    updates, _ = opt.update(grad, opt.init(w))
    assert abs((w - 0.1 * updates) - target) < abs(w - target)


def test_spectral_and_spatial_batch_norm_blocks_agree():
    x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 16, 16, 1, 3)), jnp.complex64)
    blocks = [sphcnn.SpinSphericalBlock(3, 4, (0,), (0, 1), resolution_in=16, resolution_out=8,
                                        num_filter_params=3, batch_norm=kind, rngs=nnx.Rngs(5))
              for kind in ("spectral", "spatial")]
    np.testing.assert_allclose(np.asarray(blocks[0](x)), np.asarray(blocks[1](x)), atol=2e-5)


def test_residual_block_and_model():
    block = sphcnn.SpinSphericalResidualBlock(2, 4, (0,), (0, 1), resolution_in=16, resolution_out=8,
                                              num_filter_params=3, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 16, 16, 1, 2)), jnp.complex64)
    assert block(x).shape == (2, 8, 8, 2, 4)
    same = sphcnn.SpinSphericalResidualBlock(4, 4, (0, 1), (0, 1), resolution_in=8, resolution_out=8,
                                             rngs=nnx.Rngs(1))
    assert same.projection is None
    # the second batch norm starts at zero scale: the block starts as its
    # shortcut, the band-limited input, through the final nonlinearity
    h = block(x)
    shortcut = sk.inverse(sk.forward(h, (0, 1)), (0, 1))
    np.testing.assert_allclose(np.asarray(same(h)), np.asarray(same.nonlinearity(shortcut)), atol=1e-5)
    model = tiny(block="residual")
    assert model(jnp.ones((2, 16, 16, 1, 1))).shape == (2, 2)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(resolutions=(16, 12, 8)), r"resolutions\[1\] = 12 must equal resolutions\[0\] = 16 or half of it"),
    (dict(resolutions=(16, 16)), r"one entry per layer"),
    (dict(spins=((0,), (0, 0), (0, 1))), r"'spins\[1\]'.*repeat"),
    (dict(widths=(1, 0, 6)), r"'widths\[1\]'.*>= 1"),
    (dict(num_filter_params=(None, 3, 9)), r"'num_filter_params'.*<= ell_max \+ 1 = 4, got 9"),
    (dict(block="dense"), r"'block'.*'dense'"),
])
def test_bad_model_configurations(kwargs, pattern):
    config = dict(num_classes=2, resolutions=(16, 16, 8), spins=((0,), (0, 1), (0, 1)), widths=(1, 4, 6),
                  num_filter_params=(None, 3, 2), rngs=nnx.Rngs(0))
    config.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        sphcnn.SpinSphericalClassifier(**config)


def test_model_input_errors():
    model = tiny()
    with pytest.raises(ValueError, match=r"input has shape \(2, 16, 16, 2, 1\); expected .*spins \(0,\)"):
        model(jnp.ones((2, 16, 16, 2, 1)))
    with pytest.raises(ValueError, match=r"resolution_out must equal resolution_in = 16 or half of it, got 4"):
        sphcnn.SpinSphericalBlock(1, 2, (0,), (0,), resolution_in=16, resolution_out=4, rngs=nnx.Rngs(0))
