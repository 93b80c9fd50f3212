"""A small synthetic spherical MNIST for training tests: IDX files of 28 x 28
disks, dim for class 0 and bright for class 1 (rotation-invariant, so the
spherical models learn it in a few steps), projected to a 16 x 16 grid."""

from __future__ import annotations

import gzip
import pathlib
import struct

import numpy as np

from sphcnn.tasks.mnist.dataset import generate_spherical_mnist


def _write_idx(path: pathlib.Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def disks(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    rng.shuffle(labels)
    rows, cols = np.mgrid[0:28, 0:28]
    radius = np.hypot(rows - 13.5, cols - 13.5)
    images = np.stack([(radius < 9) * (40 + 200 * label) for label in labels]).astype(np.uint8)
    return images, labels.astype(np.uint8)


def write_idx_mnist(directory: pathlib.Path, train: int = 240, test: int = 60) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = disks(count, seed)
        _write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    return directory


def synthetic_dataset(root: pathlib.Path, mode: str = "canonical", n: int = 16) -> pathlib.Path:
    """<root>/<mode>, a spherical dataset of the synthetic disks."""
    mnist = write_idx_mnist(root / "idx")
    generate_spherical_mnist(root / mode, mode=mode, n=n, mnist_dir=mnist, shard_size=64)
    return root
