"""Measured rotation equivariance of the layers and models that are only
approximately equivariant on the grid (protocol: sphcnn.nn.equivariance).

    python -m benchmarks.equivariance          # layers and classifiers
    python -m benchmarks.equivariance --qm9    # the QM9 regressor (sphcnn.tasks.qm9.invariance)

One JSON line per (layer, n) with the largest relative error over 3 rotations
and 3 random inputs, and per model the logit movement (3 initializations).
--qm9: the movement of qm9_tiny's prediction under rotations of the molecule
(8 random molecules of 3..9 atoms, 3 rotations, initializations 0..2, batch
statistics), next to its movement when every atom is displaced by 0.1
Angstrom (a change of geometry the model must see).
The magnitude nonlinearities get a bias of -0.5 (with zero bias they are the
identity). These are the levels quoted in the docstrings and the README.
"""

from __future__ import annotations

import argparse

import numpy as np
from flax import nnx

import sphcnn
from benchmarks.measure import emit
from sphcnn.nn.equivariance import approximately_equivariant_layers, logit_rotation_error, rotation_error

SPINS, CHANNELS = (0, 1), 4


def qm9() -> None:
    from sphcnn.tasks.qm9.invariance import measure

    rotation, displacement = measure()
    emit({"name": "property_rotation_error", "model": "qm9_tiny", "errors": rotation, "mean": float(np.mean(rotation)),
          "displacement_0.1A_errors": displacement, "displacement_mean": float(np.mean(displacement))})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qm9", action="store_true", help="measure the QM9 regressor only")
    if parser.parse_args(argv).qm9:
        qm9()
        return
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
