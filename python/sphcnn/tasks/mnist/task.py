"""Spherical MNIST as a task of the training loop: 10-class classification of
images on the sphere with cross-entropy loss and accuracy (see
:class:`sphcnn.tasks.Task`).

Fields of the examples: ``images`` uint8 (count, n, n), ``labels`` uint8
(count,); batches: ``images`` float32 (B, n, n, 1, 1) (spin 0, one channel),
``labels`` int32 (B,), ``weights`` float32 (B,).
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from sphcnn.models.registry import CLASSIFIER_NAMES, build_model
from sphcnn.tasks.batches import TrainingBatches
from sphcnn.tasks.mnist.dataset import SphericalMnist

NUM_CLASSES = 10


def prepare_batch(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows of images and labels -> float32 images (B, n, n, 1, 1), int32 labels."""
    return {"images": rows["images"].astype(np.float32)[..., None, None], "labels": rows["labels"].astype(np.int32)}


def _dataset(config, name: str, split: str) -> SphericalMnist:
    return SphericalMnist(pathlib.Path(config.data_dir) / name, split)


@dataclasses.dataclass(frozen=True)
class SphericalMnistTask:
    name: str = "spherical_mnist"
    metrics: tuple[str, ...] = ("accuracy",)
    unit: str = "images"
    models: tuple[str, ...] = CLASSIFIER_NAMES

    def check_config(self, config) -> None:
        if config.model not in self.models:
            raise ValueError(f"config: 'model' must be one of {', '.join(self.models)} for task spherical_mnist, "
                             f"got {config.model!r}")
        if config.target:
            raise ValueError(f"config: 'target' applies to task qm9 only; task spherical_mnist got "
                             f"{config.target!r}")

    def bind(self, config) -> "SphericalMnistTask":
        return self

    def training_data(self, config) -> TrainingBatches:
        train = _dataset(config, config.dataset, "train")
        images, labels = train.images, train.labels
        if config.combine_train_validation:
            validation = _dataset(config, config.dataset, "validation")
            images = np.concatenate([images, validation.images])
            labels = np.concatenate([labels, validation.labels])
        return TrainingBatches({"images": images, "labels": labels}, config.batch_size, seed=config.seed,
                               prepare=prepare_batch)

    def evaluation_fields(self, config, split: str, dataset: str | None = None) -> dict[str, np.ndarray]:
        name = dataset or (config.test_dataset or config.dataset if split == "test" else config.dataset)
        data = _dataset(config, name, split)
        return {"images": data.images, "labels": data.labels}

    def prepare(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return prepare_batch(rows)

    def build_model(self, config, fields: dict, axis_name) -> nnx.Module:
        return build_model(config.model, fields["images"].shape[1], NUM_CLASSES, seed=config.seed,
                           axis_name=axis_name, kernel_init=config.kernel_init,
                           batch_norm_momentum=config.batch_norm_momentum, fused_blocks=config.fused_blocks)

    def model_inputs(self, batch: dict, train: bool, keys: jax.Array) -> jax.Array:
        del train, keys
        return batch["images"]

    def losses(self, logits: jax.Array, batch: dict) -> jax.Array:
        # against one-hot labels (a comparison with an iota): the integer-label form
        # gathers the label's log-probability and scatters its gradient
        return optax.softmax_cross_entropy(logits, jax.nn.one_hot(batch["labels"], logits.shape[-1]))

    def example_metrics(self, logits: jax.Array, batch: dict) -> dict[str, jax.Array]:
        return {"loss": self.losses(logits, batch),
                "accuracy": (jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32)}

    def describe(self, metrics: dict[str, float]) -> str:
        return f"accuracy {100 * metrics['accuracy']:.2f}%"

    def metric_labels(self) -> dict[str, str]:
        return {"metric": "accuracy", "unit": "fraction"}


TASK = SphericalMnistTask()
