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
from sphcnn.models.deepsets import ATOMIC_MASSES, DISTANCE_NORMALIZATION, DeepSetsTail
from sphcnn.models.regressors import REGRESSOR_PRESETS, MoleculeInputs, SpinSphericalRegressor
from sphcnn.nn.blocks import SpectralChannelDense, SpinSphericalResidualBlock
from sphcnn.nn.readouts import invariant_magnitudes
from sphcnn.tasks.qm9.features import molecule_to_spheres
from sphcnn.tasks.qm9.invariance import measure, random_molecules


@pytest.mark.parametrize("name,count", [("qm9_small", 3_212_097), ("qm9_default", 6_979_649)])
def test_preset_parameter_counts_match_the_original(name, count):
    # google-research/spherical-cnn logs sum(p.size) with complex entries counted once.
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


def _tail_reference(tail: DeepSetsTail, features, charges, positions):
    """float64 NumPy DeepSets readout with the module's parameters."""
    p = lambda layer: (np.asarray(layer.kernel[...], float), np.asarray(layer.bias[...], float))
    relu = lambda v: np.maximum(v, 0)
    types = np.asarray(tail.atom_types)
    one_hot = (charges[..., None] == types).astype(float)
    kernel, bias = p(tail.atom_dense)
    h = relu(features @ kernel + bias) + one_hot @ np.asarray(tail.type_embedding[...], float)
    if tail.distance_dense is not None:
        masses = one_hot @ np.asarray([ATOMIC_MASSES[t] for t in types])
        scaled = positions / DISTANCE_NORMALIZATION
        center = (scaled * masses[..., None]).sum(1) / masses.sum(1)[:, None]
        kernel, bias = p(tail.distance_dense)
        h = h + np.linalg.norm(scaled - center[:, None], axis=-1)[..., None] @ kernel + bias
    kernel, bias = p(tail.atom_dense2)
    h = relu(h @ kernel + bias)
    pooled = (h * (one_hot @ np.asarray(tail.aggregation_weight[...], float))
              + one_hot @ np.asarray(tail.aggregation_bias[...], float)).sum(1)
    counts = one_hot.sum(1)
    total = counts.sum(1, keepdims=True)
    out = np.concatenate([pooled, counts, total, 29 - total], axis=1) / 29
    for i, layer in enumerate(tail.head):
        kernel, bias = p(layer)
        out = out @ kernel + bias
        out = relu(out) if i < 2 else out
    return out[:, 0]


@pytest.mark.parametrize("center_distance", [False, True])
def test_deepsets_tail_matches_numpy_and_ignores_padding(center_distance):
    rng = np.random.default_rng(4)
    tail = DeepSetsTail(6, width=8, center_distance=center_distance, rngs=nnx.Rngs(5))
    tail.type_embedding[...] = jnp.asarray(rng.standard_normal((5, 8)), jnp.float32)
    tail.aggregation_bias[...] = jnp.asarray(rng.standard_normal((5, 8)), jnp.float32)
    charges = np.array([[6, 1, 1, 8, 0, 0], [7, 1, 9, 6, 6, 1]])
    positions = rng.standard_normal((2, 6, 3))
    features = rng.standard_normal((2, 6, 6))
    got = np.asarray(tail(jnp.asarray(features, jnp.float32), jnp.asarray(charges), jnp.asarray(positions, jnp.float32)))
    np.testing.assert_allclose(got, _tail_reference(tail, features, charges, positions), rtol=1e-4, atol=1e-5)
    # padding slots: whatever their features and positions, nothing changes
    features[0, 4:] = 100.0
    positions[0, 4:] = -50.0
    again = np.asarray(tail(jnp.asarray(features, jnp.float32), jnp.asarray(charges), jnp.asarray(positions, jnp.float32)))
    np.testing.assert_allclose(again, got, rtol=1e-6)


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


def test_residual_regressor_is_finite_and_differentiable():
    model = SpinSphericalRegressor((16, 8, 8), ((0,), (0, 1), (0, 1)), (10, 8, 8), (None, 2, 2), residual=True,
                                   center_distance=True, tail_width=16, rngs=nnx.Rngs(1))
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
ROTATION, DISPLACEMENT = 0.0127, 0.047


def test_prediction_is_invariant_to_rotating_the_molecule():
    rotation, displacement = measure()
    assert np.mean(rotation) < 1.5 * ROTATION, rotation
    assert np.mean(displacement) > DISPLACEMENT / 1.5, displacement  # the model does see the geometry
