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
the learning-rate schedule always spans the current length. One rule says
what is evaluated when, for every task (:class:`Evaluations`): validation every
eval_every steps and at the run's end, the test at its last step; a step is
finished only when the evaluations due at it are recorded, so a run resumed at
an unfinished step runs them first, and a finished run (its latest checkpoint
at its last step, its final evaluations recorded) is not trained again: the
command prints its summary. The train state is checked for NaN and infinities
at every logging and checkpoint step: a non-finite loss stops training with
TrainingDiverged and no checkpoint of the bad state is written.

A SIGINT or SIGTERM (under sphcnn.train.interrupts.handled(), as the command
line runs) stops a run between two steps or during an evaluation: the state,
if past the last checkpoint and finite, is saved as a checkpoint, the files are
closed, and interrupts.Interrupted says what ran and what was saved.
"""

from __future__ import annotations

import contextlib
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
from sphcnn.train import interrupts, parallel, runtime
from sphcnn.train import step as training
from sphcnn.train.checkpoints import CheckpointError, Checkpoints
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


def _example_count(fields: dict) -> int:
    return len(next(iter(fields.values())))


def evaluate(run: Run, state: training.TrainState, fields: dict, progress=None) -> dict:
    """The task's metrics and mean loss over every example of a split (eval
    mode), summed in float64, with the example count. progress(done, total):
    called after each batch with the examples done."""
    count = _example_count(fields)
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


def evaluation_progress(label: str, stream, unit: str, step: int, every: float = 10.0):
    """A progress callback for evaluate() that prints '<label>: 3000/10000 <unit>,
    ETA 40s' at most every `every` seconds, and the last batch.

    Args:
        label: the evaluation ('validation', 'test'); also the phase of the test
            hook (interrupts.signal_for_tests), which it calls after each batch.
        stream: where the lines go.
        unit: what an example is called ('images', 'molecules').
        step: the step of the evaluated state (for the test hook).
        every: the least number of seconds between two lines.

    Returns:
        report(done, total), to be called after each batch.
    """
    began = time.perf_counter()
    last = [began]

    def report(done: int, total: int) -> None:
        interrupts.signal_for_tests(label, step)
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


@dataclasses.dataclass(frozen=True)
class Evaluations:
    """What a run evaluates and when, one rule for every task: the validation
    split every eval_every steps and at the run's target step (its end, or
    stop_at_step), the test split at its last step. A step is finished only
    when every evaluation due at it is recorded in metrics.jsonl: a run resumed
    at an unfinished step (interrupted during an evaluation) runs the missing
    ones first, and a run is finished when its target step is."""

    fields: dict  # split -> examples (name -> array (count, ...)), for the splits the config evaluates
    eval_every: int
    target: int
    length: int

    def due(self, step: int) -> tuple[str, ...]:
        """The splits evaluated at `step`, in the order they run."""
        when = {"validation": lambda: step % self.eval_every == 0 or step == self.target,
                "test": lambda: step == self.length}
        return tuple(split for split in self.fields if when[split]())

    def missing(self, step: int, records: list[dict]) -> tuple[str, ...]:
        """The splits due at `step` that `records` (of metrics.jsonl) do not hold."""
        recorded = {record["split"] for record in records if record["step"] == step}
        return tuple(split for split in self.due(step) if split not in recorded)


def _evaluations(config: configs.TrainConfig, task: Task, target: int, length: int) -> Evaluations:
    """The evaluations of a config's run, their examples checked and loaded
    (validation: with eval_every and a held-out validation split, its first
    validation_count examples if set; test: with eval_on_test)."""
    fields = {}
    if config.eval_every and not config.combine_train_validation:
        validation = task.evaluation_fields(config, "validation")
        if config.validation_count:
            validation = {name: values[: config.validation_count] for name, values in validation.items()}
        fields["validation"] = validation
    if config.eval_on_test:
        fields["test"] = task.evaluation_fields(config, "test")
    return Evaluations(fields, config.eval_every, target, length)


@dataclasses.dataclass
class _Position:
    """Where a run is, for the line an interruption prints: its phase
    ('startup' until the first step is done, 'training', 'validation', 'test')
    and its train state (None until it is initialized or restored)."""

    phase: str = "startup"
    state: training.TrainState | None = None


def _record_evaluation(run: Run, state, split: str, evaluations: Evaluations, sink: MetricsSink, step: int,
                       position: _Position) -> dict:
    """Evaluate `split` at `step` and record it.

    Args:
        run, state: the model and its state at `step`.
        split: 'validation' or 'test' (one of evaluations.fields).
        evaluations: the run's evaluations (their examples).
        sink: where the record and the console lines go (a header before the
            test, progress lines, the result after a validation).
        step: the step of `state`.
        position: the run's position, whose phase is `split` meanwhile.

    Returns:
        {'<split>_<metric>': value} for the task's metrics, the loss and the count.
    """
    fields, task, config = evaluations.fields[split], run.task, run.config
    phase, position.phase = position.phase, split
    if split == "test" and sink.enabled:
        print(f"testing on the {_example_count(fields)} test {task.unit} of {config.test_dataset or config.dataset} "
              "...", file=sink.stream, flush=True)
    report = evaluation_progress(split, sink.stream, task.unit, step) if sink.enabled else None
    result = evaluate(run, state, fields, report)
    console = f"  validation: {task.describe(result)} loss {result['loss']:.4f}" if split == "validation" else None
    sink.write(step, split, _metric_values(result), console)
    position.phase = phase
    return {f"{split}_{k}": v for k, v in result.items()}


def _recorded_summary(records: list[dict], step: int) -> dict:
    """The summary of a run at `step` from its metrics records: the timing and
    the evaluations recorded at that step (<split>_<metric>)."""
    summary = {"steps": step}
    for record in (record for record in records if record["step"] == step):
        if record["split"] == "timing":
            summary.update(startup_seconds=record["startup_seconds"], train_seconds=record["train_seconds"])
        if record["split"] in ("validation", "test"):
            values = {k: v for k, v in record.items() if k not in ("step", "split", "time")}
            summary.update({f"{record['split']}_{k}": v for k, v in values.items()})
    return summary


def _stopped(position: _Position, checkpoints: Checkpoints, target: int) -> str:
    """What an interrupted run was doing and what it saved, for the line the
    command prints. The state between two steps is saved as a checkpoint when
    it is past the last checkpoint and finite, and this is the only process (all
    processes of a run would have to save together); a validation or test it
    was running runs again on resume."""
    latest = checkpoints.latest_step()
    step = int(position.state.step) if position.state is not None else latest or 0
    doing = {"startup": f"while starting, before step {step + 1}",
             "training": f"during training after step {step} of {target}"}.get(
        position.phase, f"during the {position.phase} at step {step}")
    last = f"the last checkpoint is at step {latest}" if latest is not None else "there is no checkpoint yet"
    if (position.state is not None and step > (latest or 0) and jax.process_count() == 1
            and bool(parallel.all_finite(position.state.params))):
        try:
            checkpoints.save(position.state)
            last = f"saved a checkpoint at step {step}"
        except CheckpointError as err:
            last = f"could not save step {step} ({type(err.__cause__).__name__}: {err.__cause__}); {last}"
    again = f"; the {position.phase} runs again on resume" if position.phase in ("validation", "test") else ""
    return f"{doing}; {last}{again}"


def train(config: configs.TrainConfig, workdir: pathlib.Path, stream=None, overwrite: bool = False) -> dict:
    """Train (or resume, or extend) the run of `config` in `workdir`.

    Args:
        config: the run's config.
        workdir: its work directory.
        stream: where progress lines go (default: stdout).
        overwrite: delete the work directory's run first.

    Returns:
        steps, the evaluations recorded at the last step (validation_<metric>,
        test_<metric>, with their loss and count; see Evaluations) and the
        timing: startup_seconds (from this call to the end of the first step:
        data loading, model initialization, checkpoint restore, compilation and
        that step) and train_seconds (every later step, to the end of the last
        one). A run already finished returns its recorded summary with
        finished_before = True; one whose evaluations at its last checkpoint
        are missing (interrupted) runs them first.

    Raises:
        interrupts.Interrupted: a SIGINT or SIGTERM (under interrupts.handled()),
            its detail saying what was saved (see _stopped).
    """
    entered = time.perf_counter()
    cache_at_entry = runtime.cache_counts()
    stream = stream or sys.stdout
    chief = parallel.is_chief()
    workdir = check_workdir(workdir)
    task = task_for(config)
    train_data = task.training_data(config)
    parallel.check_batch(config.batch_size, parallel.device_mesh())
    length = total_steps(config, train_data.steps_per_epoch)
    target = min(length, config.stop_at_step) if config.stop_at_step else length
    evaluations = _evaluations(config, task, target, length)
    changes = None if overwrite else _compare_with_saved(config, workdir)
    if overwrite and chief:
        _overwrite(workdir)

    checkpoints = Checkpoints(workdir, config.keep_checkpoints) if (workdir / "checkpoints").exists() else None
    latest = checkpoints.latest_step() if checkpoints is not None else None
    records = read_records(workdir / "metrics.jsonl") if latest is not None else []
    done = latest or 0
    if done > target:
        checkpoints.close()
        raise ValueError(f"{workdir} holds a run at step {done}, past the requested end at step {target}; ask for "
                         "a longer run (num_epochs, max_steps, stop_at_step), or pass --overwrite to start again")
    if latest is not None and latest >= target and not changes and not evaluations.missing(latest, records):
        checkpoints.close()
        return {**_recorded_summary(records, latest), "finished_before": True}
    if chief:
        event = "overwrite" if overwrite else ("start" if changes is None else "resume")
        _start(config, workdir, event, done, changes or {})
        if changes:
            print(f"resuming at step {done} of {length} with {_describe(changes)}"
                  + (f" (the learning-rate schedule now spans {length} steps)"
                     if {"num_epochs", "max_steps"} & set(changes) else ""), file=stream, flush=True)
    if checkpoints is None:
        checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    position = _Position()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(checkpoints.close)
        try:
            run = build_run(config, task, train_data.fields, train_data.steps_per_epoch, length)
            sink = MetricsSink(workdir, stream, enabled=chief, keep_until=done)
            cleanup.callback(sink.close)
            state = run.state if latest is None else parallel.replicate(checkpoints.restore(run.state), run.mesh)
            position.state = state
            if latest is not None and sink.enabled:
                print(f"resuming from the checkpoint at step {latest}", file=stream, flush=True)
            redone = {}
            for split in evaluations.missing(done, records) if latest is not None else ():
                redone.update(_record_evaluation(run, state, split, evaluations, sink, done, position))
            summary = _train_steps(run, state, train_data, evaluations, checkpoints, sink, position,
                                   entered, cache_at_entry)
        except interrupts.Interrupted as interrupt:
            interrupt.detail = _stopped(position, checkpoints, target)
            raise
    if summary["steps"] == done:
        summary.update({**_recorded_summary(records, done), **redone, "finished_before": not redone})
    return summary


def _train_steps(run: Run, state, train_data, evaluations: Evaluations, checkpoints: Checkpoints, sink: MetricsSink,
                 position: _Position, entered: float, cache_at_entry: dict) -> dict:
    """Train from the state's step to evaluations.target: log, check, save and
    validate on the config's schedule, and at the end record the timing and run
    the evaluations due.

    Args:
        run, state: the model and its state (restored or initial).
        train_data: the training batches (sphcnn.tasks.batches.TrainingBatches).
        evaluations: the run's evaluations and its target and length.
        checkpoints, sink: where checkpoints and metrics go.
        position: updated with the state after each step and the phase.
        entered, cache_at_entry: when train() started and the compilation-cache
            counts then (for startup_seconds and the cache hits).

    Returns:
        steps, and if any step ran, the timing, the compilation-cache counts and
        the evaluations at the last step (as train() describes them).
    """
    config, task, stream = run.config, run.task, sink.stream
    target, length = evaluations.target, evaluations.length
    step_fn = parallel.train_step_fn(run.model, run.optimizer, task, config.seed, run.mesh)
    first = step = int(state.step)
    started = window_start = time.perf_counter()
    window_first, sums, startup_seconds, cache = first, None, None, None
    steady_from = started
    if sink.enabled and first < target:
        print(f"training steps {first + 1} to {target} of {length}; compiling the training step first "
              "(the first step waits for XLA's compilation)", file=stream, flush=True)
    with Prefetcher(train_data.iterate(first, target - first)) as batches:
        for batch in batches:
            with interrupts.deferred():
                state, metrics = step_fn(state, parallel.shard_batch(batch, run.mesh))
                position.state, position.phase = state, "training"
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
            interrupts.signal_for_tests("train", step)
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
            if step < target:
                for split in evaluations.due(step):
                    _record_evaluation(run, state, split, evaluations, sink, step, position)
    jax.block_until_ready(state)
    summary = {"steps": step}
    if step == first:
        return summary
    summary.update(startup_seconds=startup_seconds, train_seconds=time.perf_counter() - steady_from,
                   compilation_cache_hits=cache["hits"], compilation_cache_misses=cache["misses"])
    sink.write(step, "timing", {k: v for k, v in summary.items() if k != "steps"})
    for split in evaluations.due(step):
        summary.update(_record_evaluation(run, state, split, evaluations, sink, step, position))
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
                     data_dir: str | None = None, task: str | None = None, stream=None) -> dict:
    """Evaluate a work directory's checkpoint on a split.

    Args:
        workdir: the run's work directory.
        split: 'train', 'validation' or 'test'.
        dataset: the dataset to evaluate on (default: the run's test dataset).
        step: the checkpoint's step (default: the latest).
        data_dir: where the datasets are (default: the run's).
        task: if given, the task the run must be of.
        stream: where a header line and progress lines go, as in training's
            validation (default: none).

    Returns:
        The task's metrics, loss and count, the checkpoint's step, the split,
        and what the headline metric measures (Task.metric_labels: metric,
        unit, QM9's target).

    Raises:
        interrupts.Interrupted: a SIGINT or SIGTERM during the evaluation, its
            detail saying what was being evaluated (nothing is written).
    """
    config = _saved_config(workdir, data_dir)
    if task is not None and task != config.task:
        raise ValueError(f"{workdir} holds a {config.task} run, not a {task} one")
    fields = task_for(config).evaluation_fields(config, split, dataset)
    run, state = _restored_run(workdir, config, fields, step)
    step = int(state.step)
    report = None
    if stream is not None and parallel.is_chief():
        print(f"evaluating the checkpoint at step {step} of {workdir} on {_example_count(fields)} {split} "
              f"{run.task.unit} ...", file=stream, flush=True)
        report = evaluation_progress(split, stream, run.task.unit, step)
    try:
        result = evaluate(run, state, fields, report)
    except interrupts.Interrupted as interrupt:
        interrupt.detail = f"during the evaluation of the checkpoint at step {step} on the {split} split"
        raise
    return {**result, "step": step, "split": split, **run.task.metric_labels()}


def model_outputs(workdir: pathlib.Path, fields: dict) -> np.ndarray:
    """The outputs of the latest checkpoint of a work directory (eval mode) on
    the examples `fields` (name -> array (count, ...), the task's fields)."""
    config = _saved_config(workdir)
    run, state = _restored_run(workdir, config, fields)
    outputs = [parallel.to_host(run.predict(state, parallel.shard_batch(batch, run.mesh)))
               for batch in evaluation_batches(fields, config.batch_size, run.task.prepare)]
    return np.concatenate(outputs)[: _example_count(fields)]
