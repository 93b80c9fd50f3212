"""Readouts over atoms of the Scaling Spherical CNNs QM9 models (Esteves,
Slotine & Makadia, ICML 2023; layouts and constants from its code,
google-research/spherical-cnn, molecules/models.py): per-atom invariant
features (batch, atoms, F) -> one real number per molecule, invariant to the
order of the atoms and blind to padding slots (charge 0).

Both tails share three stages:

  embedding    h_i = relu(Dense_W(x_i)) + E_type(i) [+ Dense_W(|d_i|)]
  aggregation  g = sum over atoms / max_atoms of, by `aggregation`:
                 "atom_type"         W_type(i) * h_i + B_type(i)   (W = 1, B = 0 at first)
                 "displacement"      h_i d_i, then the norm over the 3 axes (per channel)
                 "distance_squared"  h_i |d_i|^2
  head         y = Dense_1(relu(Dense_W(relu(Dense_W([g, counts / max_atoms])))))

with E (type embedding) initialized to 0; d_i the atom's displacement from the
centre of mass (atomic masses), divided by QM9's largest interatomic distance
(12.0404 A); counts = the atoms of each type, the atom count and max_atoms
minus it. DeepSetsTail puts one more Dense_W + ReLU per atom between embedding
and aggregation; TransformerTail puts `layers` pre-norm self-attention blocks
over the atoms of each molecule (padding slots masked out) and a layer norm.
Padding slots match no type and have zero displacement weight: they add
nothing. The paper's per-target choices: "displacement" for the dipole moment
mu, the transformer with "atom_type" for alpha and with "distance_squared" for
R^2, DeepSets with "atom_type" for the rest.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sphcnn_kernels import validation as checks
from sphcnn.nn import initializers

# Standard atomic weights (u) of H, C, N, O, F (IUPAC 2013 conventional values,
# as the original code's table).
ATOMIC_MASSES = {1: 1.008, 6: 12.011, 7: 14.007, 8: 15.999, 9: 18.998403163}
# QM9's largest interatomic distance, Angstrom (the original's max_pairwise_distance).
DISTANCE_NORMALIZATION = 12.040386407885462
AGGREGATIONS = ("atom_type", "displacement", "distance_squared")
# the dense layers' kernels: lecun normal drawn on the host (sphcnn.nn.initializers)
LECUN = initializers.lecun_normal()


def type_one_hot(charges: jax.Array, atom_types: tuple[int, ...]) -> jax.Array:
    """(..., atoms) atomic numbers -> (..., atoms, T) float32 one-hot; zero rows for padding (0)."""
    return (charges[..., None] == jnp.asarray(atom_types, charges.dtype)).astype(jnp.float32)


def center_displacements(positions: jax.Array, one_hot: jax.Array, atom_types: tuple[int, ...]) -> jax.Array:
    """(..., atoms, 3) displacement of each atom from the centre of mass, over
    DISTANCE_NORMALIZATION; padding slots (mass 0) do not move the centre."""
    masses = one_hot @ jnp.asarray([ATOMIC_MASSES[t] for t in atom_types], jnp.float32)
    positions = positions.astype(jnp.float32) / DISTANCE_NORMALIZATION
    center = jnp.sum(positions * masses[..., None], axis=-2) / jnp.maximum(jnp.sum(masses, -1), 1e-12)[..., None]
    return positions - center[..., None, :]


def _safe_norm(vectors: jax.Array) -> jax.Array:
    """|v| over the last axis with a finite gradient at 0 (0 there)."""
    squared = jnp.sum(vectors * vectors, axis=-1)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


class AtomEmbedding(nnx.Module):
    """relu(Dense(x_i)) + type embedding [+ Dense(distance to the centre)], (B, A, width)."""

    def __init__(self, features: int, width: int, types: int, center_distance: bool, rngs: nnx.Rngs):
        self.dense = nnx.Linear(features, width, kernel_init=LECUN, rngs=rngs)
        self.type_embedding = nnx.Param(jnp.zeros((types, width), jnp.float32))
        self.distance_dense = nnx.Linear(1, width, kernel_init=LECUN, rngs=rngs) if center_distance else None

    def __call__(self, features: jax.Array, one_hot: jax.Array, displacements: jax.Array) -> jax.Array:
        h = jax.nn.relu(self.dense(features.astype(jnp.float32))) + one_hot @ self.type_embedding[...]
        if self.distance_dense is not None:
            h = h + self.distance_dense(_safe_norm(displacements)[..., None])
        return h


class AtomAggregation(nnx.Module):
    """(B, A, width) per-atom features -> (B, width) (see the module docstring)."""

    def __init__(self, mode: str, width: int, types: int, max_atoms: int):
        self.mode = mode
        self.max_atoms = max_atoms
        if mode == "atom_type":
            self.weight = nnx.Param(jnp.ones((types, width), jnp.float32))
            self.bias = nnx.Param(jnp.zeros((types, width), jnp.float32))

    def __call__(self, h: jax.Array, one_hot: jax.Array, displacements: jax.Array) -> jax.Array:
        real = jnp.sum(one_hot, axis=-1, keepdims=True)                       # (B, A, 1): 1 on real atoms
        if self.mode == "atom_type":
            terms = h * (one_hot @ self.weight[...]) + one_hot @ self.bias[...]
            return jnp.sum(terms, axis=1) / self.max_atoms
        if self.mode == "distance_squared":
            squared = jnp.sum(displacements * displacements, axis=-1, keepdims=True)
            return jnp.sum(h * real * squared, axis=1) / self.max_atoms
        moments = jnp.einsum("bac,bak->bck", h * real, displacements) / self.max_atoms   # (B, width, 3)
        return _safe_norm(moments)


class MoleculeHead(nnx.Module):
    """[g, counts / max_atoms] -> Dense -> ReLU -> Dense -> ReLU -> Dense 1, (B,)."""

    def __init__(self, width: int, types: int, max_atoms: int, rngs: nnx.Rngs):
        self.max_atoms = max_atoms
        self.layers = nnx.List([nnx.Linear(width + types + 2, width, kernel_init=LECUN, rngs=rngs),
                                nnx.Linear(width, width, kernel_init=LECUN, rngs=rngs),
                                nnx.Linear(width, 1, kernel_init=LECUN, rngs=rngs)])

    def __call__(self, pooled: jax.Array, one_hot: jax.Array) -> jax.Array:
        counts = jnp.sum(one_hot, axis=1)                                        # (B, T)
        total = jnp.sum(counts, axis=-1, keepdims=True)
        h = jnp.concatenate([pooled, counts, total, self.max_atoms - total], axis=-1) / self.max_atoms
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = jax.nn.relu(h)
        return h[..., 0]


def _check(name: str, features, width, atom_types, max_atoms, center_distance, aggregation):
    features = checks.positive_int(name, "features", features)
    width = checks.positive_int(name, "width", width)
    atom_types = tuple(checks.positive_int(name, "atom_types", t) for t in atom_types)
    max_atoms = checks.positive_int(name, "max_atoms", max_atoms)
    aggregation = checks.choice(name, "aggregation", aggregation, AGGREGATIONS)
    unknown = [t for t in atom_types if t not in ATOMIC_MASSES]
    if unknown and (center_distance or aggregation != "atom_type"):
        raise ValueError(f"{name}: the distance to the centre of mass needs atomic masses, known for "
                         f"{sorted(ATOMIC_MASSES)}; argument 'atom_types' has {unknown}")
    return features, width, atom_types, max_atoms, aggregation


class _Tail(nnx.Module):
    """The shared stages; subclasses set self.atoms, the per-atom middle stage."""

    def _stages(self, name, features, width, atom_types, max_atoms, center_distance, aggregation, rngs):
        features, width, self.atom_types, max_atoms, aggregation = _check(
            name, features, width, atom_types, max_atoms, center_distance, aggregation)
        types = len(self.atom_types)
        self.needs_geometry = center_distance or aggregation != "atom_type"
        self.embedding = AtomEmbedding(features, width, types, center_distance, rngs)
        self.aggregation = AtomAggregation(aggregation, width, types, max_atoms)
        self.head = MoleculeHead(width, types, max_atoms, rngs)
        return width

    def __call__(self, features: jax.Array, charges: jax.Array, positions: jax.Array) -> jax.Array:
        """One real number per molecule.

        Args:
          features: per-atom invariant features (batch, atoms, F).
          charges: (batch, atoms) integer atomic numbers (0: padding slot).
          positions: (batch, atoms, 3) atom positions, Angstrom (used with
            center_distance or an aggregation other than 'atom_type').

        Returns:
          (batch,) float32.
        """
        one_hot = type_one_hot(charges, self.atom_types)
        displacements = center_displacements(positions, one_hot, self.atom_types) if self.needs_geometry else None
        h = self.atoms(self.embedding(features, one_hot, displacements), one_hot)
        return self.head(self.aggregation(h, one_hot, displacements), one_hot)


class DeepSetsTail(_Tail):
    """Embedding -> Dense + ReLU per atom -> aggregation -> head (module docstring).

    Parameters (float32, lecun-normal kernels, zero biases): per-atom Dense
    F -> width, type embedding (T, width), [distance Dense 1 -> width], Dense
    width -> width, ['atom_type': weights and biases (T, width)], head Dense
    width + T + 2 -> width, width -> width, width -> 1.

    Args:
      features: F, the per-atom input features.
      width: hidden width (default 256).
      atom_types: atomic numbers of the types (QM9: 1, 6, 7, 8, 9).
      max_atoms: the normalization of the sums and counts (29 for QM9, whatever
        the trimmed atom axis is).
      center_distance: add the Dense of the distance to the centre of mass.
      aggregation: 'atom_type' (default), 'displacement' or 'distance_squared'.
      rngs: random streams of the dense layers.

    Raises:
      ValueError: on non-positive features, width, max_atoms or atom type,
        an unknown aggregation, or atom types without a known atomic mass
        (H, C, N, O, F) when center_distance is set or aggregation is not
        'atom_type'.
    """

    def __init__(self, features: int, *, width: int = 256, atom_types=(1, 6, 7, 8, 9), max_atoms: int = 29,
                 center_distance: bool = False, aggregation: str = "atom_type", rngs: nnx.Rngs):
        width = self._stages(type(self).__name__, features, width, atom_types, max_atoms, center_distance,
                             aggregation, rngs)
        self.dense = nnx.Linear(width, width, kernel_init=LECUN, rngs=rngs)

    def atoms(self, h: jax.Array, one_hot: jax.Array) -> jax.Array:
        del one_hot
        return jax.nn.relu(self.dense(h))


class _EncoderBlock(nnx.Module):
    """Pre-norm transformer block: x + MHA(LN(x)); then + MLP(LN(.)) (Dense, GELU, Dense)."""

    def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
        xavier = jax.nn.initializers.xavier_uniform()
        tiny = jax.nn.initializers.normal(1e-6)
        self.norm1 = nnx.LayerNorm(width, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(heads, width, kernel_init=xavier, decode=False, deterministic=True,
                                                keep_rngs=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, rngs=rngs)
        self.mlp1 = nnx.Linear(width, width, kernel_init=xavier, bias_init=tiny, rngs=rngs)
        self.mlp2 = nnx.Linear(width, width, kernel_init=xavier, bias_init=tiny, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        x = x + self.attention(self.norm1(x), mask=mask)
        return x + self.mlp2(jax.nn.gelu(self.mlp1(self.norm2(x))))


class TransformerTail(_Tail):
    """Embedding -> `layers` self-attention blocks over the atoms of each
    molecule (`heads` heads, MLP width `width`, padding slots masked out of the
    attention) -> layer norm -> aggregation -> head (module docstring).

    Parameters: those of DeepSetsTail without its per-atom Dense, plus per block
    two layer norms (scale and bias, width each), the attention's query, key,
    value and output maps (width x width with biases; xavier-uniform kernels)
    and the MLP's two Dense width -> width (xavier-uniform kernels, N(0, 1e-12)
    biases), and the final layer norm.

    Args:
      features: F, the per-atom input features.
      width: hidden width (default 256), also the attention and MLP width.
      layers: number of self-attention blocks (default 4).
      heads: attention heads (default 4, as the paper's configuration); must
        divide width.
      atom_types: atomic numbers of the types (QM9: 1, 6, 7, 8, 9).
      max_atoms: the normalization of the sums and counts (29 for QM9, whatever
        the trimmed atom axis is).
      center_distance: add the Dense of the distance to the centre of mass.
      aggregation: 'atom_type' (default), 'displacement' or 'distance_squared'.
      rngs: random streams of the dense, attention and layer-norm layers.

    Raises:
      ValueError: on non-positive features, width, max_atoms or atom type,
        an unknown aggregation, or atom types without a known atomic mass
        (H, C, N, O, F) when center_distance is set or aggregation is not
        'atom_type', non-positive layers or heads, or a width not divisible
        by heads.
    """

    def __init__(self, features: int, *, width: int = 256, layers: int = 4, heads: int = 4,
                 atom_types=(1, 6, 7, 8, 9), max_atoms: int = 29, center_distance: bool = False,
                 aggregation: str = "atom_type", rngs: nnx.Rngs):
        name = type(self).__name__
        width = self._stages(name, features, width, atom_types, max_atoms, center_distance, aggregation, rngs)
        layers = checks.positive_int(name, "layers", layers)
        heads = checks.positive_int(name, "heads", heads)
        if width % heads:
            raise ValueError(f"{name}: argument 'width' ({width}) must be divisible by 'heads' ({heads})")
        self.blocks = nnx.List([_EncoderBlock(width, heads, rngs) for _ in range(layers)])
        self.norm = nnx.LayerNorm(width, rngs=rngs)

    def atoms(self, h: jax.Array, one_hot: jax.Array) -> jax.Array:
        real = jnp.sum(one_hot, axis=-1) > 0
        mask = (real[:, None, :, None] & real[:, None, None, :])                 # (B, 1, A, A): heads broadcast
        for block in self.blocks:
            h = block(h, mask)
        return self.norm(h)
