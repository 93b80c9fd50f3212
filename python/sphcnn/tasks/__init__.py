"""Tasks: what the training loop (:mod:`sphcnn.train.loop`) runs. A task owns
its data, its models, its loss and its metrics behind one small interface,
:class:`Task`; the loop, the step, checkpoints, metrics files and data
parallelism are shared.

Batches are dicts of arrays with one row per example and float32 ``weights``
(0 for padding rows); see :mod:`sphcnn.tasks.batches`.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import jax
from flax import nnx

# Task names and the modules that define them (imported on first use).
TASK_MODULES = {"spherical_mnist": "sphcnn.tasks.mnist.task", "qm9": "sphcnn.tasks.qm9.task"}
TASK_NAMES = tuple(TASK_MODULES)


class Task(Protocol):
    """The interface the training loop uses. Instances are immutable and
    hashable (they are static arguments of jitted functions).

    name: the config's ``task``; metrics: names of the per-example metrics
    (averaged over examples with their weights) reported for every split, the
    first one the headline; unit: what an example is called in progress lines
    ('images', 'molecules'); models: the config's model names it builds.
    """

    name: str
    metrics: tuple[str, ...]
    unit: str
    models: tuple[str, ...]

    def check_config(self, config) -> None:
        """Raise ValueError for config fields this task cannot take (model, dataset,
        task-specific fields); nothing is read from disk."""

    def bind(self, config) -> "Task":
        """The task for a config's run (its task-specific fields and data
        constants); may read the dataset's metadata."""

    def training_data(self, config) -> Any:
        """The training batches of a config (a sphcnn.tasks.batches.TrainingBatches),
        after checking that the data exist and are intact."""

    def evaluation_fields(self, config, split: str, dataset: str | None = None) -> dict:
        """name -> array (count, ...): the examples of a split (of `dataset`, default
        the config's test dataset), checked."""

    def prepare(self, rows: dict) -> dict:
        """Host-side conversion of the rows of a batch (dtypes, axes)."""

    def build_model(self, config, fields: dict, axis_name) -> nnx.Module:
        """The model of a config, for examples like `fields`."""

    def model_inputs(self, batch: dict, train: bool, keys: jax.Array) -> Any:
        """What the model is called with (inside jit; `keys`: one random key per
        example, for augmentation, the same whatever the number of devices)."""

    def losses(self, outputs: Any, batch: dict) -> jax.Array:
        """Per-example training losses (B,) (inside jit)."""

    def example_metrics(self, outputs: Any, batch: dict) -> dict[str, jax.Array]:
        """name -> per-example values (B,) for each of `metrics` and 'loss'
        (inside jit)."""

    def describe(self, metrics: dict[str, float]) -> str:
        """A short console text of averaged metrics, e.g. 'accuracy 98.63%'."""

    def metric_labels(self) -> dict[str, str]:
        """What the headline metric of an evaluation result measures, for
        machine-readable results: 'metric' (its key), 'unit' and any other
        name it needs (QM9: 'target')."""


def task_for(config) -> Task:
    """The task of a config, bound to it."""
    return get_task(config.task).bind(config)


def get_task(name: str) -> Task:
    """The task registered as `name`."""
    if name not in TASK_MODULES:
        raise ValueError(f"task: unknown task {name!r}; choose from {', '.join(TASK_NAMES)}")
    return importlib.import_module(TASK_MODULES[name]).TASK
