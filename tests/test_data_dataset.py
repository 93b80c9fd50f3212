"""Dataset generation and storage on a synthetic IDX "MNIST" (120 training + 20
test images, so train 100 / validation 20 / test 20), and the `sphcnn data`
command."""

import hashlib
import json
import shlex

import numpy as np
import pytest

from sphcnn.tasks.mnist import commands
from sphcnn.tasks.mnist import dataset as ds
from sphcnn.tasks.mnist.projection import project
from sphcnn.cli import build_parser, run_data
from test_data_source import write_idx_set

N = 16


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mnist")
    train_images, train_labels, test_images, test_labels = write_idx_set(directory)
    return {
        "dir": directory,
        "train": (train_images[:100], train_labels[:100]),
        "validation": (train_images[100:], train_labels[100:]),
        "test": (test_images, test_labels),
    }


def generate(output, source, **kwargs):
    options = {"n": N, "shard_size": 30, "mnist_dir": source["dir"]}
    options.update(kwargs)
    return ds.generate_spherical_mnist(output, **options)


def file_bytes(directory):
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def parser():
    return build_parser()


def test_layout_counts_labels_and_images(tmp_path, source):
    output = tmp_path / "canonical"
    lines = []
    metadata = generate(output, source, progress=lines.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canonical"]  # no temporary directory left
    on_disk = json.loads((output / "metadata.json").read_text())
    assert on_disk == metadata and on_disk["format"] == ds.FORMAT_NAME and on_disk["version"] == 1
    assert on_disk["grid"]["n"] == N and on_disk["mode"] == "canonical" and on_disk["source"]["kind"] == "idx"
    counts = {split: on_disk["splits"][split]["count"] for split in ds.SPLITS}
    assert counts == {"train": 100, "validation": 20, "test": 20}
    assert [s["count"] for s in on_disk["splits"]["train"]["shards"]] == [30, 30, 30, 10]
    assert sorted(p.name for p in output.iterdir()) == sorted(
        ["metadata.json", "test-00000.npz", "validation-00000.npz"] + [f"train-{i:05d}.npz" for i in range(4)]
    )
    assert len(lines) == 6 and lines[-1] == "test: 20/20 images"
    for split in ds.SPLITS:
        for shard in on_disk["splits"][split]["shards"]:
            assert hashlib.sha256((output / shard["file"]).read_bytes()).hexdigest() == shard["sha256"]
            with np.load(output / shard["file"]) as archive:  # a plain .npz
                assert archive["images"].dtype == np.uint8 and archive["images"].shape == (shard["count"], N, N)
        data = ds.SphericalMnist(output, split)
        images, labels = source[split]
        assert (data.n, data.count, data.mode, len(data)) == (N, len(labels), "canonical", len(labels))
        np.testing.assert_array_equal(data.labels, labels)
        np.testing.assert_array_equal(data.images, project(images, N))
        assert on_disk["splits"][split]["label_counts"] == np.bincount(data.labels, minlength=10).tolist()
        assert not data.images.flags.writeable


def test_same_seed_same_bytes_different_seed_different_rotations(tmp_path, source):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(tmp_path / name, source, mode="rotated", seed=seed)
    first, second, other = (file_bytes(tmp_path / name) for name in "abc")
    assert first == second
    for name in first:
        assert first[name] != other[name]
    # canonical data do not depend on the seed (only the metadata records it)
    generate(tmp_path / "d", source, seed=3)
    generate(tmp_path / "e", source, seed=4)
    canonical_d, canonical_e = file_bytes(tmp_path / "d"), file_bytes(tmp_path / "e")
    assert {k: v for k, v in canonical_d.items() if k != "metadata.json"} == {
        k: v for k, v in canonical_e.items() if k != "metadata.json"
    }


def test_rotated_splits_use_their_own_streams(tmp_path, source):
    output = tmp_path / "rotated"
    generate(output, source, mode="rotated", seed=5, rotation_chunk=7)
    for split in ds.SPLITS:
        images, _ = source[split]
        rotations = ds.split_rotations(5, split, len(images), 7)
        np.testing.assert_array_equal(ds.SphericalMnist(output, split).images, project(images, N, rotations))
    train, validation = ds.split_rotations(5, "train", 20, 7), ds.split_rotations(5, "validation", 20, 7)
    assert not np.allclose(train, validation)
    np.testing.assert_array_equal(train[:7], np.broadcast_to(train[0], (7, 3, 3)))


def test_up_directions_follow_the_sampler_and_the_rotations(tmp_path, source):
    generate(tmp_path / "canonical", source)
    np.testing.assert_array_equal(ds.SphericalMnist(tmp_path / "canonical", "test").up_directions(3), [[0, 1, 0]] * 3)
    generate(tmp_path / "rotated", source, mode="rotated", seed=5, rotation_chunk=7, sampling="s2cnn")
    rotated = ds.SphericalMnist(tmp_path / "rotated", "validation")
    expected = ds.split_rotations(5, "validation", 20, 7)[:4] @ np.array([-1.0, 0.0, 0.0])  # s2cnn: -x, turned
    np.testing.assert_allclose(rotated.up_directions(4), expected, atol=1e-12)
    with pytest.raises(ValueError, match="'count' must be at most the split's 20 images, got 21"):
        rotated.up_directions(21)


def test_refuses_to_overwrite_a_finished_dataset(tmp_path, source):
    output = tmp_path / "data"
    generate(output, source)
    before = file_bytes(output)
    with pytest.raises(
        ds.DatasetError, match=r"already holds a finished spherical MNIST dataset; pass overwrite=True \(command line: --overwrite\)"
    ):
        generate(output, source, mode="rotated")
    assert file_bytes(output) == before
    generate(output, source, mode="rotated", overwrite=True)
    assert ds.SphericalMnist(output, "test").mode == "rotated"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_refuses_other_directories_and_files(tmp_path, source):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(ds.DatasetError, match="non-empty directory without metadata.json"):
        generate(tmp_path / "busy", source, overwrite=True)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ds.DatasetError, match="exists and is not a directory"):
        generate(tmp_path / "file", source)
    (tmp_path / "empty").mkdir()
    generate(tmp_path / "empty", source)
    assert (tmp_path / "empty" / "metadata.json").is_file()


def test_interrupted_generation_leaves_no_dataset(tmp_path, source, monkeypatch):
    calls = []

    def failing_project(images, n, rotations=None, sampling="bilinear"):
        calls.append(len(images))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return project(images, n, rotations, sampling)

    monkeypatch.setattr(ds, "project", failing_project)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "new", source)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(ds, "project", project)
    generate(tmp_path / "old", source)
    before = file_bytes(tmp_path / "old")
    calls.clear()
    monkeypatch.setattr(ds, "project", failing_project)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "old", source, mode="rotated", overwrite=True)
    assert file_bytes(tmp_path / "old") == before  # the finished dataset is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


@pytest.mark.parametrize("damage", ["missing", "corrupted"])
def test_damaged_shard_names_file_and_regeneration_command(tmp_path, source, damage):
    output = tmp_path / "data"
    generate(output, source, mode="rotated", seed=2, rotation_chunk=4)
    shard = output / "validation-00000.npz"
    if damage == "missing":
        shard.unlink()
        problem = f"shard {shard} of split 'validation' is missing"
    else:
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
        problem = f"shard {shard} is corrupted: sha256 [0-9a-f]{{64}}, expected [0-9a-f]{{64}}"
    command = (
        f"sphcnn data mnist --output {output} --mode rotated --n {N} --seed 2 --rotation-chunk 4 "
        f"--mnist-dir {source['dir']} --shard-size 30 --overwrite"
    )
    with pytest.raises(ds.DatasetError) as caught:
        ds.SphericalMnist(output, "validation")
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert problem.split("[")[0] in message and f"`{command}`" in message
    ds.SphericalMnist(output, "train")  # other splits are intact
    # the command, run as printed, restores the dataset
    assert run_data(parser().parse_args(shlex.split(command)[1:])) == 0
    np.testing.assert_array_equal(ds.SphericalMnist(output, "validation").labels, source["validation"][1])


def test_s2cnn_sampling_is_stored_recorded_and_regenerated(tmp_path, source):
    output = tmp_path / "s2cnn"
    metadata = generate(output, source, mode="rotated", seed=3, sampling="s2cnn")
    assert metadata["projection"]["sampling"] == "s2cnn"
    assert json.loads((output / "metadata.json").read_text())["projection"]["sampling"] == "s2cnn"
    rotations = ds.split_rotations(3, "test", 20, 1)
    images, labels = source["test"]
    np.testing.assert_array_equal(ds.SphericalMnist(output, "test").images,
                                  project(images, N, rotations, sampling="s2cnn"))
    assert not np.array_equal(ds.SphericalMnist(output, "test").images, project(images, N, rotations))
    command = commands.regeneration_command(output, metadata)
    assert "--sampling s2cnn" in command
    (output / "test-00000.npz").unlink()
    assert run_data(parser().parse_args(shlex.split(command)[1:])) == 0
    np.testing.assert_array_equal(ds.SphericalMnist(output, "test").images,
                                  project(images, N, rotations, sampling="s2cnn"))
    assert "--sampling" not in commands.regeneration_command(output, generate(tmp_path / "b", source))


def test_missing_metadata_and_bad_arguments(tmp_path, source):
    with pytest.raises(ds.DatasetError, match=r"metadata.json not found.*sphcnn data mnist --output"):
        ds.SphericalMnist(tmp_path, "train")
    with pytest.raises(ValueError, match="'split' must be one of 'train', 'validation', 'test', got 'dev'"):
        ds.SphericalMnist(tmp_path, "dev")
    bad = [
        ({"mode": "tilted"}, "'mode' must be one of 'canonical', 'rotated'"),
        ({"n": 7}, "'n' must be an even integer >= 4"),
        ({"seed": -1}, "'seed' must be >= 0"),
        ({"rotation_chunk": 0}, "'rotation_chunk' must be >= 1"),
        ({"sampling": "nearest"}, "'sampling' must be one of 'bilinear', 's2cnn'"),
        ({"shard_size": 0}, "'shard_size' must be >= 1"),
        ({"overwrite": "yes"}, "'overwrite' must be True or False"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            generate(tmp_path / "out", source, **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(commands.NAMED_DATASETS))
def test_missing_named_dataset_names_the_command_that_builds_it(tmp_path, source, name):
    output = tmp_path / name
    with pytest.raises(ds.DatasetError, match="metadata.json not found") as error:
        ds.SphericalMnist(output, "test")
    command = str(error.value).split("`")[1]
    assert command == commands.named_dataset_command(output)
    arguments = shlex.split(command)[1:] + ["--mnist-dir", str(source["dir"]), "--n", str(N)]
    assert run_data(parser().parse_args(arguments)) == 0
    metadata = json.loads((output / "metadata.json").read_text())
    want = {"mode": "canonical", "sampling": "bilinear", "rotation_chunk": 1} | commands.NAMED_DATASETS[name]
    assert (metadata["mode"], metadata["projection"]["sampling"], metadata["rotation_chunk"]) == (
        want["mode"], want["sampling"], want["rotation_chunk"])
    assert commands.named_dataset_command(tmp_path / "mine") is None


def test_command_line(tmp_path, source, capsys):
    output = tmp_path / "cli"
    args = [
        "data",
        "mnist",
        "--output",
        str(output),
        "--mnist-dir",
        str(source["dir"]),
        "--n",
        "8",
        "--mode",
        "rotated",
        "--seed",
        "1",
        "--rotation-chunk",
        "500",
    ]
    assert run_data(parser().parse_args(args)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("spherical MNIST (rotated, n = 8, bilinear sampling): 100 train / 20 validation / 20 test images in ")
    assert out[-1].endswith(f" s -> {output}")
    metadata = json.loads((output / "metadata.json").read_text())
    assert (metadata["seed"], metadata["rotation_chunk"], metadata["grid"]["n"]) == (1, 500, 8)
    from sphcnn import cli

    assert cli.main(args) == 2  # an existing dataset: one line, exit status 2
    err = capsys.readouterr().err
    assert err.startswith("sphcnn data: error: ") and "--overwrite" in err and err.count("\n") == 1
    defaults = parser().parse_args(["data", "mnist", "--output", "x"])
    assert (defaults.mode, defaults.n, defaults.seed, defaults.rotation_chunk, defaults.sampling,
            defaults.overwrite) == ("canonical", 64, 0, 1, "bilinear", False)
    assert defaults.mnist_dir is None and defaults.cache_dir is None
