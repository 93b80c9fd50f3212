"""Models by name: the classifiers (built for a dataset's grid size) and the
QM9 regressor presets (sphcnn.models.regressors.REGRESSOR_PRESETS)."""

from __future__ import annotations

from flax import nnx

from sphcnn.models.classifiers import (
    MNIST_RESOLUTIONS,
    SpinSphericalClassifier,
    spherical_classifier_6_layers,
    spin_classifier_6_layers,
)
from sphcnn.models.planar import cnn_classifier_6_layers
from sphcnn.models.regressors import REGRESSOR_PRESETS

MODELS = {
    "spin_classifier_6_layers": spin_classifier_6_layers,
    "spherical_classifier_6_layers": spherical_classifier_6_layers,
    "cnn_classifier_6_layers": cnn_classifier_6_layers,
}
TINY = "tiny_spin_classifier"
CLASSIFIER_NAMES = tuple(MODELS) + (TINY,)
MODEL_NAMES = CLASSIFIER_NAMES + tuple(REGRESSOR_PRESETS)


def build_model(name: str, n: int, num_classes: int, *, seed: int, axis_name=None,
                kernel_init: str = "original", batch_norm_momentum: float = 0.99,
                fused_blocks: bool = True) -> nnx.Module:
    """The model `name` for n x n inputs. The presets of the spherical MNIST paper
    need n = 64; tiny_spin_classifier (two small spin-weighted blocks, for tests
    and smoke runs) takes any n divisible by 4. kernel_init: initialization of the
    spherical convolutions (SpinSphericalConvolution); the planar CNN has none.
    batch_norm_momentum: of every batch norm's running averages. fused_blocks:
    SpinSphericalClassifier(fused=...) for the spherical models."""
    if name not in CLASSIFIER_NAMES:
        raise ValueError(f"model: unknown classifier {name!r}; choose from {CLASSIFIER_NAMES}")
    rngs = nnx.Rngs(seed)
    if name == TINY:
        if n % 4:
            raise ValueError(f"model: {TINY} needs a grid size divisible by 4, the dataset has n = {n}")
        return SpinSphericalClassifier(num_classes, (n, n, n // 2), ((0,), (0, 1), (0, 1)), (1, 4, 8),
                                       (None, 3, 2), axis_name=axis_name, kernel_init=kernel_init,
                                       batch_norm_momentum=batch_norm_momentum, fused=fused_blocks, rngs=rngs)
    if n != MNIST_RESOLUTIONS[0]:
        raise ValueError(f"model: {name} takes {MNIST_RESOLUTIONS[0]} x {MNIST_RESOLUTIONS[0]} inputs, "
                         f"the dataset has n = {n}")
    if name == "cnn_classifier_6_layers":
        return MODELS[name](num_classes, rngs=rngs, axis_name=axis_name, batch_norm_momentum=batch_norm_momentum)
    return MODELS[name](num_classes, rngs=rngs, axis_name=axis_name, kernel_init=kernel_init,
                        batch_norm_momentum=batch_norm_momentum, fused=fused_blocks)
