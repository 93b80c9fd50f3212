"""QM9 as a task of the training loop: one molecular property per molecule,
regressed from per-atom spheres (see :class:`sphcnn.tasks.Task`).

The recipe of "Scaling Spherical CNNs" (google-research/spherical-cnn,
molecules/train.py): L1 loss on the normalized target (y - mean) / std (mean
and std of the split-1 training set, from the dataset's metadata); in training,
each molecule is rotated by a fresh Haar-random element of O(3) at every step
before its spheres are computed, and each batch is trimmed to its largest
molecule (rounded up to a multiple of ``trim_multiple`` atoms, which bounds the
number of compiled shapes); evaluation batches keep all 29 atom slots. Metric:
the absolute error in the reported unit (meV for energies), per molecule.

Fields of the examples: ``charges`` uint8 (count, 29), ``positions`` float32
(count, 29, 3) Angstrom, ``label`` float32 (count,) normalized target; batches:
``charges`` int32 (B, atoms), ``positions`` float32 (B, atoms, 3), ``label``,
``weights`` float32 (B,).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sphcnn.models.regressors import REGRESSOR_PRESETS, MoleculeInputs
from sphcnn.tasks.batches import TrainingBatches
from sphcnn.tasks.qm9.data import (REPORT_SCALE, REPORT_UNITS, SPLIT_SCHEMES, TARGETS, QM9Dataset, read_metadata)
from sphcnn.tasks.qm9.features import QM9_MAX_ATOMS, molecule_to_spheres, random_rotations, rotate_positions


def prepare_batch(rows: dict[str, np.ndarray], trim_multiple: int = 0) -> dict[str, np.ndarray]:
    """Host-side batch: int32 charges, float32 positions and labels; with
    trim_multiple > 0 the atom axis is cut to the batch's largest molecule
    rounded up to a multiple of trim_multiple (at most the stored 29 slots).
    Atoms fill the first slots of each row (sphcnn.tasks.qm9.data)."""
    charges, positions = rows["charges"], rows["positions"]
    if trim_multiple:
        largest = int(np.max(np.count_nonzero(charges, axis=1)))
        atoms = min(charges.shape[1], max(1, -(-largest // trim_multiple) * trim_multiple))
        charges, positions = charges[:, :atoms], positions[:, :atoms]
    return {"charges": charges.astype(np.int32), "positions": positions.astype(np.float32),
            "label": rows["label"].astype(np.float32)}


def _target_scale(data_dir, target: str) -> float:
    """std of `target` (its unit) times its report scale: |normalized error| x this = reported error."""
    metadata = read_metadata(pathlib.Path(data_dir))
    return float(metadata["normalization"]["std"][TARGETS.index(target)]) * REPORT_SCALE[target]


@dataclasses.dataclass(frozen=True)
class QM9Task:
    name: str = "qm9"
    metrics: tuple[str, ...] = ("mae",)
    unit: str = "molecules"
    models: tuple[str, ...] = tuple(REGRESSOR_PRESETS)
    # Bound to a config (bind): the target, the featurization grid, the report scale, the trimming.
    target: str = "H"
    resolution: int = 32
    report_scale: float = 1.0
    trim_multiple: int = 1

    def check_config(self, config) -> None:
        if config.target not in TARGETS:
            raise ValueError(f"config: 'target' must be one of {', '.join(TARGETS)} for task qm9, got "
                             f"{config.target!r}")
        if config.model not in self.models:
            raise ValueError(f"config: 'model' must be one of {', '.join(self.models)} for task qm9, got "
                             f"{config.model!r}")
        for field in ("dataset",) + (("test_dataset",) if config.test_dataset else ()):
            if getattr(config, field) not in SPLIT_SCHEMES:
                raise ValueError(f"config: '{field}' names the split of task qm9, one of "
                                 f"{', '.join(SPLIT_SCHEMES)} (cormorant = split 1, dimenet = split 2), got "
                                 f"{getattr(config, field)!r}")
        if not 1 <= config.trim_multiple <= QM9_MAX_ATOMS:
            raise ValueError(f"config: 'trim_multiple' must be in 1..{QM9_MAX_ATOMS}, got {config.trim_multiple}")

    def bind(self, config) -> "QM9Task":
        return dataclasses.replace(self, target=config.target,
                                   resolution=REGRESSOR_PRESETS[config.model].resolutions[0],
                                   report_scale=_target_scale(config.data_dir, config.target),
                                   trim_multiple=config.trim_multiple)

    def _fields(self, data: QM9Dataset, scheme: str, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
        rows = np.concatenate([data.split(scheme, split) for split in splits])
        column = TARGETS.index(self.target)
        return {"charges": data.charges[rows], "positions": data.positions[rows],
                "label": data.normalized_targets(rows, np.float32)[:, column]}

    def training_data(self, config) -> TrainingBatches:
        splits = ("train", "validation") if config.combine_train_validation else ("train",)
        fields = self._fields(QM9Dataset(config.data_dir), config.dataset, splits)
        return TrainingBatches(fields, config.batch_size, seed=config.seed,
                               prepare=functools.partial(prepare_batch, trim_multiple=self.trim_multiple))

    def evaluation_fields(self, config, split: str, dataset: str | None = None) -> dict[str, np.ndarray]:
        scheme = dataset or (config.test_dataset or config.dataset if split == "test" else config.dataset)
        if scheme not in SPLIT_SCHEMES:
            raise ValueError(f"qm9: the dataset to evaluate on names a split, one of {', '.join(SPLIT_SCHEMES)}; "
                             f"got {scheme!r}")
        return self._fields(QM9Dataset(config.data_dir), scheme, (split,))

    def prepare(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return prepare_batch(rows)

    def build_model(self, config, fields: dict, axis_name) -> nnx.Module:
        return REGRESSOR_PRESETS[config.model].build(rngs=nnx.Rngs(config.seed), kernel_init=config.kernel_init,
                                                     batch_norm_momentum=config.batch_norm_momentum,
                                                     axis_name=axis_name)

    def model_inputs(self, batch: dict, train: bool, keys: jax.Array) -> MoleculeInputs:
        charges, positions = batch["charges"], batch["positions"]
        seen = positions
        if train:
            matrices = jax.vmap(lambda key: random_rotations(key, 1)[0])(keys)
            seen = rotate_positions(positions, matrices)
        spheres, _ = molecule_to_spheres(seen, charges, n=self.resolution, max_atoms=charges.shape[1])
        return MoleculeInputs(spheres, charges, positions)

    def losses(self, outputs: jax.Array, batch: dict) -> jax.Array:
        return jnp.abs(outputs - batch["label"])

    def example_metrics(self, outputs: jax.Array, batch: dict) -> dict[str, jax.Array]:
        errors = jnp.abs(outputs - batch["label"])
        return {"loss": errors, "mae": errors * self.report_scale}

    def describe(self, metrics: dict[str, float]) -> str:
        return f"{self.target} MAE {metrics['mae']:.2f} {REPORT_UNITS[self.target]}"

    def metric_labels(self) -> dict[str, str]:
        return {"metric": "mae", "target": self.target, "unit": REPORT_UNITS[self.target]}


TASK = QM9Task()
