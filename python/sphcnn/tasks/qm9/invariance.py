"""How far a QM9 model's prediction moves when the molecule rotates.

The per-atom spheres rotate with the molecule exactly (molecule_to_spheres), but
they are sampled on a grid and are not band-limited, and the pointwise
nonlinearities create frequencies above the band limit: the prediction is
rotation-invariant only approximately. Protocol (asserted by
tests/test_qm9_models.py at 1.5 times the levels measured by
``python -m benchmarks.equivariance --qm9``):

property_rotation_error(model, ...) = mean over molecules and random rotations
    of |y(R x) - y(x)|, divided by the mean |y(x_i) - y(x_j)| over pairs of
    different molecules (0 for an invariant model; about 1 for one that ignores
    the geometry's orientation no more than the molecule's identity).
displacement_error(model, ..., step) = the same for every atom moved by `step`
    Angstrom in a random direction instead of rotated: how much a small change
    of geometry moves the prediction, for scale.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from sphcnn.models.regressors import MoleculeInputs
from sphcnn.tasks.qm9.features import molecule_to_spheres, rotate_positions


def random_rotation_matrices(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 3, 3) float64 uniformly random rotations (SO(3), QR of Gaussian
    matrices with the sign fixed; Mezzadri, Notices AMS 54, 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((count, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return q * np.sign(np.linalg.det(q))[:, None, None]


def random_molecules(rng: np.random.Generator, count: int, max_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """(charges int32 (count, max_atoms), positions float64 (count, max_atoms, 3)):
    3..max_atoms atoms of QM9's types per molecule, more than 1 Angstrom apart,
    padding slots after them."""
    charges = np.zeros((count, max_atoms), np.int32)
    positions = np.zeros((count, max_atoms, 3))
    for b in range(count):
        atoms = int(rng.integers(3, max_atoms + 1))
        charges[b, :atoms] = rng.choice([1, 6, 7, 8, 9], atoms)
        placed: list[np.ndarray] = []
        while len(placed) < atoms:
            point = rng.uniform(-2.5, 2.5, 3)
            if all(np.linalg.norm(point - q) > 1.0 for q in placed):
                placed.append(point)
        positions[b, :atoms] = placed
    return charges, positions


def predictions(model: nnx.Module, charges: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """The model's outputs (batch,) for molecules (charges (B, A), positions (B, A, 3))."""
    spheres, _ = molecule_to_spheres(jnp.asarray(positions, jnp.float32), jnp.asarray(charges), n=n,
                                     max_atoms=charges.shape[1])
    return np.asarray(model(MoleculeInputs(spheres, jnp.asarray(charges), jnp.asarray(positions, jnp.float32))))


def property_rotation_error(model: nnx.Module, charges: np.ndarray, positions: np.ndarray, n: int,
                            rng: np.random.Generator, rotations: int = 3) -> float:
    """See the module docstring; the model is called on the whole batch each
    time (in its current mode)."""
    base = predictions(model, charges, positions, n)
    moved = []
    for matrices in (random_rotation_matrices(rng, len(charges)) for _ in range(rotations)):
        rotated = np.asarray(rotate_positions(positions.astype(np.float64), matrices))
        moved.append(np.abs(predictions(model, charges, rotated, n) - base))
    return float(np.mean(moved) / _spread(base))


def displacement_error(model: nnx.Module, charges: np.ndarray, positions: np.ndarray, n: int,
                       rng: np.random.Generator, step: float) -> float:
    """See the module docstring."""
    base = predictions(model, charges, positions, n)
    directions = rng.standard_normal(positions.shape)
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    moved = np.abs(predictions(model, charges, positions + step * directions, n) - base)
    return float(np.mean(moved) / _spread(base))


def _spread(values: np.ndarray) -> float:
    """Mean |v_i - v_j| over pairs i != j."""
    return float(np.mean(np.abs(values[:, None] - values[None, :])[~np.eye(len(values), dtype=bool)]))


def measure(model_name: str = "qm9_tiny", seeds=(0, 1, 2), molecules: int = 8, max_atoms: int = 9,
            step: float = 0.1) -> tuple[list[float], list[float]]:
    """The protocol of the quoted levels: per seed, a fresh model (initialization
    `seed`, training mode: batch statistics) and `molecules` random molecules of
    3..max_atoms atoms; returns (property_rotation_error per seed,
    displacement_error per seed for `step` Angstrom)."""
    from sphcnn.models.regressors import REGRESSOR_PRESETS

    preset = REGRESSOR_PRESETS[model_name]
    rotation, displacement = [], []
    for seed in seeds:
        model = preset.build(rngs=nnx.Rngs(seed))
        rng = np.random.default_rng(seed)
        charges, positions = random_molecules(rng, molecules, max_atoms)
        rotation.append(property_rotation_error(model, charges, positions, preset.resolutions[0], rng))
        displacement.append(displacement_error(model, charges, positions, preset.resolutions[0], rng, step))
    return rotation, displacement
