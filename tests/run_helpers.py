"""Helpers of the training tests: a run's metrics records, a command run to the
end and the same command killed after a checkpoint and run again, and training
in a fresh process with a number of CPU devices."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time


def records(workdir: pathlib.Path) -> list[dict]:
    """The records of a run's metrics.jsonl."""
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def whole_and_resumed(command, whole: pathlib.Path, killed: pathlib.Path, checkpoint: int, steps: int) -> str:
    """Run command(whole) to the end; start command(killed), kill it with SIGKILL
    once its checkpoint `checkpoint` exists (and before the last, `steps`), and
    run command(killed) again. Returns the stdout of the resumed run."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    subprocess.run(command(whole), check=True, capture_output=True, env=env, timeout=600)
    process = subprocess.Popen(command(killed), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 600
    while not (killed / "checkpoints" / str(checkpoint)).exists():
        assert process.poll() is None, process.stdout.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "checkpoints" / str(steps)).exists()
    return subprocess.run(command(killed), check=True, capture_output=True, env=env, timeout=600).stdout.decode()


def train_on_devices(workdir: pathlib.Path, devices: int, preset: str, **fields) -> dict:
    """Train configs.resolve(preset, **fields) in `workdir` in a fresh process with
    `devices` CPU devices; returns the summary of sphcnn.train.loop.train with
    'devices', the device count the process saw."""
    code = ("import json, pathlib, jax\n"
            "from sphcnn.train import config as configs, loop as trainer\n"
            f"cfg = configs.resolve({preset!r}, **{fields!r})\n"
            f"result = trainer.train(cfg, pathlib.Path({str(workdir)!r}))\n"
            "print(json.dumps({'devices': jax.device_count(), **result}))\n")
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env, timeout=600)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def assert_same_records(whole: pathlib.Path, resumed: pathlib.Path, metrics: tuple[str, ...], rtol: float,
                        atol: float = 0.0) -> None:
    """The resumed run's metrics file has the whole run's (step, split) records,
    each once (the records after the restored step were dropped), and its last
    train and test values of `metrics` match."""
    keys = [(r["step"], r["split"]) for r in records(resumed)]
    assert len(keys) == len(set(keys)), keys
    assert keys == [(r["step"], r["split"]) for r in records(whole)]
    final = {r["split"]: r for r in records(whole)}
    again = {r["split"]: r for r in records(resumed)}
    for split in ("train", "test"):
        for key in metrics:
            assert abs(again[split][key] - final[split][key]) <= atol + rtol * abs(final[split][key]), (split, key)
