"""The ``sphcnn data mnist`` command lines of spherical MNIST datasets: the named
datasets the presets and ``sphcnn demo`` use, the command that builds each, and
the command that rewrites a dataset from its metadata (error messages name them)."""

from __future__ import annotations

import shlex
from pathlib import Path

DEFAULT_SHARD_SIZE = 10_000

# Datasets that the training presets and `sphcnn demo` name by their directory
# under the data root, with the generate_spherical_mnist options that build them.
# The *_s2cnn ones follow the published spherical MNIST (s2cnn's
# examples/mnist/gendata.py, whose output Esteves et al. 2020 train and test on):
# its sampler and, rotated, one rotation per 500 images (that script's chunk size);
# rotated_s2cnn_c1 has the same sampler and a rotation per image.
NAMED_DATASETS: dict[str, dict] = {
    "canonical": {"mode": "canonical"},
    "rotated": {"mode": "rotated"},
    "canonical_s2cnn": {"mode": "canonical", "sampling": "s2cnn"},
    "rotated_s2cnn": {"mode": "rotated", "sampling": "s2cnn", "rotation_chunk": 500},
    "rotated_s2cnn_c1": {"mode": "rotated", "sampling": "s2cnn"},
}


def named_dataset_command(path) -> str | None:
    """The ``sphcnn data mnist`` command that builds the named dataset at ``path``
    (named by its last component, see NAMED_DATASETS), or None for other names."""
    path = Path(path)
    options = NAMED_DATASETS.get(path.name)
    if options is None:
        return None
    flags = {"mode": "--mode", "sampling": "--sampling", "rotation_chunk": "--rotation-chunk"}
    return shlex.join(_data_command(path, *[(flags[key], value) for key, value in options.items()]))


def _data_command(path, *options: tuple[str, object]) -> list[str]:
    """``sphcnn data mnist --output PATH`` followed by the (flag, value) pairs."""
    parts = ["sphcnn", "data", "mnist", "--output", str(path)]
    for flag, value in options:
        parts += [flag, str(value)]
    return parts


def regeneration_command(path, metadata: dict) -> str:
    """The ``sphcnn data mnist`` command line that rewrites the dataset at ``path``."""
    parts = _data_command(path, ("--mode", metadata["mode"]), ("--n", metadata["grid"]["n"]),
                          ("--seed", metadata["seed"]), ("--rotation-chunk", metadata["rotation_chunk"]))
    sampling = metadata["projection"].get("sampling", "bilinear")
    if sampling != "bilinear":
        parts += ["--sampling", sampling]
    if metadata["source"].get("kind") == "idx":
        parts += ["--mnist-dir", metadata["source"]["directory"]]
    if metadata["shard_size"] != DEFAULT_SHARD_SIZE:
        parts += ["--shard-size", str(metadata["shard_size"])]
    return shlex.join(parts + ["--overwrite"])
