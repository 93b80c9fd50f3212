"""The summary table of benchmarks/gpu_suite.sh.

    python -m benchmarks.suite_summary STATUS_TSV OUT

STATUS_TSV: one line per stage, "name<TAB>status<TAB>seconds" (status: ok,
failed rc N, timeout after N s, skipped: why). OUT: the suite's output folder,
read for the headline figures of each stage: results.jsonl (the benchmarks'
JSON records, each with its "stage"), tests.log (pytest) and stages.log (every
stage's output under a "===== stage" title). Prints one row per stage
(continuation lines where a stage has several figures) and writes the same
text to OUT/summary.txt.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

PYTEST_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)")


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def _records(out: Path, stage: str) -> list[dict]:
    """The JSON records of `stage` in OUT/results.jsonl (other lines ignored)."""
    records = []
    for line in _lines(out / "results.jsonl"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("stage") == stage:
            records.append(record)
    return records


def _section(out: Path, stage: str) -> list[str]:
    """The lines of stages.log under the title of `stage`."""
    inside, found = False, []
    for line in _lines(out / "stages.log"):
        if line.startswith("===== "):
            inside = line[6:].strip() == stage
        elif inside:
            found.append(line)
    return found


def build_headline(out: Path) -> list[str]:
    """The backends line and the CUDA versions line the build check prints."""
    lines = _section(out, "build")
    found = [line for line in lines if line.startswith(("sphcnn_kernels backends", "CUDA runtime"))]
    return found or ["no backends line in stages.log"]


def smoke_headline(out: Path) -> list[str]:
    """Targets checked and the failed ones, with their error or reason."""
    records = _records(out, "smoke")
    checks = [r for r in records if "target" in r]
    if not checks:
        return ["no results of benchmarks.kernel_smoke"]
    failed = [r for r in checks if not r.get("ok")]
    worst = max((r["rel_err"] for r in checks if r.get("rel_err") is not None), default=None)
    lines = [f"{len(checks) - len(failed)} of {len(checks)} targets match the xla reference (worst relative "
             f"error {_figure(worst, '.1e')})"]
    return lines + [f"FAILED {r['target']}: {r.get('reason') or _figure(r.get('rel_err'), '.1e')}" for r in failed]


def tests_headline(out: Path) -> list[str]:
    """Counts of pytest's last summary line."""
    for line in reversed(_lines(out / "tests.log")):
        counts = {kind: int(count) for count, kind in PYTEST_COUNTS.findall(line)}
        if counts:
            errors = counts.get("error", 0) + counts.get("errors", 0)
            return [f"{counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, {errors} errors, "
                    f"{counts.get('skipped', 0)} skipped ({line.strip('= ')})"]
    return ["no pytest summary line in tests.log"]


def transforms_headline(out: Path) -> list[str]:
    """Per case: forward/inverse ms of each backend (failures and skips named)."""
    cases: dict[str, list[str]] = {}
    for r in _records(out, "transforms"):
        entry = cases.setdefault(r["name"], [])
        if r["op"] == "forward":
            entry.append(f"{r['backend']} {r['ms']:.3f}")
        elif r["op"] == "inverse" and entry:
            entry[-1] += f"/{r['ms']:.3f}"
        elif r["op"] in ("failed", "skipped"):
            entry.append(f"{r['backend']} {r['op']}")
    if not cases:
        return ["no results of benchmarks.transforms"]
    return [f"{name} fwd/inv ms: {', '.join(entries)}" for name, entries in cases.items()]


def train_step_headline(out: Path) -> list[str]:
    records = [r for r in _records(out, "train_step") if r.get("name") == "train_step"]
    if not records:
        return ["no results of benchmarks.train_step"]
    return ["; ".join(f"batch {r['batch']}{'' if r.get('fused', True) else ' unfused'}: {r['steps_per_s']:.1f} "
                      f"steps/s (first step {r['first_step_s']:.1f} s cold, "
                      f"{_figure(r.get('first_step_warm_s'), '.1f')} s warm; {_figure(r.get('kernels_per_step'), '.0f')} "
                      f"kernels, busy {_figure(r.get('device_busy'), '.0%')}; {r['backend']})" for r in records)]


def grids_headline(out: Path) -> list[str]:
    """Per case: real fwd/inv ms of each backend, and ours / s2fft."""
    cases: dict[str, list[str]] = {}
    for r in _records(out, "grids"):
        entry = cases.setdefault(r["case"], [])
        if r.get("op") == "skipped":
            entry.append(f"{r.get('backend', r.get('peer'))} skipped")
        elif r.get("peer") == "s2fft":
            ratio = r.get("real_vs_s2fft")
            entry.append(f"s2fft {r['forward_ms']:.2f}/{r['inverse_ms']:.2f}"
                         + (f" (ours / s2fft {ratio[0]:.2f}/{ratio[1]:.2f})" if ratio else ""))
        elif r.get("real"):
            entry.append(f"{r['backend']} {r['forward_ms']:.2f}/{r['inverse_ms']:.2f}")
    if not cases:
        return ["no results of benchmarks.grids"]
    return [f"{name} real fwd/inv ms: {', '.join(entries)}" for name, entries in cases.items()]


def _figure(value, spec: str) -> str:
    """A figure of a record, or 'n/a' where the benchmark could not measure it."""
    return "n/a" if value is None else format(value, spec)


def _last_error(out: Path, stage: str) -> str:
    """The last line naming an error in the output of `stage` in stages.log."""
    found = [line.strip() for line in _section(out, stage) if "Error" in line]
    return found[-1][:160] if found else ""


def mnist_headline(out: Path) -> list[str]:
    records = _records(out, "mnist")
    if not records:
        error = _last_error(out, "mnist")
        return ["no results of mnist_gpu.sh" + (f"; {error}" if error else " (see stages.log)")]
    return [f"{r['name']}: test accuracy "
            + ", ".join(f"{acc:.4f} ({dataset})" for dataset, acc in r["test_accuracy"].items())
            + f"; train {r['train_seconds']:.1f} s, startup {r['startup_seconds']:.1f} s, {r['steps']} steps"
            for r in records]


def qm9_headline(out: Path) -> list[str]:
    """The dataset line of the data step and the step's speed."""
    found = [line for line in _section(out, "qm9") if line.startswith(("QM9Dataset(", "Error"))]
    lines = found[-1:] or ["no dataset line in stages.log"]
    records = [r for r in _records(out, "qm9") if r.get("name") == "train_step"]
    if not records:
        return lines + ["no results of benchmarks.train_step --task qm9"]
    return lines + [f"{r['model']} batch {r['batch']}, {r['atoms']} atoms: {r['steps_per_s']:.1f} steps/s, "
                    f"{r['examples_per_s']:.0f} molecules/s (first step {r['first_step_s']:.1f} s)" for r in records]


def qm9_train_headline(out: Path) -> list[str]:
    records = _records(out, "qm9_train")
    train = [r for r in records if r.get("split") == "train"]
    if not train:
        return ["no training records of sphcnn train --task qm9"]
    lines = [f"{train[-1]['step']} steps, last {train[-1]['steps_per_s']:.1f} steps/s, train MAE "
             f"{train[-1]['mae']:.1f}"]
    lines += [f"validation at step {r['step']}: MAE {r['mae']:.2f}" for r in records if r.get("split") == "validation"]
    return lines


HEADLINES = {"build": build_headline, "smoke": smoke_headline, "transforms": transforms_headline,
             "train_step": train_step_headline, "tests": tests_headline, "grids": grids_headline,
             "mnist": mnist_headline,
             "qm9": qm9_headline, "qm9_train": qm9_train_headline}


def _headline(stage: str, out: Path) -> list[str]:
    """The stage's headline lines; a record the headline cannot read is named, so
    that the table still prints."""
    if stage not in HEADLINES:
        return [""]
    try:
        return HEADLINES[stage](out)
    except (KeyError, TypeError, ValueError) as error:
        return [f"headline unavailable: {type(error).__name__}: {error} (see stages.log and results.jsonl)"]


def summary(status_tsv: Path, out: Path) -> str:
    """The summary table as text."""
    rows = [line.split("\t") for line in _lines(status_tsv) if line.strip()]
    width = max([len(r[1]) for r in rows] + [6])
    header = f"{'stage':<11} {'status':<{width}} {'seconds':>8}  headline"
    text = [header, "-" * max(len(header), 100)]
    for name, status, seconds in rows:
        figures = _headline(name, out)
        text.append(f"{name:<11} {status:<{width}} {float(seconds):>8.1f}  {figures[0]}")
        text += [f"{'':<11} {'':<{width}} {'':>8}  {line}" for line in figures[1:]]
    return "\n".join(text) + "\n"


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit("usage: python -m benchmarks.suite_summary STATUS_TSV OUT")
    status_tsv, out = Path(args[0]), Path(args[1])
    text = summary(status_tsv, out)
    (out / "summary.txt").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
