"""The spherical MNIST training and evaluation loops behind `sphcnn train` and
`sphcnn eval`.

A work directory holds config.json (the resolved config), checkpoints/ (Orbax),
metrics.jsonl and tensorboard/. Training resumes from the latest checkpoint in
the work directory; batches are a function of (seed, step), so the data order
resumes too. The train state is checked for NaN and infinities at every
logging and checkpoint step: a non-finite loss stops training with
TrainingDiverged and no checkpoint of the bad state is written.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time

import jax
import numpy as np

from sphcnn import config as configs
from sphcnn import parallel, training
from sphcnn.checkpointing import Checkpoints
from sphcnn.data.dataset import SphericalMnist
from sphcnn.data.loader import Prefetcher, TrainingBatches, evaluation_batches
from sphcnn.metrics_sinks import MetricsSink, progress_line
from sphcnn.optim import learning_rate_schedule, make_optimizer
from sphcnn.registry import build_model

NUM_CLASSES = 10


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or infinite."""


@dataclasses.dataclass
class Run:
    """A model with its optimizer and state on a device mesh, and its jitted
    evaluation-mode prediction (built once, so validation passes reuse one
    compilation)."""

    config: configs.TrainConfig
    mesh: jax.sharding.Mesh
    model: training.Model
    optimizer: object
    schedule: object
    state: training.TrainState
    predict: object


def _dataset(config: configs.TrainConfig, name: str, split: str) -> SphericalMnist:
    return SphericalMnist(pathlib.Path(config.data_dir) / name, split)


def _training_arrays(config: configs.TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    train = _dataset(config, config.dataset, "train")
    if not config.combine_train_validation:
        return train.images, train.labels
    validation = _dataset(config, config.dataset, "validation")
    return np.concatenate([train.images, validation.images]), np.concatenate([train.labels, validation.labels])


def build_run(config: configs.TrainConfig, n: int, steps_per_epoch: int) -> Run:
    """Model, optimizer (with its schedule) and initial state for n x n inputs."""
    mesh = parallel.device_mesh()
    parallel.check_batch(config.batch_size, mesh)
    schedule = learning_rate_schedule(config.learning_rate * config.batch_size / 32, steps_per_epoch,
                                      config.warmup_epochs, config.num_epochs)
    optimizer = make_optimizer(schedule, config.weight_decay)
    network = build_model(config.model, n, NUM_CLASSES, seed=config.seed, axis_name=parallel.AXIS,
                          kernel_init=config.kernel_init)
    model, state = training.split(network, optimizer)
    return Run(config, mesh, model, optimizer, schedule, parallel.replicate(state, mesh),
               parallel.predict_fn(model, mesh))


def _prepare_workdir(config: configs.TrainConfig, workdir: pathlib.Path) -> configs.TrainConfig:
    """Save the config, or check it against the one of the run being resumed."""
    workdir.mkdir(parents=True, exist_ok=True)
    saved = workdir / "config.json"
    if saved.exists():
        previous = configs.load(saved)
        if previous != config:
            changed = {k: (getattr(previous, k), getattr(config, k)) for k in dataclasses.asdict(config)
                       if getattr(previous, k) != getattr(config, k)}
            raise ValueError(f"workdir {workdir} holds a run with a different config (saved, requested): {changed}; "
                             "use a new --workdir, or the same options to resume")
        return previous
    if parallel.is_chief():
        configs.save(config, saved)
    return config


def evaluate(run: Run, state: training.TrainState, dataset: SphericalMnist) -> dict:
    """Accuracy and mean loss over every example of a split (eval mode)."""
    correct = total = loss = 0.0
    for batch in evaluation_batches(dataset.images, dataset.labels, run.config.batch_size):
        sharded = parallel.shard_batch(batch, run.mesh)
        logits = parallel.to_host(run.predict(state, sharded["images"])).astype(np.float64)
        weights = batch["weights"]
        log_probs = logits - logits.max(-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
        correct += float(np.sum((logits.argmax(-1) == batch["labels"]) * weights))
        loss -= float(np.sum(log_probs[np.arange(len(weights)), batch["labels"]] * weights))
        total += float(np.sum(weights))
    return {"accuracy": correct / total, "loss": loss / total, "count": int(total)}


def _check_finite(state: training.TrainState, loss: float, step: int, checkpoints: Checkpoints) -> None:
    if not (math.isfinite(loss) and bool(parallel.all_finite(state.params))):
        last = checkpoints.latest_step()
        raise TrainingDiverged(
            f"training diverged: the loss is {loss} at step {step} (NaN or infinite); stopped without saving. "
            f"The last good checkpoint ({'step ' + str(last) if last is not None else 'none'}) is intact; "
            "lower the learning rate (--set learning_rate=...) and resume or restart.")


def train(config: configs.TrainConfig, workdir: pathlib.Path, stream=None) -> dict:
    """Train (or resume) in `workdir`; returns the final metrics, with the test
    accuracy if config.eval_on_test, and the timing: startup_seconds (from this
    call to the end of the first step: data loading, model initialization,
    checkpoint restore, compilation and that step) and train_seconds (every
    later step, to the end of the last one)."""
    entered = time.perf_counter()
    config = _prepare_workdir(config, workdir)
    images, labels = _training_arrays(config)
    train_data = TrainingBatches(images, labels, config.batch_size, seed=config.seed)
    total_steps = config.max_steps or int(math.ceil(config.num_epochs * train_data.steps_per_epoch))
    run = build_run(config, images.shape[1], train_data.steps_per_epoch)
    checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    sink = MetricsSink(workdir, stream, enabled=parallel.is_chief())
    state = run.state
    if checkpoints.latest_step() is not None:
        state = parallel.replicate(checkpoints.restore(state), run.mesh)
        if sink.enabled:
            print(f"resuming from the checkpoint at step {int(state.step)}", file=sink.stream, flush=True)
    validation = None
    if config.eval_every and not config.combine_train_validation:
        validation = _dataset(config, config.dataset, "validation")
    step_fn = parallel.train_step_fn(run.model, run.optimizer, run.mesh)
    first = step = int(state.step)
    started = window_start = time.perf_counter()
    window_first, sums, startup_seconds = first, None, None
    batches = Prefetcher(train_data.iterate(first, total_steps - first))
    try:
        for batch in batches:
            sharded = parallel.shard_batch(batch, run.mesh)
            state, metrics = step_fn(state, sharded["images"], sharded["labels"], sharded["weights"])
            step += 1
            if startup_seconds is None:
                jax.block_until_ready(state)
                startup_seconds = time.perf_counter() - entered
                steady_from = time.perf_counter()
            sums = metrics if sums is None else jax.tree.map(lambda a, b: a + b, sums, metrics)
            log_now = step % config.log_every == 0 or step == total_steps
            save_now = step % config.checkpoint_every == 0 or step == total_steps
            if log_now or save_now:
                values = {k: float(v) / (step - window_first) for k, v in jax.device_get(sums).items()}
                _check_finite(state, values["loss"], step, checkpoints)
            if log_now:
                elapsed = time.perf_counter() - window_start
                values["learning_rate"] = float(run.schedule(step))
                values["steps_per_s"] = (step - window_first) / elapsed
                values["examples_per_s"] = values["steps_per_s"] * config.batch_size
                sink.write(step, "train", values, progress_line(step, total_steps, values, started, first))
                window_start, window_first, sums = time.perf_counter(), step, None
            if save_now:
                checkpoints.save(state)
            if validation is not None and step % config.eval_every == 0 and step < total_steps:
                result = evaluate(run, state, validation)
                sink.write(step, "validation", {k: result[k] for k in ("accuracy", "loss")},
                           f"  validation: accuracy {100 * result['accuracy']:.2f}% loss {result['loss']:.4f}")
    finally:
        batches.close()
    jax.block_until_ready(state)
    ended = time.perf_counter()
    if startup_seconds is None:
        startup_seconds, steady_from = ended - entered, ended
    summary = {"steps": step, "startup_seconds": startup_seconds, "train_seconds": ended - steady_from}
    sink.write(step, "timing", {k: summary[k] for k in ("startup_seconds", "train_seconds")})
    if config.eval_on_test:
        test = _dataset(config, config.test_dataset or config.dataset, "test")
        result = evaluate(run, state, test)
        sink.write(step, "test", {k: result[k] for k in ("accuracy", "loss")})
        summary.update(test_accuracy=result["accuracy"], test_loss=result["loss"], test_count=result["count"])
    sink.close()
    checkpoints.close()
    return summary


def evaluate_workdir(workdir: pathlib.Path, split: str, dataset: str | None = None, step: int | None = None) -> dict:
    """Evaluate the latest (or a given) checkpoint of a work directory on a split."""
    saved = workdir / "config.json"
    if not saved.exists():
        raise ValueError(f"eval: {workdir} has no config.json; is it a `sphcnn train` work directory?")
    config = configs.load(saved)
    data = _dataset(config, dataset or config.test_dataset or config.dataset, split)
    checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    if checkpoints.latest_step() is None:
        raise ValueError(f"eval: {workdir} has no checkpoint yet")
    run = build_run(config, data.images.shape[1], steps_per_epoch=1)
    state = parallel.replicate(checkpoints.restore(run.state, step), run.mesh)
    result = evaluate(run, state, data)
    checkpoints.close()
    return {**result, "step": int(state.step), "split": split}
