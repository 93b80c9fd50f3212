"""The training and evaluation loops behind `sphcnn train` and `sphcnn eval`,
for any task (:mod:`sphcnn.tasks`: data, model, loss and metrics).

A work directory holds config.json (the resolved config), history.jsonl (one
line per start, resume or overwrite, with the config changes), checkpoints/
(Orbax), metrics.jsonl and tensorboard/. Everything a run needs is checked
before anything is written (the work directory is a writable directory or can
be created, the datasets exist and are intact, the batch size fits the data and
the devices, a saved config agrees on the fields that define the run), and
config.json is written, atomically, only when training starts: a failed first
command never blocks its work directory.

Training resumes from the latest checkpoint; batches are a function of (seed,
step), so the data order resumes too, and metrics records after the restored
step are dropped so that every (step, split) appears once. The run's length
(max_steps, else num_epochs) may change on resume (config.RESUMABLE_FIELDS);
the learning-rate schedule always spans the current length. A finished run
(its latest checkpoint at its last step) is not trained again: the command
prints its summary. The train state is checked for NaN and infinities at every
logging and checkpoint step: a non-finite loss stops training with
TrainingDiverged and no checkpoint of the bad state is written.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import pathlib
import shutil
import sys
import tempfile
import time

import jax
import numpy as np

from sphcnn.errors import RunError
from sphcnn.tasks import Task, task_for
from sphcnn.tasks.batches import Prefetcher, evaluation_batches
from sphcnn.train import config as configs
from sphcnn.train import parallel, runtime
from sphcnn.train import step as training
from sphcnn.train.checkpoints import Checkpoints
from sphcnn.train.metrics import MetricsSink, duration, progress_line, read_records
from sphcnn.train.optimizers import learning_rate_schedule, make_optimizer
# What a work directory holds (removed by --overwrite, nothing else is).
WORKDIR_ENTRIES = ("config.json", "history.jsonl", "checkpoints", "metrics.jsonl", "tensorboard")


class TrainingDiverged(RunError):
    """The loss or the parameters became NaN or infinite."""


@dataclasses.dataclass
class Run:
    """A model with its optimizer and state on a device mesh, and its jitted
    evaluation-mode prediction (built once, so validation passes reuse one
    compilation)."""

    config: configs.TrainConfig
    task: Task
    mesh: jax.sharding.Mesh
    model: training.Model
    optimizer: object
    schedule: object
    state: training.TrainState
    predict: object
    metrics: object


def total_steps(config: configs.TrainConfig, steps_per_epoch: int) -> int:
    """The run's length: max_steps if set, else num_epochs of steps."""
    return config.max_steps or int(math.ceil(config.num_epochs * steps_per_epoch))


def build_run(config: configs.TrainConfig, task: Task, fields: dict, steps_per_epoch: int, length: int) -> Run:
    """Model (for examples like `fields`), optimizer (with its schedule over
    `length` steps) and initial state of a config's task."""
    mesh = parallel.device_mesh()
    parallel.check_batch(config.batch_size, mesh)
    schedule = learning_rate_schedule(config.learning_rate * config.batch_size / 32, steps_per_epoch,
                                      config.warmup_epochs, length / steps_per_epoch)
    optimizer = make_optimizer(schedule, config.weight_decay)
    network = task.build_model(config, fields, axis_name=parallel.AXIS)
    model, state = training.split(network, optimizer)
    return Run(config, task, mesh, model, optimizer, schedule, parallel.replicate(state, mesh),
               parallel.predict_fn(model, task, mesh), parallel.metrics_fn(model, task, mesh))


def check_workdir(workdir: pathlib.Path) -> pathlib.Path:
    """The work directory, checked to be a directory (or creatable) that this
    process can write to; nothing is created."""
    workdir = pathlib.Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"--workdir {workdir} is a file; expected a directory (a new one, or the work directory of "
                         "a run to resume)")
    existing = workdir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--workdir {workdir} cannot be created: {existing} is a file")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".sphcnn-write-test-"):
            pass
    except OSError as err:
        raise OSError(err.errno, f"cannot write to {existing} ({err.strerror}); choose another --workdir or make it "
                                 "writable") from None
    return workdir


def _describe(changes: dict) -> str:
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())


def _compare_with_saved(config: configs.TrainConfig, workdir: pathlib.Path) -> dict | None:
    """None for a new run, else the resumable fields that changed (an error when
    a field that defines the run changed)."""
    saved = workdir / "config.json"
    if not saved.exists():
        return None
    run_changes, changes = configs.differences(configs.load(saved), config)
    if run_changes:
        raise ValueError(
            f"{workdir} holds a run that differs in fields that define it ({_describe(run_changes)}; saved -> "
            "requested); train in a new --workdir, or pass --overwrite to delete this run and start again "
            f"(only {', '.join(configs.RESUMABLE_FIELDS)} may change on resume)")
    return changes


def _overwrite(workdir: pathlib.Path) -> None:
    for name in WORKDIR_ENTRIES:
        entry = workdir / name
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.exists():
            entry.unlink()


def _start(config: configs.TrainConfig, workdir: pathlib.Path, event: str, step: int, changes: dict) -> None:
    """Write config.json (atomically) and a history line: training starts now."""
    workdir.mkdir(parents=True, exist_ok=True)
    configs.save(config, workdir / "config.json")
    line = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "event": event,
            "step": step, "changes": {k: list(v) for k, v in changes.items()}}
    with open(workdir / "history.jsonl", "a") as history:
        history.write(json.dumps(line) + "\n")


def evaluate(run: Run, state: training.TrainState, fields: dict, progress=None) -> dict:
    """The task's metrics and mean loss over every example of a split (eval
    mode), summed in float64, with the example count. progress(done, total):
    called after each batch with the examples done."""
    count = len(next(iter(fields.values())))
    sums: dict[str, float] = {}
    total = 0.0
    for batch in evaluation_batches(fields, run.config.batch_size, run.task.prepare):
        values = parallel.to_host(run.metrics(state, parallel.shard_batch(batch, run.mesh)))
        weights = batch["weights"].astype(np.float64)
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + float(np.sum(np.asarray(value, np.float64) * weights))
        total += float(np.sum(weights))
        if progress is not None:
            progress(int(total), count)
    return {**{name: value / total for name, value in sums.items()}, "count": int(total)}


def _metric_values(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "count"}


def evaluation_progress(label: str, stream, unit: str, every: float = 10.0):
    """A progress callback for evaluate() that prints '<label>: 3000/10000 <unit>,
    ETA 40s' at most every `every` seconds, and the last batch."""
    began = time.perf_counter()
    last = [began]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - last[0] < every:
            return
        last[0] = now
        rate = done / max(now - began, 1e-9)
        tail = f", ETA {duration((total - done) / rate)}" if done < total else f" in {duration(now - began)}"
        print(f"  {label}: {done}/{total} {unit}{tail}", file=stream, flush=True)

    return report


def _check_finite(state: training.TrainState, loss: float, step: int, checkpoints: Checkpoints) -> None:
    if not (math.isfinite(loss) and bool(parallel.all_finite(state.params))):
        last = checkpoints.latest_step()
        raise TrainingDiverged(
            f"training diverged: the loss is {loss} at step {step} (NaN or infinite); stopped without saving. "
            f"The last good checkpoint ({'step ' + str(last) if last is not None else 'none'}) is intact; "
            "lower the learning rate (--set learning_rate=...) and resume or restart.")


def _test(run: Run, state, config: configs.TrainConfig, test: dict, sink: MetricsSink, step: int) -> dict:
    name = config.test_dataset or config.dataset
    if sink.enabled:
        print(f"testing on the {len(next(iter(test.values())))} test {run.task.unit} of {name} ...", file=sink.stream,
              flush=True)
    progress = evaluation_progress("test", sink.stream, run.task.unit) if sink.enabled else None
    result = evaluate(run, state, test, progress)
    sink.write(step, "test", _metric_values(result))
    return {f"test_{k}": v for k, v in result.items()}


def _finished_summary(workdir: pathlib.Path, step: int) -> dict:
    """The summary of a run finished at `step`, from its metrics records."""
    summary = {"steps": step, "finished_before": True}
    for record in read_records(workdir / "metrics.jsonl"):
        if record["step"] == step and record["split"] == "timing":
            summary.update(startup_seconds=record["startup_seconds"], train_seconds=record["train_seconds"])
        if record["step"] == step and record["split"] == "test":
            summary.update({f"test_{k}": v for k, v in record.items() if k not in ("step", "split", "time")})
    return summary


def train(config: configs.TrainConfig, workdir: pathlib.Path, stream=None, overwrite: bool = False) -> dict:
    """Train (or resume, or extend) the run of `config` in `workdir`; returns
    steps, the test metrics (test_<metric>, test_loss, test_count) if
    config.eval_on_test, and the timing:
    startup_seconds (from this call to the end of the first step: data loading,
    model initialization, checkpoint restore, compilation and that step) and
    train_seconds (every later step, to the end of the last one). A run already
    finished returns its recorded summary with finished_before = True (and runs
    the test pass only if it has none). overwrite: delete the work directory's
    run first."""
    entered = time.perf_counter()
    cache_at_entry = runtime.cache_counts()
    stream = stream or sys.stdout
    chief = parallel.is_chief()
    workdir = check_workdir(workdir)
    task = task_for(config)
    train_data = task.training_data(config)
    parallel.check_batch(config.batch_size, parallel.device_mesh())
    test = task.evaluation_fields(config, "test") if config.eval_on_test else None
    validation = None
    if config.eval_every and not config.combine_train_validation:
        validation = task.evaluation_fields(config, "validation")
        if config.validation_count:
            validation = {name: values[: config.validation_count] for name, values in validation.items()}
    length = total_steps(config, train_data.steps_per_epoch)
    target = min(length, config.stop_at_step) if config.stop_at_step else length
    changes = None if overwrite else _compare_with_saved(config, workdir)
    if overwrite and chief:
        _overwrite(workdir)

    checkpoints = Checkpoints(workdir, config.keep_checkpoints) if (workdir / "checkpoints").exists() else None
    latest = checkpoints.latest_step() if checkpoints is not None else None
    done = latest or 0
    if done > target:
        checkpoints.close()
        raise ValueError(f"{workdir} holds a run at step {done}, past the requested end at step {target}; ask for "
                         "a longer run (num_epochs, max_steps, stop_at_step), or pass --overwrite to start again")
    if latest is not None and latest >= target and not changes:
        checkpoints.close()
        summary = _finished_summary(workdir, latest)
        if test is None or f"test_{task.metrics[0]}" in summary:
            return summary
    if chief:
        event = "overwrite" if overwrite else ("start" if changes is None else "resume")
        _start(config, workdir, event, done, changes or {})
        if changes:
            print(f"resuming at step {done} of {length} with {_describe(changes)}"
                  + (f" (the learning-rate schedule now spans {length} steps)"
                     if {"num_epochs", "max_steps"} & set(changes) else ""), file=stream, flush=True)
    if checkpoints is None:
        checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    run = build_run(config, task, train_data.fields, train_data.steps_per_epoch, length)
    sink = MetricsSink(workdir, stream, enabled=chief, keep_until=latest)
    state = run.state
    if latest is not None:
        state = parallel.replicate(checkpoints.restore(state), run.mesh)
        if sink.enabled:
            print(f"resuming from the checkpoint at step {int(state.step)}", file=stream, flush=True)
    step_fn = parallel.train_step_fn(run.model, run.optimizer, task, config.seed, run.mesh)
    first = step = int(state.step)
    started = window_start = time.perf_counter()
    window_first, sums, startup_seconds, cache = first, None, None, None
    steady_from = started
    if sink.enabled and first < target:
        print(f"training steps {first + 1} to {target} of {length}; compiling the training step first "
              "(the first step waits for XLA's compilation)", file=stream, flush=True)
    batches = Prefetcher(train_data.iterate(first, target - first))
    try:
        for batch in batches:
            state, metrics = step_fn(state, parallel.shard_batch(batch, run.mesh))
            step += 1
            if startup_seconds is None:
                jax.block_until_ready(state)
                startup_seconds = time.perf_counter() - entered
                steady_from = time.perf_counter()
                cache = {k: v - cache_at_entry[k] for k, v in runtime.cache_counts().items()}
                if sink.enabled:
                    print(f"first step done {duration(startup_seconds)} after start (data, initialization, "
                          f"compilation: {cache['hits']} of {cache['hits'] + cache['misses']} cacheable "
                          "compilations loaded from the persistent cache)", file=stream, flush=True)
            sums = metrics if sums is None else jax.tree.map(lambda a, b: a + b, sums, metrics)
            log_now = step % config.log_every == 0 or step == target
            save_now = step % config.checkpoint_every == 0 or step == target
            if log_now or save_now:
                values = {k: float(v) / (step - window_first) for k, v in jax.device_get(sums).items()}
                _check_finite(state, values["loss"], step, checkpoints)
            if log_now:
                elapsed = time.perf_counter() - window_start
                values["learning_rate"] = float(run.schedule(step))
                values["steps_per_s"] = (step - window_first) / elapsed
                values["examples_per_s"] = values["steps_per_s"] * config.batch_size
                line = progress_line(step, target, values, started, first, task.describe(values))
                sink.write(step, "train", values, line)
                window_start, window_first, sums = time.perf_counter(), step, None
            if save_now:
                checkpoints.save(state)
            if validation is not None and (step % config.eval_every == 0 or step == target):
                result = evaluate(run, state, validation,
                                  evaluation_progress("validation", stream, task.unit) if sink.enabled else None)
                sink.write(step, "validation", _metric_values(result),
                           f"  validation: {task.describe(result)} loss {result['loss']:.4f}")
    finally:
        batches.close()
    jax.block_until_ready(state)
    ended = time.perf_counter()
    if startup_seconds is None:
        startup_seconds, steady_from = ended - entered, ended
    summary = {"steps": step}
    if step > first:
        summary.update(startup_seconds=startup_seconds, train_seconds=ended - steady_from)
        if cache is not None:
            summary.update(compilation_cache_hits=cache["hits"], compilation_cache_misses=cache["misses"])
        sink.write(step, "timing", {k: summary[k] for k in ("startup_seconds", "train_seconds",
                                                            "compilation_cache_hits", "compilation_cache_misses")
                                    if k in summary})
    else:
        summary.update(_finished_summary(workdir, step))
    if test is not None and step == length and (step > first or f"test_{task.metrics[0]}" not in summary):
        summary.update(_test(run, state, config, test, sink, step))
    sink.close()
    checkpoints.close()
    return summary


def _restored_run(workdir: pathlib.Path, config: configs.TrainConfig, fields: dict, step: int | None = None):
    """(run, state, step) of a work directory's checkpoint at `step` (default:
    the latest), for examples like `fields`."""
    task = task_for(config)
    checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    available = checkpoints.all_steps()
    if not available:
        checkpoints.close()
        raise ValueError(f"{workdir} has no checkpoint yet")
    if step is not None and step not in available:
        checkpoints.close()
        raise ValueError(f"{workdir} has no checkpoint at step {step}; available steps: "
                         f"{', '.join(map(str, available))}")
    run = build_run(config, task, fields, steps_per_epoch=1, length=1)
    state = parallel.replicate(checkpoints.restore(run.state, step), run.mesh)
    checkpoints.close()
    return run, state


def _saved_config(workdir: pathlib.Path, data_dir: str | None = None) -> configs.TrainConfig:
    saved = pathlib.Path(workdir) / "config.json"
    if not saved.exists():
        raise ValueError(f"{workdir} has no config.json; is it a `sphcnn train` work directory?")
    config = configs.load(saved)
    return config if data_dir is None else dataclasses.replace(config, data_dir=str(data_dir))


def evaluate_workdir(workdir: pathlib.Path, split: str, dataset: str | None = None, step: int | None = None,
                     data_dir: str | None = None, task: str | None = None) -> dict:
    """Evaluate the latest (or a given) checkpoint of a work directory on a split
    of its test dataset (or `dataset`), with the data under `data_dir` (default:
    the run's); `task`, if given, must be the run's."""
    config = _saved_config(workdir, data_dir)
    if task is not None and task != config.task:
        raise ValueError(f"{workdir} holds a {config.task} run, not a {task} one")
    fields = task_for(config).evaluation_fields(config, split, dataset)
    run, state = _restored_run(workdir, config, fields, step)
    return {**evaluate(run, state, fields), "step": int(state.step), "split": split}


def model_outputs(workdir: pathlib.Path, fields: dict) -> np.ndarray:
    """The outputs of the latest checkpoint of a work directory (eval mode) on
    the examples `fields` (name -> array (count, ...), the task's fields)."""
    config = _saved_config(workdir)
    run, state = _restored_run(workdir, config, fields)
    outputs = [parallel.to_host(run.predict(state, parallel.shard_batch(batch, run.mesh)))
               for batch in evaluation_batches(fields, config.batch_size, run.task.prepare)]
    return np.concatenate(outputs)[: len(next(iter(fields.values())))]
