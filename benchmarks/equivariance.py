"""Measured rotation equivariance of the layers and models that are only
approximately equivariant on the grid (protocol: sphcnn.nn.equivariance).

    python -m benchmarks.equivariance

One JSON line per (layer, n) with the largest relative error over 3 rotations
and 3 random inputs, and per model the logit movement (3 initializations).
The magnitude nonlinearities get a bias of -0.5 (with zero bias they are the
identity). These are the levels quoted in the docstrings and the README.
"""

from __future__ import annotations

import numpy as np
from flax import nnx

import sphcnn
from benchmarks.measure import emit
from sphcnn.nn.equivariance import approximately_equivariant_layers, logit_rotation_error, rotation_error

SPINS, CHANNELS = (0, 1), 4


def main() -> None:
    for n in (32, 64):
        for name, layer in approximately_equivariant_layers(SPINS, CHANNELS).items():
            rng = np.random.default_rng(n)
            error = max(rotation_error(layer, rng, n, SPINS, CHANNELS, SPINS) for _ in range(3))
            emit({"name": "rotation_error", "layer": name, "n": n, "error": error})
    presets = {
        "spin_classifier_6_layers": sphcnn.spin_classifier_6_layers,
        "spherical_classifier_6_layers": sphcnn.spherical_classifier_6_layers,
        "cnn_classifier_6_layers": sphcnn.cnn_classifier_6_layers,
    }
    for name, make in presets.items():
        for pooling in (("spatial", "spectral") if name != "cnn_classifier_6_layers" else ("average",)):
            options = {"spectral_pooling": pooling == "spectral"} if pooling != "average" else {}
            errors = []
            for seed in range(3):
                model = make(rngs=nnx.Rngs(seed), **options)
                model.eval()
                errors.append(logit_rotation_error(model, np.random.default_rng(seed)))
            emit({"name": "logit_rotation_error", "model": name, "pooling": pooling, "errors": errors,
                  "mean": float(np.mean(errors))})


if __name__ == "__main__":
    main()
