"""Training, evaluation and the command line on a small synthetic dataset:
learning, kill-and-resume, multi-device equivalence, divergence handling,
metrics files, plotting and argument errors."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sphcnn import cli
from sphcnn import config as configs
from training_fixtures import synthetic_dataset

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny_spin_classifier", "--dataset", "canonical", "--batch-size", "8"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> pathlib.Path:
    return synthetic_dataset(tmp_path_factory.mktemp("synthetic"))


def train_args(data_root, workdir, steps, *extra):
    return ["train", *TINY, "--data-dir", str(data_root), "--workdir", str(workdir), "--max-steps", str(steps),
            "--set", "eval_every=0", *extra]


def records(workdir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


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
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 60 and result["count"] == 60 and abs(result["accuracy"] - test["accuracy"]) < 1e-9


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
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    subprocess.run(_command(data_root, whole, steps), check=True, capture_output=True, env=env, timeout=600)
    process = subprocess.Popen(_command(data_root, killed, steps), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env)
    deadline = time.time() + 600
    while not (killed / "checkpoints" / "20").exists():  # killed between the checkpoints at 20 and 30
        assert process.poll() is None, process.stdout.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "checkpoints" / str(steps)).exists()
    resumed = subprocess.run(_command(data_root, killed, steps), check=True, capture_output=True, env=env,
                             timeout=600)
    assert "resuming from the checkpoint at step" in resumed.stdout.decode()
    final = {r["split"]: r for r in records(whole)}
    again = {r["split"]: r for r in records(killed)}
    for split in ("train", "test"):
        for key in ("loss", "accuracy"):
            np.testing.assert_allclose(again[split][key], final[split][key], rtol=1e-6, atol=1e-7)


def _train_in_process(data_root, workdir, devices):
    code = (
        "import sys, json, jax, numpy as np; sys.path.insert(0, %r)\n"
        "from sphcnn import config as configs, trainer, checkpointing\n"
        "cfg = configs.resolve('original', data_dir=%r, model='tiny_spin_classifier', dataset='canonical',\n"
        "                      batch_size=8, max_steps=6, eval_every=0, log_every=3, checkpoint_every=6)\n"
        "result = trainer.train(cfg, __import__('pathlib').Path(%r))\n"
        "print(json.dumps({'devices': jax.device_count(), **result}))\n"
    ) % (str(ROOT / "tests"), str(data_root), str(workdir))
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env, timeout=600)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


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
    from sphcnn import trainer
    from sphcnn.checkpointing import Checkpoints

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

        run = trainer.build_run(config, 16, 30)
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
     r"'kernel_init' must be one of 'unit_energy', 'original', got 'he'"),
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
    import re

    assert re.search(pattern, captured.err), captured.err


def test_resuming_with_another_config_is_refused(data_root, tmp_path, capsys):
    workdir = tmp_path / "run"
    assert cli.main(train_args(data_root, workdir, 2)) == 0
    assert cli.main(train_args(data_root, workdir, 2, "--set", "learning_rate=0.5")) == 2
    assert "different config" in capsys.readouterr().err


@pytest.mark.parametrize("preset", sorted(configs.PRESETS))
def test_presets_train_on_datasets_that_the_demo_can_build(preset):
    from sphcnn.data.dataset import NAMED_DATASETS

    config = configs.resolve(preset)
    assert config.dataset in NAMED_DATASETS
    assert (config.test_dataset or config.dataset) in NAMED_DATASETS
