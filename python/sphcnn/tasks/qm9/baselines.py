"""Reference errors that any QM9 model must beat, computed from the dataset
alone: predicting the training mean of the target, and a least-squares linear
fit of the target on the atom-type counts (H, C, N, O, F) plus a constant, fitted
on the training split. MAEs in the reported unit (meV for energies), as
sphcnn.tasks.qm9.data.reported_mae.

    python -m sphcnn.tasks.qm9.baselines --data-dir data/qm9 --target H

prints one JSON line per baseline.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from sphcnn_kernels import validation as checks
from sphcnn.tasks.qm9.data import REPORT_SCALE, REPORT_UNITS, SPLIT_NAMES, SPLIT_SCHEMES, TARGETS, QM9Dataset
from sphcnn.tasks.qm9.features import QM9_ATOM_TYPES

BASELINES = ("training_mean", "linear_atom_counts")


def atom_type_counts(charges: np.ndarray) -> np.ndarray:
    """(N, 29) atomic numbers -> float64 (N, 5) counts of H, C, N, O, F."""
    return np.stack([np.count_nonzero(charges == t, axis=1) for t in QM9_ATOM_TYPES], axis=1).astype(np.float64)


def baseline_maes(data: QM9Dataset, target: str = "H", scheme: str = "cormorant",
                  split: str = "validation") -> dict[str, float]:
    """{baseline: MAE on `split` of `scheme` in REPORT_UNITS[target]}, both fitted
    on the scheme's training split."""
    func = "baseline_maes"
    target = checks.choice(func, "target", target, TARGETS)
    scheme = checks.choice(func, "scheme", scheme, SPLIT_SCHEMES)
    split = checks.choice(func, "split", split, SPLIT_NAMES)
    column = TARGETS.index(target)
    train, evaluated = data.split(scheme, "train"), data.split(scheme, split)
    y_train, y = data.targets[train, column], data.targets[evaluated, column]

    def design(rows):
        return np.concatenate([atom_type_counts(data.charges[rows]), np.ones((len(rows), 1))], axis=1)

    coefficients, *_ = np.linalg.lstsq(design(train), y_train, rcond=None)
    predictions = {"training_mean": np.full(len(y), np.mean(y_train)),
                   "linear_atom_counts": design(evaluated) @ coefficients}
    return {name: float(np.mean(np.abs(predictions[name] - y)) * REPORT_SCALE[target]) for name in BASELINES}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data/qm9")
    parser.add_argument("--target", default="H", choices=TARGETS)
    parser.add_argument("--scheme", default="cormorant", choices=SPLIT_SCHEMES)
    parser.add_argument("--split", default="validation", choices=SPLIT_NAMES)
    args = parser.parse_args(argv)
    maes = baseline_maes(QM9Dataset(args.data_dir), args.target, args.scheme, args.split)
    for name, mae in maes.items():
        print(json.dumps({"baseline": name, "target": args.target, "scheme": args.scheme, "split": args.split,
                          "mae": mae, "unit": REPORT_UNITS[args.target]}))


if __name__ == "__main__":
    main()
