"""Spin-weighted spherical CNN regressors of molecular properties and the QM9
presets of "Scaling Spherical CNNs" (Esteves, Slotine & Makadia, ICML 2023).

A molecule is a set of atoms, each seeing the others through one sphere of
directions (sphcnn.tasks.qm9.molecule_to_spheres). Every atom's spheres go
through the same spherical CNN (the atoms of all molecules form one batch of
spheres; the batch norms weigh real atoms only), whose rotation-invariant
features (sphcnn.nn.readouts.invariant_magnitudes) feed a readout over the
atoms (sphcnn.models.tails: DeepSets or a transformer).

Blocks, from the original code (google-research/spherical-cnn,
molecules/configs/{small,default}.py, molecules/models.py): block 0 is a
convolution -> spatial batch norm with the uncentered variance -> phase
collapse; the later blocks are the same ("small") or efficient residual blocks
with a dense shortcut ("default"); spectral pooling in the convolution;
convolution kernels initialized as there ("scaling").

Parameter entries (complex entries counted once, as the original logs them):
qm9_small 3,212,097 and qm9_default 6,979,649, equal to the original's; the
per-target variants of the paper's configuration (molecules/configs/default.py,
TARGETS): qm9_mu (DeepSets, "displacement" aggregation) 6,977,089, qm9_alpha
(4-layer, 4-head transformer, "atom_type") 8,497,473 and qm9_r2 (transformer,
"distance_squared") 8,494,913, as counted from the original's layer definitions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from sphcnn_kernels import validation as checks
from sphcnn.nn.options import KERNEL_INITS
from sphcnn.models.classifiers import check_layer_config
from sphcnn.models.tails import DeepSetsTail, TransformerTail
from sphcnn.nn.blocks import SpinSphericalBlock, SpinSphericalResidualBlock
from sphcnn.nn.readouts import invariant_magnitudes


TAILS = ("deepsets", "transformer")


class MoleculeInputs(NamedTuple):
    """What a regressor takes: the spheres of every atom, the atom types and the
    atom positions of a batch of molecules.

    Args:
      spheres: (batch, atoms, n, n, S_0, C_0), real or complex: the spherical
        maps each atom sees.
      charges: (batch, atoms) integer atomic numbers (0: padding slot).
      positions: (batch, atoms, 3) atom positions, Angstrom.
    """

    spheres: jax.Array
    charges: jax.Array
    positions: jax.Array


class SpinSphericalRegressor(nnx.Module):
    """Per-atom spherical CNN + readout over the atoms (DeepSets or transformer):
    MoleculeInputs -> (batch,) float32.

        y = tail(invariant_magnitudes(blocks(spheres of each atom)), charges, positions)

    Block 0 is a SpinSphericalBlock with spectral pooling, the spatial batch
    norm with the uncentered variance and a phase collapse; the later blocks
    are the same, or SpinSphericalResidualBlock (dense shortcut) with residual.
    The tail takes S C features per atom (spins and width of the last layer).

    Args:
      resolutions: grid size of each layer, entry 0 the input's (as
        SpinSphericalClassifier).
      spins: the spins of each layer, entry 0 the input's.
      widths: the channels of each layer, entry 0 the input's.
      num_filter_params: the filter anchors of each layer's convolution (None:
        one per degree); num_filter_params[0] is unused.
      residual: blocks 1.. are SpinSphericalResidualBlock (dense shortcut), else
        SpinSphericalBlock like block 0.
      tail: 'deepsets' (DeepSetsTail) or 'transformer' (TransformerTail, with
        transformer_layers and transformer_heads).
      center_distance: the tail's center_distance.
      aggregation: the tail's aggregation.
      tail_width: the tail's width (default 256).
      transformer_layers: the TransformerTail's layers (default 4).
      transformer_heads: the TransformerTail's heads (default 4).
      atom_types: the tail's atom_types (default (1, 6, 7, 8, 9)).
      max_atoms: the tail's max_atoms (default 29).
      kernel_init: initialization of the convolutions (default 'scaling').
      batch_norm_momentum: of the batch norms' running averages (0.99, as the
        original).
      axis_name: the batch norms' axis_name (statistics summed over that mapped
        axis), or None.
      backend: transform backend, as in sphcnn_kernels.SphericalTransform.
      rngs: random streams of the blocks and the tail.

    Raises:
      ValueError: on invalid layer lists, an unknown kernel_init or tail, or
        arguments the blocks or the tail reject.
    """

    def __init__(self, resolutions: Sequence[int], spins: Sequence[Sequence[int]], widths: Sequence[int],
                 num_filter_params: Sequence[int | None], *, residual: bool = False, tail: str = "deepsets",
                 center_distance: bool = False, aggregation: str = "atom_type", tail_width: int = 256,
                 transformer_layers: int = 4, transformer_heads: int = 4,
                 atom_types: Sequence[int] = (1, 6, 7, 8, 9), max_atoms: int = 29,
                 kernel_init: str = "scaling", batch_norm_momentum: float = 0.99, axis_name=None,
                 backend: str = "auto", rngs: nnx.Rngs):
        name = type(self).__name__
        self.resolutions, self.spins, self.widths, self.num_filter_params = check_layer_config(
            name, resolutions, spins, widths, num_filter_params)
        checks.choice(name, "kernel_init", kernel_init, KERNEL_INITS)
        layers = []
        for i in range(len(self.resolutions) - 1):
            shared = dict(resolution_in=self.resolutions[i], resolution_out=self.resolutions[i + 1],
                          num_filter_params=self.num_filter_params[i + 1], kernel_init=kernel_init,
                          batch_norm_momentum=batch_norm_momentum, axis_name=axis_name, backend=backend, rngs=rngs)
            channels = (self.widths[i], self.widths[i + 1], self.spins[i], self.spins[i + 1])
            if residual and i > 0:
                layers.append(SpinSphericalResidualBlock(*channels, shortcut="dense", **shared))
            else:
                layers.append(SpinSphericalBlock(*channels, spectral_pooling=True, batch_norm="spatial_uncentered",
                                                 nonlinearity="phase_collapse", **shared))
        self.blocks = nnx.List(layers)
        checks.choice(name, "tail", tail, TAILS)
        options = dict(width=tail_width, atom_types=atom_types, max_atoms=max_atoms, center_distance=center_distance,
                       aggregation=aggregation, rngs=rngs)
        if tail == "transformer":
            options.update(layers=transformer_layers, heads=transformer_heads)
        self.tail = (DeepSetsTail if tail == "deepsets" else TransformerTail)(
            len(self.spins[-1]) * self.widths[-1], **options)

    def __call__(self, inputs: MoleculeInputs, example_weights=None) -> jax.Array:
        """Predicts one real number per molecule.

        The example weights (one per molecule, 0 for padding molecules) times
        the atom mask (charges > 0) weigh every batch-norm statistic.

        Args:
          inputs: MoleculeInputs: spheres (batch, atoms, n, n, S_0, C_0) real or
            complex (cast to float32 or complex64), n = resolutions[0]; charges
            (batch, atoms) integer; positions (batch, atoms, 3) Angstrom.
          example_weights: None (all 1) or (batch,) weights of the molecules.

        Returns:
          (batch,) float32.

        Raises:
          ValueError: if the shapes of the inputs do not match each other or the
            first layer.
        """
        name = type(self).__name__
        spheres, charges, positions = inputs
        if spheres.ndim != 6 or charges.shape != spheres.shape[:2] or positions.shape != charges.shape + (3,):
            raise ValueError(f"{name}: inputs have shapes spheres {tuple(spheres.shape)}, charges "
                             f"{tuple(charges.shape)}, positions {tuple(positions.shape)}; expected (batch, atoms, "
                             "n, n, spins, channels), (batch, atoms) and (batch, atoms, 3)")
        batch, atoms = charges.shape
        h = spheres.reshape((batch * atoms,) + spheres.shape[2:])
        checks.spatial_input(name, h, self.resolutions[0], self.spins[0], self.widths[0])
        weights = (charges > 0).astype(jnp.float32)
        if example_weights is not None:
            weights = weights * jnp.asarray(example_weights, jnp.float32)[:, None]
        weights = weights.reshape(batch * atoms)
        h = h.astype(jnp.float32 if not jnp.iscomplexobj(h) else jnp.complex64)
        for block in self.blocks:
            h = block(h, weights)
        features = invariant_magnitudes(h, self.spins[-1]).reshape(batch, atoms, -1)
        return self.tail(features, charges, positions)


@dataclasses.dataclass(frozen=True)
class RegressorPreset:
    """A named architecture: layer lists (entry 0 the input) and the block kind."""

    resolutions: tuple[int, ...]
    widths: tuple[int, ...]
    num_filter_params: tuple[int | None, ...]
    residual: bool
    center_distance: bool
    tail: str = "deepsets"
    aggregation: str = "atom_type"
    tail_width: int = 256

    @property
    def spins(self) -> tuple[tuple[int, ...], ...]:
        """Spins of each layer: (0,) for the input, (0, 1) for every block."""
        return ((0,),) + ((0, 1),) * (len(self.resolutions) - 1)

    def build(self, *, rngs: nnx.Rngs, **options) -> SpinSphericalRegressor:
        """The SpinSphericalRegressor of this preset; options: further keyword
        arguments of SpinSphericalRegressor."""
        return SpinSphericalRegressor(self.resolutions, self.spins, self.widths, self.num_filter_params,
                                      residual=self.residual, tail=self.tail, center_distance=self.center_distance,
                                      aggregation=self.aggregation, tail_width=self.tail_width, rngs=rngs, **options)


# Inputs: 10 channels = 2 distance powers x 5 atom types (sphcnn.tasks.qm9).
QM9_INPUT_CHANNELS = 10
_QM9 = dict(resolutions=(32, 32, 16, 16, 8, 8), widths=(QM9_INPUT_CHANNELS, 64, 128, 128, 256, 256),
            num_filter_params=(None, 8, 8, 8, 4, 4))
# The named regressor architectures: name -> RegressorPreset, whose
# build(rngs=...) gives the SpinSphericalRegressor.
REGRESSOR_PRESETS = {
    # The original's `small` config (5 plain blocks, no distance feature): 3,212,097 entries.
    "qm9_small": RegressorPreset(**_QM9, residual=False, center_distance=False),
    # The original's `default` config (block 0 + 4 residual blocks, distance feature): 6,979,649 entries.
    "qm9_default": RegressorPreset(**_QM9, residual=True, center_distance=True),
    # The paper's per-target variants of `default` (molecules/configs/default.py, TARGETS).
    "qm9_mu": RegressorPreset(**_QM9, residual=True, center_distance=True, aggregation="displacement"),
    "qm9_alpha": RegressorPreset(**_QM9, residual=True, center_distance=True, tail="transformer"),
    "qm9_r2": RegressorPreset(**_QM9, residual=True, center_distance=True, tail="transformer",
                              aggregation="distance_squared"),
    # CPU-sized: `small` at n = 16 with a quarter of the widths (the tail keeps its width 256).
    "qm9_tiny": RegressorPreset(resolutions=(16, 16, 8, 8, 4, 4), widths=(QM9_INPUT_CHANNELS, 16, 32, 32, 64, 64),
                                num_filter_params=(None, 8, 4, 4, 2, 2), residual=False, center_distance=False,
                                tail_width=256),
}
