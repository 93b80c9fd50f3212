"""QM9 training end to end on a small synthetic dataset (sphcnn train --task
qm9): batches (trimming, padding), augmentation, the loss and the metric in
reported units, learning, evaluation, kill-and-resume, multi-device
equivalence, the baselines and the command-line errors."""

from __future__ import annotations

import json
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from qm9_fixtures import training_dataset
from run_helpers import assert_same_records, records, train_on_devices, whole_and_resumed
from sphcnn import cli
from sphcnn.tasks import task_for
from sphcnn.tasks.qm9.baselines import atom_type_counts, baseline_maes
from sphcnn.tasks.qm9.data import HARTREE_TO_MEV, TARGETS, QM9Dataset
from sphcnn.tasks.qm9.features import molecule_to_spheres
from sphcnn.tasks.qm9.task import prepare_batch
from sphcnn.train import config as configs
from sphcnn.train.step import example_keys



@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> pathlib.Path:
    return training_dataset(tmp_path_factory.mktemp("qm9"))


def train_args(data_dir, workdir, steps, *extra):
    return ["train", "--task", "qm9", "--preset", "demo_cpu", "--data-dir", str(data_dir), "--workdir", str(workdir),
            "--batch-size", "8", "--max-steps", str(steps), "--set", "trim_multiple=8", "--set", "eval_every=0",
            "--set", "learning_rate=2e-2", "--set", "warmup_epochs=0.5", *extra]


def test_batches_are_trimmed_in_training_and_padded_in_evaluation(data_dir):
    data = QM9Dataset(data_dir)
    rows = {"charges": data.charges[:5], "positions": data.positions[:5], "label": np.zeros(5, np.float32)}
    largest = int(data.atom_counts[:5].max())
    assert prepare_batch(rows, 1)["charges"].shape == (5, largest)
    assert prepare_batch(rows, 4)["positions"].shape == (5, -(-largest // 4) * 4, 3)
    assert prepare_batch(rows, 29)["charges"].shape == (5, 29)
    assert prepare_batch(rows)["charges"].shape == (5, 29)  # evaluation
    trimmed = prepare_batch(rows, 1)
    assert trimmed["charges"].dtype == np.int32 and np.all(trimmed["charges"][:, :largest].sum(1) > 0)


def test_model_inputs_rotate_molecules_in_training_only(data_dir):
    config = configs.resolve("demo_cpu", task="qm9", data_dir=str(data_dir))
    task = task_for(config)
    data = QM9Dataset(data_dir)
    batch = {k: jnp.asarray(v) for k, v in prepare_batch(
        {"charges": data.charges[:4], "positions": data.positions[:4], "label": np.zeros(4)}, 1).items()}
    keys = lambda seed: example_keys(seed, jnp.zeros((), jnp.int32), 4)
    plain = task.model_inputs(batch, False, keys(0))
    expected, _ = molecule_to_spheres(batch["positions"], batch["charges"], n=16, max_atoms=batch["charges"].shape[1])
    np.testing.assert_array_equal(np.asarray(plain.spheres), np.asarray(expected))
    rotated = task.model_inputs(batch, True, keys(0))
    again = task.model_inputs(batch, True, keys(0))
    other = task.model_inputs(batch, True, keys(1))
    np.testing.assert_array_equal(np.asarray(rotated.spheres), np.asarray(again.spheres))
    assert np.abs(np.asarray(rotated.spheres) - np.asarray(plain.spheres)).max() > 1e-3
    assert np.abs(np.asarray(rotated.spheres) - np.asarray(other.spheres)).max() > 1e-3
    # the readout sees the stored positions (its centre distances are invariant anyway)
    np.testing.assert_array_equal(np.asarray(rotated.positions), np.asarray(batch["positions"]))


def test_metric_is_the_absolute_error_in_meV(data_dir):
    config = configs.resolve("demo_cpu", task="qm9", data_dir=str(data_dir))
    task = task_for(config)
    std = QM9Dataset(data_dir).stats.std[TARGETS.index("H")]
    outputs, labels = jnp.asarray([0.5, -1.0, 2.0]), jnp.asarray([0.25, -1.0, 1.0])
    metrics = task.example_metrics(outputs, {"label": labels})
    np.testing.assert_allclose(np.asarray(metrics["loss"]), [0.25, 0.0, 1.0])
    np.testing.assert_allclose(np.asarray(metrics["mae"]), np.asarray([0.25, 0.0, 1.0]) * std * HARTREE_TO_MEV,
                               rtol=1e-6)
    assert task.describe({"mae": 12.345}) == "H MAE 12.35 meV"
    mu = task_for(configs.resolve("demo_cpu", task="qm9", data_dir=str(data_dir), target="mu"))
    assert mu.describe({"mae": 0.5}) == "mu MAE 0.50 D"


def test_tiny_model_learns_and_evaluates(data_dir, tmp_path, capsys):
    workdir = tmp_path / "run"
    assert cli.main(train_args(data_dir, workdir, 44, "--set", "log_every=11", "--eval-on-test")) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("sphcnn: qm9_tiny trained on QM9 H (split cormorant) for 44 steps")
    assert "; test H MAE " in summary and "meV on QM9 H (split cormorant)" in summary
    train = [r for r in records(workdir) if r["split"] == "train"]
    assert train[-1]["loss"] < 0.7 * train[0]["loss"], [r["loss"] for r in train]
    test = [r for r in records(workdir) if r["split"] == "test"][-1]
    std = QM9Dataset(data_dir).stats.std[TARGETS.index("H")]
    np.testing.assert_allclose(test["mae"], test["loss"] * std * HARTREE_TO_MEV, rtol=1e-6)
    assert cli.main(["eval", "--task", "qm9", "--workdir", str(workdir), "--split", "test"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is the result alone; progress goes to stderr
    assert result["step"] == 44 and result["count"] == 12
    assert (result["metric"], result["target"], result["unit"]) == ("mae", "H", "meV")
    assert "on 12 test molecules ...\n  test: 12/12 molecules in " in captured.err, captured.err
    np.testing.assert_allclose(result["mae"], test["mae"], rtol=1e-6)
    assert cli.main(["eval", "--workdir", str(workdir), "--split", "validation"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["count"] == 16


def _command(data_dir, workdir, steps):
    return [sys.executable, "-m", "sphcnn.cli", *train_args(data_dir, workdir, steps, "--set", "log_every=5",
                                                            "--set", "checkpoint_every=10", "--eval-on-test")]


def test_kill_and_resume_matches_an_uninterrupted_run(data_dir, tmp_path):
    steps = 30
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    # killed between the checkpoints at 10 and 20
    resumed = whole_and_resumed(lambda workdir: _command(data_dir, workdir, steps), whole, killed, 10, steps)
    assert "resuming from the checkpoint at step" in resumed
    assert_same_records(whole, killed, ("loss", "mae"), rtol=1e-5)


def _train_in_process(data_dir, workdir, devices):
    return train_on_devices(workdir, devices, "demo_cpu", task="qm9", data_dir=str(data_dir), batch_size=8, max_steps=6,
                            eval_every=0, log_every=3, checkpoint_every=6, trim_multiple=8, eval_on_test=True)


def test_two_devices_equal_one(data_dir, tmp_path):
    one = _train_in_process(data_dir, tmp_path / "one", 1)
    two = _train_in_process(data_dir, tmp_path / "two", 2)
    assert one["devices"] == 1 and two["devices"] == 2
    np.testing.assert_allclose(two["test_mae"], one["test_mae"], rtol=1e-5)
    a = [r["loss"] for r in records(tmp_path / "one") if r["split"] == "train"]
    b = [r["loss"] for r in records(tmp_path / "two") if r["split"] == "train"]
    np.testing.assert_allclose(b, a, rtol=1e-5)


def test_baselines_against_a_direct_computation(data_dir):
    data = QM9Dataset(data_dir)
    maes = baseline_maes(data, "H", "cormorant", "validation")
    train, validation = data.split("cormorant", "train"), data.split("cormorant", "validation")
    column = TARGETS.index("H")
    y_train, y = data.targets[train, column], data.targets[validation, column]
    np.testing.assert_allclose(maes["training_mean"], np.mean(np.abs(y - y_train.mean())) * HARTREE_TO_MEV,
                               rtol=1e-12)
    # the least-squares fit solves the normal equations
    counts = lambda rows: np.concatenate([atom_type_counts(data.charges[rows]), np.ones((len(rows), 1))], 1)
    gram = counts(train).T @ counts(train)
    coefficients = np.linalg.pinv(gram) @ counts(train).T @ y_train
    np.testing.assert_allclose(maes["linear_atom_counts"],
                               np.mean(np.abs(counts(validation) @ coefficients - y)) * HARTREE_TO_MEV, rtol=1e-6)
    assert maes["linear_atom_counts"] < maes["training_mean"]


@pytest.mark.parametrize("args,pattern", [
    (["--target", "H"], "'target' applies to task qm9 only"),
    (["--task", "qm9", "--dataset", "canonical"], "'dataset' names the split of task qm9"),
    (["--task", "qm9", "--model", "spin_classifier_6_layers"], "'model' must be one of qm9_small"),
    (["--task", "qm9", "--preset", "original"], "unknown preset 'original' for task qm9"),
    (["--task", "qm9", "--set", "trim_multiple=30"], "'trim_multiple' must be in 1..29"),
    (["--task", "qm9", "--set", "batch_norm_momentum=1"], "'batch_norm_momentum' = 1.0 is out of range"),
])
def test_command_line_errors(args, pattern, tmp_path, capsys):
    code = cli.main(["train", "--workdir", str(tmp_path / "run"), "--data-dir", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and pattern in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_missing_dataset_names_the_command(tmp_path, capsys):
    code = cli.main(["train", "--task", "qm9", "--workdir", str(tmp_path / "run"), "--data-dir", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 2 and "sphcnn data qm9 --output" in err and len(err.strip().splitlines()) == 1, err


def test_unknown_target_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--task", "qm9", "--target", "X", "--workdir", str(tmp_path)])
    assert exit_info.value.code == 2 and "invalid choice: 'X'" in capsys.readouterr().err


def test_eval_checks_the_task(data_dir, tmp_path, capsys):
    workdir = tmp_path / "run"
    assert cli.main(train_args(data_dir, workdir, 2)) == 0
    capsys.readouterr()
    assert cli.main(["eval", "--task", "spherical_mnist", "--workdir", str(workdir)]) == 2
    assert "holds a qm9 run, not a spherical_mnist one" in capsys.readouterr().err
