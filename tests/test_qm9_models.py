"""The QM9 regressors and their parts: parameter counts of the presets against
the original's, the layer variants they use against float64 NumPy references
(uncentered batch norm, the dense shortcut, invariant magnitudes, the DeepSets
readout, the 'scaling' initialization), output shapes, padding, and the
invariance of the prediction to rotating the molecule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sphcnn
import sphcnn_kernels as sk
from references import random_coefficients, random_maps
from sphcnn.models.tails import ATOMIC_MASSES, DISTANCE_NORMALIZATION, DeepSetsTail, TransformerTail
from sphcnn.models.regressors import REGRESSOR_PRESETS, MoleculeInputs, SpinSphericalRegressor
from sphcnn.nn.blocks import SpectralChannelDense, SpinSphericalResidualBlock
from sphcnn.nn.readouts import invariant_magnitudes
from sphcnn.tasks.qm9.features import molecule_to_spheres
from sphcnn.tasks.qm9.invariance import measure, random_molecules


# qm9_small and qm9_default: the counts the original logs (sum(p.size), complex entries
# once). The per-target variants, counted from the original's layer definitions: qm9_mu
# is qm9_default without the aggregation's 2 x 5 x 256 type weights and biases; the
# transformer tail replaces the per-atom Dense 256 -> 256 (65,792) by 4 blocks of
# 2 layer norms (2 x 512), query/key/value/output maps (4 x 65,792) and the MLP
# (2 x 65,792) = 395,776 each, plus a final layer norm (512): +1,517,824 (qm9_alpha),
# and qm9_r2 has no aggregation parameters either (-2,560).
@pytest.mark.parametrize("name,count", [("qm9_small", 3_212_097), ("qm9_default", 6_979_649),
                                        ("qm9_mu", 6_977_089), ("qm9_alpha", 8_497_473), ("qm9_r2", 8_494_913)])
def test_preset_parameter_counts_match_the_original(name, count):
    model = REGRESSOR_PRESETS[name].build(rngs=nnx.Rngs(0))
    assert sphcnn.parameter_count(model) == count


def test_uncentered_batch_norm_matches_numpy():
    rng = np.random.default_rng(0)
    x = random_maps(rng, (3,), 16, (0, 1), 2, np.complex64) + 0.6
    bn = sphcnn.SpinSphericalBatchNorm((0, 1), 2, variance="uncentered")
    y = np.asarray(bn(jnp.asarray(x))).astype(complex)
    x = x.astype(complex)
    w = sk.quadrature_weights(16) / (4 * np.pi * 16)
    mean = np.einsum("j,bjksc->sc", w, x) / 3
    second = np.einsum("j,bjksc->sc", w, np.abs(x) ** 2) / 3
    np.testing.assert_allclose(y[..., 0, :], (x[..., 0, :] - mean[0]) / np.sqrt(second[0] + 1e-5), rtol=2e-4,
                               atol=2e-5)
    np.testing.assert_allclose(y[..., 1, :], x[..., 1, :] / np.sqrt(second[1] + 1e-5), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(np.asarray(bn.var[...]), 0.99 + 0.01 * second, rtol=1e-5)
    with pytest.raises(ValueError, match="argument 'variance' must be one of 'centered', 'uncentered'"):
        sphcnn.SpinSphericalBatchNorm((0, 1), 2, variance="none")


def test_scaling_initialization_variance():
    # variance_scaling(1 / S_in, fan_in) of the Scaling Spherical CNNs code: E|k|^2 = 1 / (S_in S_in S_out C_in C_out)
    conv = sphcnn.SpinSphericalConvolution(16, 32, (0, 1), (0, 1), resolution=32, num_filter_params=8,
                                           kernel_init="scaling", rngs=nnx.Rngs(1))
    kernel = np.asarray(conv.kernel[...])
    expected = 1.0 / (2 * 2 * 2 * 16 * 32)
    assert abs(np.mean(np.abs(kernel) ** 2) / expected - 1) < 4 / np.sqrt(kernel.size)


def test_spectral_channel_dense_matches_numpy_and_commutes_with_rotations():
    rng = np.random.default_rng(2)
    spins = (0, 1)
    dense = SpectralChannelDense(3, 4, spins, rngs=nnx.Rngs(0))
    dense.bias[...] = jnp.asarray(rng.standard_normal(4), jnp.float32)
    a = random_coefficients(rng, (2,), 7, spins, 3, np.complex64)               # (B, L, M, S, C)
    got = np.moveaxis(np.asarray(dense(jnp.moveaxis(jnp.asarray(a), 1, 0))), 0, 1).astype(complex)
    want = a.astype(complex) @ np.asarray(dense.kernel[...], float)
    want[:, 0, 7, 0, :] += np.sqrt(4 * np.pi) * np.asarray(dense.bias[...], float)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # a real channel map plus a constant commutes with rotations
    angles = (0.4, 1.1, -0.7)
    apply = lambda c: np.moveaxis(np.asarray(dense(jnp.moveaxis(jnp.asarray(c), 1, 0))), 0, 1)
    rotated_first = apply(np.asarray(sk.rotate(jnp.asarray(a), *angles, spins)))
    rotated_after = np.asarray(sk.rotate(jnp.asarray(apply(a)), *angles, spins))
    np.testing.assert_allclose(rotated_first, rotated_after, atol=2e-5 * np.abs(rotated_after).max())


def test_dense_shortcut_needs_equal_spins():
    with pytest.raises(ValueError, match="shortcut 'dense' maps channels within each spin"):
        SpinSphericalResidualBlock(4, 4, (0,), (0, 1), resolution_in=8, resolution_out=8, shortcut="dense",
                                   rngs=nnx.Rngs(0))


def test_invariant_magnitudes_match_numpy():
    rng = np.random.default_rng(3)
    x = random_maps(rng, (2,), 16, (0, 1), 3, np.complex64) + (0.3 + 0.2j)
    got = np.asarray(invariant_magnitudes(jnp.asarray(x), (0, 1)))
    w = sk.quadrature_weights(16) / (4 * np.pi * 16)
    x = x.astype(complex)
    spin0 = np.abs(np.einsum("j,bjkc->bc", w, x[..., 0, :]))
    spin1 = np.einsum("j,bjkc->bc", w, np.abs(x[..., 1, :]))
    np.testing.assert_allclose(got, np.concatenate([spin0, spin1], axis=1), rtol=1e-5)


def _np(variable):
    return np.asarray(variable[...], float)


def _dense(layer, x):
    return x @ _np(layer.kernel) + _np(layer.bias)


def _layer_norm(norm, x):
    centred = x - x.mean(-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(-1, keepdims=True) + 1e-6) * _np(norm.scale) + _np(norm.bias)


def _attention(module, x, real):
    """float64 multi-head self-attention with masked keys (and masked queries
    attending uniformly, as a masked softmax with a large negative fill does)."""
    q, k, v = (np.einsum("bae,ehd->bahd", x, _np(m.kernel)) + _np(m.bias)
               for m in (module.query, module.key, module.value))
    logits = np.einsum("bqhd,bkhd->bhqk", q / np.sqrt(q.shape[-1]), k)
    allowed = real[:, None, :, None] & real[:, None, None, :]
    logits = np.where(allowed, logits, -1e30)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bhqk,bkhd->bqhd", weights, v)
    return np.einsum("bqhd,hde->bqe", heads, _np(module.out.kernel)) + _np(module.out.bias)


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _tail_reference(tail, features, charges, positions):
    """float64 NumPy readout with the module's parameters (sphcnn.models.tails docstring)."""
    relu = lambda v: np.maximum(v, 0)
    types = np.asarray(tail.atom_types)
    one_hot = (charges[..., None] == types).astype(float)
    real = one_hot.sum(-1) > 0
    masses = one_hot @ np.asarray([ATOMIC_MASSES[t] for t in types])
    scaled = positions / DISTANCE_NORMALIZATION
    center = (scaled * masses[..., None]).sum(1) / masses.sum(1)[:, None]
    displacement = (scaled - center[:, None]) * real[..., None]
    h = relu(_dense(tail.embedding.dense, features)) + one_hot @ _np(tail.embedding.type_embedding)
    if tail.embedding.distance_dense is not None:
        h = h + _dense(tail.embedding.distance_dense, np.linalg.norm(displacement, axis=-1)[..., None])
    if isinstance(tail, DeepSetsTail):
        h = relu(_dense(tail.dense, h))
    else:
        for block in tail.blocks:
            h = h + _attention(block.attention, _layer_norm(block.norm1, h), real)
            h = h + _dense(block.mlp2, _gelu(_dense(block.mlp1, _layer_norm(block.norm2, h))))
        h = _layer_norm(tail.norm, h)
    h = h * real[..., None]
    mode = tail.aggregation.mode
    if mode == "atom_type":
        pooled = (h * (one_hot @ _np(tail.aggregation.weight)) + one_hot @ _np(tail.aggregation.bias)).sum(1) / 29
    elif mode == "distance_squared":
        pooled = (h * (displacement**2).sum(-1, keepdims=True)).sum(1) / 29
    else:
        pooled = np.linalg.norm(np.einsum("bac,bak->bck", h, displacement) / 29, axis=-1)
    counts = one_hot.sum(1)
    total = counts.sum(1, keepdims=True)
    out = np.concatenate([pooled, counts, total, 29 - total], axis=1) / 29
    for i, layer in enumerate(tail.head.layers):
        out = _dense(layer, out)
        out = relu(out) if i < 2 else out
    return out[:, 0]


@pytest.mark.parametrize("make,center_distance,aggregation", [
    (DeepSetsTail, False, "atom_type"), (DeepSetsTail, True, "atom_type"), (DeepSetsTail, True, "displacement"),
    (TransformerTail, True, "atom_type"), (TransformerTail, False, "distance_squared"),
])
def test_tails_match_numpy_and_ignore_padding(make, center_distance, aggregation):
    rng = np.random.default_rng(4)
    options = dict(layers=2, heads=2) if make is TransformerTail else {}
    tail = make(6, width=8, center_distance=center_distance, aggregation=aggregation, rngs=nnx.Rngs(5), **options)
    tail.embedding.type_embedding[...] = jnp.asarray(rng.standard_normal((5, 8)), jnp.float32)
    if aggregation == "atom_type":
        tail.aggregation.bias[...] = jnp.asarray(rng.standard_normal((5, 8)), jnp.float32)
    charges = np.array([[6, 1, 1, 8, 0, 0], [7, 1, 9, 6, 6, 1]])
    positions = rng.standard_normal((2, 6, 3))
    features = rng.standard_normal((2, 6, 6))
    call = lambda f, p: np.asarray(tail(jnp.asarray(f, jnp.float32), jnp.asarray(charges), jnp.asarray(p, jnp.float32)))
    got = call(features, positions)
    np.testing.assert_allclose(got, _tail_reference(tail, features, charges, positions), rtol=2e-4, atol=2e-5)
    # padding slots: whatever their features and positions, nothing changes
    features[0, 4:] = 100.0
    positions[0, 4:] = -50.0
    np.testing.assert_allclose(call(features, positions), got, rtol=1e-5, atol=1e-6)
    # the order of the atoms does not matter
    order = np.array([3, 0, 5, 1, 4, 2])
    np.testing.assert_allclose(np.asarray(tail(jnp.asarray(features[:, order], jnp.float32),
                                               jnp.asarray(charges[:, order]), jnp.asarray(positions[:, order],
                                                                                          jnp.float32))),
                               got, rtol=1e-5, atol=1e-6)


def test_tail_errors():
    with pytest.raises(ValueError, match="argument 'aggregation' must be one of 'atom_type', 'displacement'"):
        DeepSetsTail(4, aggregation="mean", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="'width' \\(10\\) must be divisible by 'heads' \\(4\\)"):
        TransformerTail(4, width=10, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="needs atomic masses"):
        DeepSetsTail(4, atom_types=(1, 17), center_distance=True, rngs=nnx.Rngs(0))


def test_regressor_shapes_and_padding():
    model = REGRESSOR_PRESETS["qm9_tiny"].build(rngs=nnx.Rngs(0))
    rng = np.random.default_rng(6)
    charges, positions = random_molecules(rng, 3, 7)
    spheres, _ = molecule_to_spheres(jnp.asarray(positions, jnp.float32), jnp.asarray(charges), n=16, max_atoms=7)
    model.eval()
    y = model(MoleculeInputs(spheres, jnp.asarray(charges), jnp.asarray(positions, jnp.float32)))
    assert y.shape == (3,) and y.dtype == jnp.float32
    # eight more padding slots (as evaluation batches have) change nothing
    pad = lambda v: np.concatenate([v, np.zeros(v.shape[:1] + (8,) + v.shape[2:], v.dtype)], axis=1)
    spheres2, _ = molecule_to_spheres(jnp.asarray(pad(positions), jnp.float32), jnp.asarray(pad(charges)), n=16,
                                      max_atoms=15)
    y2 = model(MoleculeInputs(spheres2, jnp.asarray(pad(charges)), jnp.asarray(pad(positions), jnp.float32)))
    np.testing.assert_allclose(np.asarray(y2), np.asarray(y), rtol=1e-5, atol=1e-6)
    # in training mode too: padding slots have weight 0 in the batch statistics
    model.train()
    np.testing.assert_allclose(
        np.asarray(model(MoleculeInputs(spheres2, jnp.asarray(pad(charges)), jnp.asarray(pad(positions), jnp.float32)))),
        np.asarray(model(MoleculeInputs(spheres, jnp.asarray(charges), jnp.asarray(positions, jnp.float32)))),
        rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="expected \\(batch, atoms, n, n, spins, channels\\)"):
        model(MoleculeInputs(spheres[0], jnp.asarray(charges), jnp.asarray(positions, jnp.float32)))


@pytest.mark.parametrize("tail,aggregation", [("deepsets", "atom_type"), ("deepsets", "displacement"),
                                              ("transformer", "distance_squared")])
def test_residual_regressor_is_finite_and_differentiable(tail, aggregation):
    model = SpinSphericalRegressor((16, 8, 8), ((0,), (0, 1), (0, 1)), (10, 8, 8), (None, 2, 2), residual=True,
                                   tail=tail, center_distance=True, aggregation=aggregation, tail_width=16,
                                   transformer_layers=1, transformer_heads=2, rngs=nnx.Rngs(1))
    rng = np.random.default_rng(7)
    charges, positions = random_molecules(rng, 2, 5)
    spheres, _ = molecule_to_spheres(jnp.asarray(positions, jnp.float32), jnp.asarray(charges), n=16, max_atoms=5)
    inputs = MoleculeInputs(spheres, jnp.asarray(charges), jnp.asarray(positions, jnp.float32))
    graph, params, rest = nnx.split(model, nnx.Param, ...)
    grads = jax.grad(lambda p: jnp.sum(nnx.merge(graph, p, rest, copy=True)(inputs)))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


# `python -m benchmarks.equivariance --qm9` (sphcnn.tasks.qm9.invariance.measure:
# qm9_tiny, 8 random molecules of 3..9 atoms, 3 rotations, initializations 0..2)
# measured the mean movement under rotations ROTATION and, for scale, under 0.1 A
# displacements of every atom DISPLACEMENT, as fractions of the spread between molecules.
ROTATION, DISPLACEMENT = 0.0037, 0.0214


def test_prediction_is_invariant_to_rotating_the_molecule():
    rotation, displacement = measure()
    assert np.mean(rotation) < 1.5 * ROTATION, rotation
    assert np.mean(displacement) > DISPLACEMENT / 1.5, displacement  # the model does see the geometry
