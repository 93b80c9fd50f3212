"""The DeepSets readout of the Scaling Spherical CNNs QM9 models (Esteves,
Slotine & Makadia, ICML 2023; layout and constants from its code,
google-research/spherical-cnn, molecules/models.py, _DeepSetsTail): per-atom
invariant features -> one real number per molecule, invariant to the order of
the atoms and blind to padding slots.

    h_i = relu(Dense_256(x_i)) + E_type(i) [+ Dense_256(|p_i - c| / 12.0404)]
    h_i = relu(Dense_256(h_i))
    g   = sum_i (W_type(i) * h_i + B_type(i)) / max_atoms
    y   = Dense_1(relu(Dense_256(relu(Dense_256([g, counts / max_atoms])))))

with E (type embedding) initialized to 0, W to 1, B to 0; counts = the number
of atoms of each type, the atom count and max_atoms minus it (7 values for
QM9); p_i the positions in Angstrom and c the centre of mass (atomic masses),
the distance divided by QM9's largest interatomic distance (12.0404 A).
Padding slots (charge 0) match no type: W = B = 0 there, so they add nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sphcnn_kernels import _validation as checks

# Standard atomic weights (u) of H, C, N, O, F (IUPAC 2013 conventional values,
# as the original code's table).
ATOMIC_MASSES = {1: 1.008, 6: 12.011, 7: 14.007, 8: 15.999, 9: 18.998403163}
# QM9's largest interatomic distance, Angstrom (the original's max_pairwise_distance).
DISTANCE_NORMALIZATION = 12.040386407885462


def type_one_hot(charges: jax.Array, atom_types: tuple[int, ...]) -> jax.Array:
    """(..., atoms) atomic numbers -> (..., atoms, T) float32 one-hot; zero rows for padding (0)."""
    return (charges[..., None] == jnp.asarray(atom_types, charges.dtype)).astype(jnp.float32)


def center_distances(positions: jax.Array, charges: jax.Array, atom_types: tuple[int, ...]) -> jax.Array:
    """(..., atoms) distance of each atom to the centre of mass, over
    DISTANCE_NORMALIZATION; padding slots (mass 0) do not move the centre."""
    masses = type_one_hot(charges, atom_types) @ jnp.asarray([ATOMIC_MASSES[t] for t in atom_types],
                                                             jnp.float32)
    positions = positions.astype(jnp.float32) / DISTANCE_NORMALIZATION
    center = jnp.sum(positions * masses[..., None], axis=-2) / jnp.maximum(jnp.sum(masses, -1), 1e-12)[..., None]
    offset = positions - center[..., None, :]
    squared = jnp.sum(offset * offset, axis=-1)
    # sqrt at 0 has an infinite derivative: a single-atom molecule's (or a padding
    # slot's) 0 goes through a safe branch.
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


class DeepSetsTail(nnx.Module):
    """Per-atom features (batch, atoms, F) real -> (batch,) (see the module docstring).

    Args:
      features: F. width: hidden width (256). atom_types: atomic numbers of the
      types (QM9: 1, 6, 7, 8, 9). max_atoms: the normalization of the sums and
      counts (29 for QM9, whatever the trimmed atom axis is).
      center_distance: add the Dense of the distance to the centre of mass.

    Parameters (float32): per-atom Dense F -> width, embedding (T, width),
    [distance Dense 1 -> width], Dense width -> width, aggregation weights and
    biases (T, width), Dense width + T + 2 -> width, Dense width -> width,
    Dense width -> 1; lecun-normal kernels, zero biases.
    """

    def __init__(self, features: int, *, width: int = 256, atom_types=(1, 6, 7, 8, 9), max_atoms: int = 29,
                 center_distance: bool = False, rngs: nnx.Rngs):
        name = type(self).__name__
        features = checks.positive_int(name, "features", features)
        width = checks.positive_int(name, "width", width)
        self.atom_types = tuple(checks.positive_int(name, "atom_types", t) for t in atom_types)
        self.max_atoms = checks.positive_int(name, "max_atoms", max_atoms)
        types = len(self.atom_types)
        unknown = [t for t in self.atom_types if t not in ATOMIC_MASSES]
        if center_distance and unknown:
            raise ValueError(f"{name}: center_distance needs atomic masses, known for {sorted(ATOMIC_MASSES)}; "
                             f"argument 'atom_types' has {unknown}")
        self.atom_dense = nnx.Linear(features, width, rngs=rngs)
        self.type_embedding = nnx.Param(jnp.zeros((types, width), jnp.float32))
        self.distance_dense = nnx.Linear(1, width, rngs=rngs) if center_distance else None
        self.atom_dense2 = nnx.Linear(width, width, rngs=rngs)
        self.aggregation_weight = nnx.Param(jnp.ones((types, width), jnp.float32))
        self.aggregation_bias = nnx.Param(jnp.zeros((types, width), jnp.float32))
        self.head = nnx.List([nnx.Linear(width + types + 2, width, rngs=rngs), nnx.Linear(width, width, rngs=rngs),
                              nnx.Linear(width, 1, rngs=rngs)])

    def __call__(self, features: jax.Array, charges: jax.Array, positions: jax.Array) -> jax.Array:
        """features (batch, atoms, F), charges (batch, atoms) integer (0: padding),
        positions (batch, atoms, 3) Angstrom -> (batch,) float32."""
        one_hot = type_one_hot(charges, self.atom_types)                       # (B, A, T)
        h = jax.nn.relu(self.atom_dense(features.astype(jnp.float32))) + one_hot @ self.type_embedding[...]
        if self.distance_dense is not None:
            h = h + self.distance_dense(center_distances(positions, charges, self.atom_types)[..., None])
        h = jax.nn.relu(self.atom_dense2(h))
        pooled = jnp.sum(h * (one_hot @ self.aggregation_weight[...]) + one_hot @ self.aggregation_bias[...], axis=1)
        counts = jnp.sum(one_hot, axis=1)                                       # (B, T)
        total = jnp.sum(counts, axis=-1, keepdims=True)
        summary = jnp.concatenate([pooled, counts, total, self.max_atoms - total], axis=-1) / self.max_atoms
        for i, layer in enumerate(self.head):
            summary = layer(summary)
            if i < len(self.head) - 1:
                summary = jax.nn.relu(summary)
        return summary[..., 0]

