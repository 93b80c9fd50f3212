"""Planar CNN baseline on the same equiangular grid (no rotation equivariance):
[2 x 2 average pooling when the resolution halves] -> 3 x 3 convolution with
bias ('SAME' padding, no wrap-around) -> BatchNorm -> ReLU per layer, global mean
and a dense layer."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from sphcnn_kernels import validation as checks
from sphcnn.models.classifiers import MNIST_RESOLUTIONS, check_layer_config


class PlanarCNNClassifier(nnx.Module):
    """Planar CNN baseline: input (batch, n, n, 1, C_0) real, treated as an n x n
    image; logits out.

    Per layer i -> i + 1: [2 x 2 average pooling when the resolution halves] ->
    3 x 3 convolution with bias ('SAME' padding, no wrap-around) -> BatchNorm
    (epsilon 1e-5) -> ReLU; then the mean over the grid and a dense layer.

    Args:
      num_classes: number of logits.
      resolutions: grid size of each layer, entry 0 the input's; each entry
        equals the previous one or half of it; at least 2 entries.
      widths: the channels of each layer (entry 0: C_0 of the input).
      axis_name: the batch norms' axis_name (statistics averaged over that
        mapped axis), or None.
      batch_norm_momentum: of the batch norms' running averages (default 0.99).
      rngs: random streams of the convolutions, batch norms and dense layer.

    Raises:
      ValueError: on a non-positive num_classes or invalid layer lists.
    """

    def __init__(self, num_classes: int, resolutions: Sequence[int], widths: Sequence[int], *, axis_name=None,
                 batch_norm_momentum: float = 0.99, rngs: nnx.Rngs):
        name = type(self).__name__
        self.num_classes = checks.positive_int(name, "num_classes", num_classes)
        self.resolutions, _, self.widths, _ = check_layer_config(
            name, resolutions, [(0,)] * len(resolutions), widths, [None] * len(resolutions))
        self.convs = nnx.List([nnx.Conv(self.widths[i], self.widths[i + 1], (3, 3), padding="SAME", rngs=rngs)
                               for i in range(len(self.widths) - 1)])
        self.norms = nnx.List([nnx.BatchNorm(w, momentum=batch_norm_momentum, epsilon=1e-5, axis_name=axis_name,
                                             use_running_average=False, rngs=rngs) for w in self.widths[1:]])
        self.readout = nnx.Linear(self.widths[-1], self.num_classes, rngs=rngs)

    def __call__(self, x: jax.Array, example_weights=None) -> jax.Array:
        """Classifies the maps as images.

        Args:
          x: (batch, n, n, 1, C_0), n = resolutions[0]; its real part is used,
            as float32.
          example_weights: ignored (flax BatchNorm has no per-example weights;
            padded examples count in the statistics).

        Returns:
          Logits (batch, num_classes) float32.

        Raises:
          ValueError: if x's shape does not match the first layer.
        """
        del example_weights  # flax BatchNorm has no per-example weights; padded examples count
        checks.spatial_input(type(self).__name__, x, self.resolutions[0], (0,), self.widths[0])
        h = jnp.real(x)[..., 0, :].astype(jnp.float32)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if self.resolutions[i + 1] != self.resolutions[i]:
                b, n, _, c = h.shape
                h = h.reshape(b, n // 2, 2, n // 2, 2, c).mean(axis=(2, 4))
            h = jax.nn.relu(norm(conv(h)))
        return self.readout(h.mean(axis=(1, 2)))


def cnn_classifier_6_layers(num_classes: int = 10, *, rngs: nnx.Rngs, **options) -> PlanarCNNClassifier:
    """The planar baseline of the spherical MNIST experiments: widths (1, 16, 16,
    32, 32, 54, 54) at resolutions (64, 64, 64, 32, 32, 16, 16); 59,230 parameters.

    Args:
      num_classes: number of logits (default 10).
      rngs: random streams of the model.
      **options: further keyword arguments of PlanarCNNClassifier (axis_name,
        batch_norm_momentum).

    Returns:
      A PlanarCNNClassifier.

    Raises:
      ValueError: on options PlanarCNNClassifier rejects.
    """
    return PlanarCNNClassifier(num_classes, MNIST_RESOLUTIONS, (1, 16, 16, 32, 32, 54, 54), rngs=rngs, **options)
