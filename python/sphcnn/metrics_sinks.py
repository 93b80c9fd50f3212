"""Where training metrics go: the console (a progress line), a JSONL file and
TensorBoard event files, all written together by MetricsSink."""

from __future__ import annotations

import json
import pathlib
import sys
import time

from sphcnn.tensorboard import EventWriter


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_line(step: int, total: int, values: dict, started: float, first_step: int) -> str:
    """'step 1200/22500 [##------------] 5% loss 0.123 acc 96.9% lr 1.0e-03 5.4 steps/s ETA 1h02m'."""
    width = 20
    filled = int(width * step / max(total, 1))
    parts = [f"step {step}/{total}", "[" + "#" * filled + "-" * (width - filled) + "]", f"{100 * step / total:3.0f}%"]
    if "loss" in values:
        parts.append(f"loss {values['loss']:.4f}")
    if "accuracy" in values:
        parts.append(f"acc {100 * values['accuracy']:.2f}%")
    if "learning_rate" in values:
        parts.append(f"lr {values['learning_rate']:.2e}")
    if "steps_per_s" in values:
        parts.append(f"{values['steps_per_s']:.1f} steps/s {values['examples_per_s']:.0f} ex/s")
    done = step - first_step
    if done > 0 and step < total:
        parts.append("ETA " + _duration((time.perf_counter() - started) / done * (total - step)))
    return " ".join(parts)


class MetricsSink:
    """metrics.jsonl and tensorboard/ in the work directory, and the console.
    With enabled=False (every process but the first of a multi-host run) it
    writes nothing."""

    def __init__(self, workdir: pathlib.Path, stream=None, enabled: bool = True):
        self.enabled = enabled
        self.stream = stream or sys.stdout
        if enabled:
            self.jsonl = open(workdir / "metrics.jsonl", "a")
            self.tensorboard = EventWriter(workdir / "tensorboard")

    def write(self, step: int, split: str, values: dict[str, float], console: str | None = None) -> None:
        if not self.enabled:
            return
        record = {"step": step, "split": split, "time": time.time(), **values}
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        self.tensorboard.scalars(step, {f"{split}/{k}": v for k, v in values.items()})
        if console:
            print(console, file=self.stream, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        self.jsonl.close()
        self.tensorboard.close()
