"""Where training metrics go: the console (a progress line), a JSONL file and
TensorBoard event files, all written together by MetricsSink. A resumed run
drops the JSONL records after the step it resumes from, so that a reader sees
every (step, split) once; TensorBoard discards the older events of a step
written again itself (it purges events at or after a step that reappears). A
record is written whole: a SIGINT or SIGTERM meanwhile is held until it is
(sphcnn.train.interrupts.deferred)."""

from __future__ import annotations

import json
import pathlib
import sys
import time

from sphcnn.train import interrupts
from sphcnn.train.tensorboard import EventWriter


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_line(step: int, total: int, values: dict, started: float, first_step: int,
                  headline: str | None = None) -> str:
    """'step 1200/22500 [##------------] 5% loss 0.123 accuracy 96.90% lr 1.0e-03 5.4 steps/s ETA 1h02m'
    (headline: the task's description of the values, after the loss)."""
    width = 20
    filled = int(width * step / max(total, 1))
    parts = [f"step {step}/{total}", "[" + "#" * filled + "-" * (width - filled) + "]", f"{100 * step / total:3.0f}%"]
    if "loss" in values:
        parts.append(f"loss {values['loss']:.4f}")
    if headline:
        parts.append(headline)
    if "learning_rate" in values:
        parts.append(f"lr {values['learning_rate']:.2e}")
    if "steps_per_s" in values:
        parts.append(f"{values['steps_per_s']:.1f} steps/s {values['examples_per_s']:.0f} ex/s")
    done = step - first_step
    if done > 0 and step < total:
        parts.append("ETA " + duration((time.perf_counter() - started) / done * (total - step)))
    return " ".join(parts)


def read_records(path: pathlib.Path) -> list[dict]:
    """The records of a metrics.jsonl (none if it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate(path: pathlib.Path, step: int) -> None:
    """Keep the records of steps <= step (rewritten atomically)."""
    records = read_records(path)
    kept = [r for r in records if r["step"] <= step]
    if len(kept) == len(records):
        return
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(json.dumps(r) + "\n" for r in kept))
    partial.replace(path)


class MetricsSink:
    """metrics.jsonl and tensorboard/ in the work directory, and the console.
    With enabled=False (every process but the first of a multi-host run) it
    writes nothing. keep_until: the step a run starts or resumes from (records
    after it, e.g. of a run stopped before its first checkpoint, are dropped
    first), None to keep every record."""

    def __init__(self, workdir: pathlib.Path, stream=None, enabled: bool = True, keep_until: int | None = None):
        self.enabled = enabled
        self.stream = stream or sys.stdout
        if enabled:
            if keep_until is not None:
                _truncate(workdir / "metrics.jsonl", keep_until)
            self.jsonl = open(workdir / "metrics.jsonl", "a")
            self.tensorboard = EventWriter(workdir / "tensorboard")

    def write(self, step: int, split: str, values: dict[str, float], console: str | None = None) -> None:
        if not self.enabled:
            return
        record = {"step": step, "split": split, "time": time.time(), **values}
        with interrupts.deferred():
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
