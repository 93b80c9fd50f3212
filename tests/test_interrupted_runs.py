"""Ctrl-C (SIGINT) and SIGTERM in `sphcnn train` and `sphcnn eval`: one line on
stderr with what was saved, the step and the command that resumes, exit status
130 or 143, no traceback (unless --debug); the same command resumes and
finishes with the final evaluations recorded.

The signal is sent at a chosen phase and step by the loop itself
(SPHCNN_TEST_SIGNAL_AT, sphcnn.train.interrupts.signal_for_tests) in commands
run as subprocesses on the small synthetic datasets of the training tests.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys

import pytest

from qm9_fixtures import training_dataset
from run_helpers import records
from sphcnn import cli
from sphcnn.train import interrupts
from training_fixtures import synthetic_dataset

STEPS = 20


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> pathlib.Path:
    return synthetic_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def qm9_dir(tmp_path_factory) -> pathlib.Path:
    return training_dataset(tmp_path_factory.mktemp("qm9"))


def mnist_args(data_root: pathlib.Path, workdir: pathlib.Path) -> list[str]:
    """A tiny spherical MNIST run of STEPS steps: validation at 10 and 20, the test at 20, checkpoints every 5."""
    return ["train", "--model", "tiny_spin_classifier", "--dataset", "canonical", "--batch-size", "8",
            "--data-dir", str(data_root), "--workdir", str(workdir), "--max-steps", str(STEPS),
            "--set", "combine_train_validation=false", "--set", "eval_every=10", "--set", "log_every=5",
            "--set", "checkpoint_every=5", "--set", "learning_rate=2e-2", "--set", "warmup_epochs=0.2"]


def qm9_args(data_dir: pathlib.Path, workdir: pathlib.Path) -> list[str]:
    """A tiny QM9 run of 4 steps: validation at 2 and at its end (the default QM9 run evaluates no test)."""
    return ["train", "--task", "qm9", "--preset", "demo_cpu", "--data-dir", str(data_dir), "--workdir", str(workdir),
            "--batch-size", "8", "--max-steps", "4", "--set", "trim_multiple=8", "--set", "eval_every=2",
            "--set", "log_every=2", "--set", "checkpoint_every=2"]


def sphcnn(args: list[str], signal_at: str | None = None) -> subprocess.CompletedProcess:
    """Run `sphcnn ARGS` in a subprocess, with SPHCNN_TEST_SIGNAL_AT=signal_at if given, and SIGINT and SIGTERM
    at their default dispositions, as in a terminal (a test run started in the background of a shell script
    inherits SIGINT ignored, which the command rightly keeps)."""
    env = {k: v for k, v in os.environ.items() if k not in (interrupts.TEST_SIGNAL_VARIABLE, "MAKELEVEL")}
    if signal_at is not None:
        env[interrupts.TEST_SIGNAL_VARIABLE] = signal_at
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run([sys.executable, "-c", DEFAULT_SIGNALS_THEN_SPHCNN, *args], capture_output=True, text=True,
                          env=env, timeout=600)


# `python -m sphcnn.cli ARGS` with SIGINT and SIGTERM reset first (the dispositions survive exec).
DEFAULT_SIGNALS_THEN_SPHCNN = """
import os, signal, sys
for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, signal.SIG_DFL)
os.execv(sys.executable, [sys.executable, "-m", "sphcnn.cli", *sys.argv[1:]])
"""


def assert_interrupted(done: subprocess.CompletedProcess, status: int, what: str, args: list[str],
                       again: str = "resume with the same command", progress: int = 0) -> None:
    """The command exited with `status`, no traceback, its stderr `progress` lines of progress and then one
    line: `what` (a regular expression) followed by the command that runs it again."""
    assert done.returncode == status, (done.returncode, done.stderr[-3000:])
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr and len(lines) == progress + 1, done.stderr[-3000:]
    expected = what + re.escape(f"; {again}: {shlex.join(['sphcnn', *args])}")
    assert re.fullmatch(expected, lines[-1]), (expected, done.stderr)


def assert_recorded_once(workdir: pathlib.Path, expected: list[tuple[int, str]]) -> None:
    """metrics.jsonl holds each (step, split) once, the evaluations exactly `expected` in order."""
    keys = [(r["step"], r["split"]) for r in records(workdir)]
    assert len(keys) == len(set(keys)), keys
    assert [k for k in keys if k[1] in ("validation", "test")] == expected, keys


@pytest.fixture(scope="module")
def whole_run(data_root, tmp_path_factory) -> pathlib.Path:
    """The tiny MNIST run uninterrupted."""
    workdir = tmp_path_factory.mktemp("whole") / "run"
    done = sphcnn(mnist_args(data_root, workdir))
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


@pytest.mark.parametrize("signal_at, status, what, resumed_at", [
    # Ctrl-C between two checkpoints: the state of step 7 is saved.
    ("train:7", 130, r"interrupted by SIGINT during training after step 7 of 20; saved a checkpoint at step 7", 7),
    # SIGTERM during the validation at step 10, after its checkpoint: the rerun validates step 10 first.
    ("validation:10:TERM", 143, r"interrupted by SIGTERM during the validation at step 10; the last checkpoint is at "
                                r"step 10; the validation runs again on resume", 10),
    # Ctrl-C during the final test: the run is not finished until its test is recorded.
    ("test:20", 130, r"interrupted by SIGINT during the test at step 20; the last checkpoint is at step 20; the test "
                     r"runs again on resume", 20),
    # Ctrl-C while the checkpoint of step 15 is written: held until it is complete, which the rerun restores.
    ("checkpoint:15", 130, r"interrupted by SIGINT during training after step 15 of 20; the last checkpoint is at "
                           r"step 15", 15),
], ids=["training", "validation-SIGTERM", "test", "checkpoint-write"])
def test_an_interrupted_mnist_run_resumes_and_finishes(data_root, whole_run, tmp_path, signal_at, status, what,
                                                       resumed_at):
    args = mnist_args(data_root, tmp_path / "run")
    assert_interrupted(sphcnn(args, signal_at), status, "sphcnn train: " + what, args)
    rerun = sphcnn(args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming from the checkpoint at step {resumed_at}\n" in rerun.stdout
    summary = (r"; validation accuracy \d+\.\d\d% on canonical spherical MNIST( \(\d+/40\))?; test accuracy "
               r"\d+\.\d\d% on canonical spherical MNIST( \(\d+/60\))?$")
    assert re.search(summary, rerun.stdout.strip()), rerun.stdout[-2000:]
    assert_recorded_once(tmp_path / "run", [(10, "validation"), (20, "validation"), (20, "test")])
    final = {r["split"]: r for r in records(tmp_path / "run") if r["step"] == STEPS}
    expected = {r["split"]: r for r in records(whole_run) if r["step"] == STEPS}
    for split in ("validation", "test"):  # the resumed state is the uninterrupted one
        assert final[split]["accuracy"] == expected[split]["accuracy"]
        assert abs(final[split]["loss"] - expected[split]["loss"]) <= 1e-5 * abs(expected[split]["loss"])


def test_a_qm9_run_interrupted_in_its_final_validation_is_not_finished(qm9_dir, tmp_path):
    args = qm9_args(qm9_dir, tmp_path / "run")
    what = (r"sphcnn train: interrupted by SIGINT during the validation at step 4; the last checkpoint is at step 4; "
            r"the validation runs again on resume")
    assert_interrupted(sphcnn(args, "validation:4"), 130, what, args)
    assert_recorded_once(tmp_path / "run", [(2, "validation")])
    rerun = sphcnn(args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from the checkpoint at step 4\n" in rerun.stdout and "the run is finished" not in rerun.stdout
    mae = r"; validation H MAE \d+\.\d\d meV on QM9 H \(split cormorant\)$"
    assert re.search(mae, rerun.stdout.strip()), rerun.stdout[-2000:]
    assert_recorded_once(tmp_path / "run", [(2, "validation"), (4, "validation")])
    again = sphcnn(args)  # now finished: its recorded validation is reported
    assert again.returncode == 0 and "sphcnn: the run is finished" in again.stdout
    assert re.search(mae, again.stdout.strip()), again.stdout[-2000:]


def test_an_interrupted_eval_says_what_it_evaluated(whole_run):
    args = ["eval", "--workdir", str(whole_run), "--split", "test"]
    what = r"sphcnn eval: interrupted by SIGINT during the evaluation of the checkpoint at step 20 on the test split"
    done = sphcnn(args, "test:20")
    assert_interrupted(done, 130, what, args, again="run the same command again", progress=1)
    assert done.stderr.startswith(f"evaluating the checkpoint at step 20 of {whole_run} on 60 test images ...\n")
    assert done.stdout == ""


def test_debug_shows_the_traceback_before_the_line(data_root, tmp_path):
    args = ["--debug", *mnist_args(data_root, tmp_path / "run")]
    done = sphcnn(args, "train:3:TERM")
    assert done.returncode == 143
    assert done.stderr.startswith("Traceback") and "sphcnn.train.interrupts.Interrupted" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("sphcnn train: interrupted by SIGTERM during training after step 3 "
                                                   "of 20; saved a checkpoint at step 3; resume with the same command: "
                                                   "sphcnn --debug train ")


def test_the_demo_started_by_make_is_resumed_by_make(tmp_path, capsys, monkeypatch):
    from sphcnn.tasks.mnist.commands import NAMED_DATASETS
    from sphcnn.train import loop

    for name in NAMED_DATASETS:  # the demo finds its datasets built
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "metadata.json").write_text("{}")

    def interrupted(*args, **kwargs):
        raise interrupts.Interrupted(signal.SIGINT, "during training after step 3 of 1250; saved a checkpoint at "
                                                    "step 3")

    monkeypatch.setattr(loop, "train", interrupted)
    args = ["demo", "--data-dir", str(tmp_path / "data"), "--workdir", str(tmp_path / "run")]
    monkeypatch.setenv("MAKELEVEL", "1")
    assert cli.main(args) == 130
    assert capsys.readouterr().err == ("sphcnn demo: interrupted by SIGINT during training after step 3 of 1250; saved "
                                       "a checkpoint at step 3; resume with the same command: make demo\n")
    monkeypatch.delenv("MAKELEVEL")
    assert cli.main(args) == 130
    assert capsys.readouterr().err.endswith(f"; resume with the same command: {shlex.join(['sphcnn', *args])}\n")
