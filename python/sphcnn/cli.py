"""The `sphcnn` command line.

  sphcnn data mnist --output DIR [--mode rotated] ...        build spherical MNIST
  sphcnn train --model spin_classifier_6_layers --dataset rotated_s2cnn --workdir DIR
  sphcnn data qm9 --output data/qm9                         build QM9
  sphcnn train --task qm9 --target H --preset small --workdir DIR
  sphcnn eval --workdir DIR [--split test]
  sphcnn plot --dataset canonical_s2cnn [--workdir DIR] --output spheres.png
  sphcnn demo                                               what `make demo` runs

train, eval and demo keep compiled steps in JAX's persistent compilation cache
(--compilation-cache, default ~/.cache/sphcnn/jax) and keep freed host memory
mapped (sphcnn.train.runtime; SPHCNN_HOST_ALLOCATOR=system turns that off).

Every failure a user can cause (arguments, configs, data, work directories,
file systems, a full disk, a missing optional package, a diverged run) exits
with status 2 and one line that says what happened and what to do; --debug
shows the traceback instead.

Ctrl-C (SIGINT) or SIGTERM ends a command with one line on stderr and status
130 or 143 (128 + the signal): train and demo save the state between two steps
as a checkpoint and say at which step, what ran (training, a validation, the
test) and the command that resumes (the same one; for `make demo`, make demo);
--debug shows the traceback before that line (sphcnn.train.interrupts).
"""

from __future__ import annotations

import argparse
import difflib
import errno
import json
import os
import pathlib
import shlex
import sys
import time
import traceback

import numpy as np

from sphcnn.train import config as configs
from sphcnn.train import interrupts, runtime
from sphcnn.tasks.mnist.cli import add_mnist_parser, run_mnist
from sphcnn.tasks.qm9.data import TARGETS as QM9_TARGETS, add_qm9_parser, run_qm9
from sphcnn.tasks.mnist.dataset import SPLITS
from sphcnn.errors import RunError
from sphcnn.tasks.mnist.plotting import PROJECTIONS, VIEWS
from sphcnn.models.registry import MODEL_NAMES


def _add_common_training(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=configs.PRESET_NAMES,
                        help="named config of the task that the other options override (spherical_mnist: "
                             f"{', '.join(configs.TRAINING_PRESETS['spherical_mnist'])}, default original, the "
                             f"original recipe; qm9: {', '.join(configs.TRAINING_PRESETS['qm9'])}, default small, "
                             "the original's short run)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field, e.g. --set learning_rate=2e-3 (repeatable)")
    parser.add_argument("--data-dir", help="spherical_mnist: root holding one dataset per mode (default "
                                           "data/spherical_mnist); qm9: the dataset (default data/qm9)")
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize() first (multi-host data parallelism); on Slurm, "
                             "Open MPI and TPU pods the three options below are detected automatically")
    parser.add_argument("--coordinator-address", metavar="HOST:PORT", help="process 0's address (with --distributed)")
    parser.add_argument("--num-processes", type=int, metavar="N", help="number of processes (with --distributed)")
    parser.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1 (with --distributed)")


def _add_compilation_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compilation-cache", default=str(runtime.DEFAULT_CACHE_DIR), metavar="DIR|off",
                        help="JAX's persistent compilation cache: a second run of the same model and batch shapes "
                             "loads its compiled steps from DIR instead of compiling them (default "
                             f"$SPHCNN_COMPILATION_CACHE, else ~/.cache/sphcnn/jax; off: compile every time)")


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviations (--max-step is not --max-steps), whose
    subcommands are parsers of the same class, and which names a misspelled
    option (with the closest known one) before it reports a required option
    missing: `--wrokdir x` is an unknown --wrokdir, not a missing --workdir."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        self._arguments = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        if message.startswith("the following arguments are required"):
            unknown = [a.split("=")[0] for a in getattr(self, "_arguments", [])
                       if a.startswith("--") and a.split("=")[0] not in self._option_string_actions]
            if unknown:
                close = difflib.get_close_matches(unknown[0], list(self._option_string_actions), n=1)
                message = (f"unrecognized arguments: {' '.join(unknown)}"
                           + (f" (did you mean {close[0]}?)" if close else ""))
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sphcnn", description="Spherical CNNs: data, training, evaluation.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="generate datasets", description="Generate datasets.")
    datasets = data.add_subparsers(dest="data_command", required=True, metavar="DATASET")
    add_mnist_parser(datasets)
    add_qm9_parser(datasets)

    train = commands.add_parser("train", help="train a model (resumes from the work directory)")
    train.add_argument("--task", default="spherical_mnist", choices=configs.TASKS,
                       help="spherical_mnist (default) or qm9")
    train.add_argument("--model", choices=MODEL_NAMES, help="default: the preset's (spherical_mnist: "
                                                            "spin_classifier_6_layers; qm9: qm9_small)")
    train.add_argument("--target", choices=QM9_TARGETS, help="qm9: the property to learn (default H)")
    train.add_argument("--dataset", help="spherical_mnist: training dataset under --data-dir, a named dataset "
                                         "(rotated_s2cnn, the default; canonical_s2cnn, rotated, canonical, "
                                         "rotated_s2cnn_c1) or any directory `sphcnn data mnist` wrote there; qm9: "
                                         "the split, cormorant (split 1, default) or dimenet (split 2)")
    train.add_argument("--test-dataset", help="dataset to test on (default: the training dataset); "
                                              "--dataset canonical --test-dataset rotated is NR/R")
    train.add_argument("--workdir", required=True, type=pathlib.Path)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--max-steps", type=int, help="the run's length in steps (the learning-rate schedule follows "
                                                     "it); --set stop_at_step=N pauses at N keeping the schedule")
    train.add_argument("--overwrite", action="store_true",
                       help="delete the run in --workdir (config, checkpoints, metrics) and start again")
    train.add_argument("--eval-on-test", dest="eval_on_test", action="store_true", default=None)
    train.add_argument("--no-eval-on-test", dest="eval_on_test", action="store_false")
    _add_common_training(train)
    _add_compilation_cache(train)

    evaluate = commands.add_parser("eval", help="evaluate a work directory's checkpoint on a split")
    evaluate.add_argument("--workdir", required=True, type=pathlib.Path)
    evaluate.add_argument("--task", choices=configs.TASKS, help="check that the run is of this task")
    evaluate.add_argument("--split", default="test", choices=SPLITS)
    evaluate.add_argument("--dataset", help="dataset to evaluate on (default: the run's test dataset)")
    evaluate.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    evaluate.add_argument("--data-dir", help="root of the datasets (default: the run's --data-dir)")
    _add_compilation_cache(evaluate)

    plot = commands.add_parser("plot", help="draw input spheres (and predictions) to a PNG")
    plot.add_argument("--data-dir", default="data/spherical_mnist")
    plot.add_argument("--dataset", default="canonical_s2cnn")
    plot.add_argument("--split", default="test", choices=SPLITS)
    plot.add_argument("--count", type=int, default=8)
    plot.add_argument("--workdir", type=pathlib.Path, help="a trained run: add its predictions")
    plot.add_argument("--output", type=pathlib.Path, default=pathlib.Path("spheres.png"))
    plot.add_argument("--projection", default="orthographic", choices=PROJECTIONS,
                      help="orthographic: the hemisphere around each digit (default); mollweide: the whole sphere")
    plot.add_argument("--view", default="inside", choices=VIEWS,
                      help="orthographic view from the sphere's centre (default: digits read the right way round) "
                           "or from outside")
    plot.add_argument("--center", metavar="LAT,LON",
                      help="centre of the orthographic views in degrees, north up (default: each digit's centre of "
                           "mass, the digit upright)")

    demo = commands.add_parser("demo", help="build data, train and test (CPU: canonical quick run; GPU: the "
                                            "full rotated recipe)")
    demo.add_argument("--data-dir", type=pathlib.Path, default=pathlib.Path("data/spherical_mnist"))
    demo.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("runs/demo"))
    _add_compilation_cache(demo)
    return parser


def _train_config(args) -> configs.TrainConfig:
    return configs.resolve(args.preset, args.set, task=args.task, model=args.model, dataset=args.dataset,
                           test_dataset=args.test_dataset, data_dir=args.data_dir, batch_size=args.batch_size,
                           max_steps=args.max_steps, eval_on_test=args.eval_on_test, target=args.target)


def _data_name(config: configs.TrainConfig, dataset: str) -> str:
    if config.task == "qm9":
        return f"QM9 {config.target} (split {dataset})"
    return f"{dataset} spherical MNIST"


def _evaluated(config: configs.TrainConfig, result: dict) -> str:
    """'; validation H MAE 10.83 meV on ...; test accuracy 98.63% on ... (9863/10000)'
    for the evaluations a training result holds."""
    from sphcnn.tasks import task_for

    task = task_for(config)
    datasets = {"validation": config.dataset, "test": config.test_dataset or config.dataset}
    text = ""
    for split, dataset in datasets.items():
        metrics = {name: result[f"{split}_{name}"] for name in task.metrics if f"{split}_{name}" in result}
        if not metrics:
            continue
        text += f"; {split} {task.describe(metrics)} on {_data_name(config, dataset)}"
        if f"{split}_accuracy" in result and f"{split}_count" in result:
            count = result[f"{split}_count"]
            text += f" ({round(result[f'{split}_accuracy'] * count)}/{count})"
    return text


def _summary(config: configs.TrainConfig, result: dict) -> str:
    data = _data_name(config, config.dataset)
    if result.get("finished_before"):
        line = (f"sphcnn: the run is finished: {config.model} trained on {data} for {result['steps']} steps "
                "(--overwrite trains it again; a longer num_epochs or max_steps extends it)")
    else:
        line = f"sphcnn: {config.model} trained on {data} for {result['steps']} steps"
        if "train_seconds" in result:
            line += (f" in {result['startup_seconds']:.1f} s of startup (data, initialization, compilation, first "
                     f"step) + {result['train_seconds']:.1f} s")
    return line + _evaluated(config, result)


def run_train(args) -> int:
    from sphcnn.train import loop as trainer

    config = _train_config(args)
    result = trainer.train(config, args.workdir, overwrite=args.overwrite)
    print(_summary(config, result), flush=True)
    return 0


def run_eval(args) -> int:
    from sphcnn.train import loop as trainer

    result = trainer.evaluate_workdir(args.workdir, args.split, args.dataset, args.step, args.data_dir,
                                      task=args.task, stream=sys.stderr)
    print(json.dumps(result), flush=True)
    return 0


def _center(text: str | None):
    """--center 'LAT,LON' in degrees -> (lat, lon) in radians, or None."""
    if text is None:
        return None
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"plot: --center must be LAT,LON in degrees, got {text!r}") from None
    if not (-90 <= lat <= 90 and np.isfinite(lon)):
        raise ValueError(f"plot: --center latitude must lie in [-90, 90] and the longitude be finite, got {text!r}")
    return np.radians(lat), np.radians(lon)


def run_plot(args) -> int:
    from sphcnn.tasks.mnist.dataset import SphericalMnist
    from sphcnn.tasks.mnist.plotting import plot_spheres

    if args.count < 1:
        raise ValueError(f"plot: --count must be >= 1, got {args.count}")
    folder = args.output.parent
    if not folder.is_dir():
        raise ValueError(f"plot: the folder of --output {args.output} does not exist ({folder}); create it or "
                         "choose another --output")
    center = _center(args.center)
    data = SphericalMnist(pathlib.Path(args.data_dir) / args.dataset, args.split)
    images, labels = data.images[: args.count], data.labels[: args.count]
    titles = [f"label {int(label)}" for label in labels]
    if args.workdir is not None:
        from sphcnn.train import loop

        predicted = loop.model_outputs(args.workdir, {"images": images, "labels": labels}).argmax(-1)
        titles = [f"label {int(t)}, predicted {int(p)}" for t, p in zip(labels, predicted)]
    up = data.up_directions(len(images)) if args.projection == "orthographic" and center is None else None
    plot_spheres(images, args.output, titles, projection=args.projection, centers=center, view=args.view, up=up)
    print(f"sphcnn: wrote {len(images)} spheres to {args.output} ({args.projection})", flush=True)
    return 0


def run_demo(args) -> int:
    import jax

    from sphcnn.train import loop as trainer
    from sphcnn.tasks.mnist.commands import NAMED_DATASETS
    from sphcnn.tasks.mnist.dataset import generate_spherical_mnist

    gpu = jax.default_backend() == "gpu"
    preset = "demo_gpu" if gpu else "demo_cpu"
    config = configs.resolve(preset, data_dir=str(args.data_dir))
    started = time.perf_counter()
    for name in {config.dataset, config.test_dataset or config.dataset}:
        if not (args.data_dir / name / "metadata.json").exists():
            print(f"sphcnn demo: building the {name} spherical MNIST dataset in {args.data_dir / name}", flush=True)
            began = time.perf_counter()
            try:
                generate_spherical_mnist(args.data_dir / name, **NAMED_DATASETS[name],
                                         progress=lambda line: print(f"  {line}", flush=True))
            except interrupts.Interrupted as interrupt:
                interrupt.detail = f"while building the {name} dataset (its partial files are removed)"
                raise
            print(f"sphcnn demo: dataset built in {time.perf_counter() - began:.0f} s", flush=True)
    print(f"sphcnn demo: training {config.model} ({'GPU: full rotated recipe' if gpu else 'CPU: canonical quick run'}) "
          f"in {args.workdir}", flush=True)
    result = trainer.train(config, args.workdir)
    print(_summary(config, result) + f"; demo took {time.perf_counter() - started:.0f} s", flush=True)
    return 0


DATA_COMMANDS = {"mnist": run_mnist, "qm9": run_qm9}


def run_data(args) -> int:
    return DATA_COMMANDS[args.data_command](args)


COMMANDS = {"data": run_data, "train": run_train, "eval": run_eval, "plot": run_plot, "demo": run_demo}


def _initialize_distributed(args) -> None:
    """jax.distributed.initialize() for --distributed; the cluster options only with it."""
    given = {name: getattr(args, name, None) for name in ("coordinator_address", "num_processes", "process_id")}
    if not getattr(args, "distributed", False):
        extra = [f"--{name.replace('_', '-')}" for name, value in given.items() if value is not None]
        if extra:
            raise ValueError(f"{', '.join(extra)} need --distributed")
        return
    if given["num_processes"] is not None and given["num_processes"] < 1:
        raise ValueError(f"--num-processes must be >= 1, got {given['num_processes']}")
    if given["process_id"] is not None and not 0 <= given["process_id"] < (given["num_processes"] or 1 << 30):
        raise ValueError(f"--process-id must be in [0, --num-processes), got {given['process_id']}")
    import jax

    jax.distributed.initialize(**{k: v for k, v in given.items() if v is not None})


def error_line(err: BaseException) -> str:
    """One line for an expected failure: what happened and what to do."""
    if isinstance(err, OSError) and err.errno is not None and not str(err).startswith("cannot write"):
        where = f" {err.filename}" if getattr(err, "filename", None) else ""
        hints = {
            errno.ENOSPC: "the disk is full: free space and rerun the same command (training resumes from the last "
                          "checkpoint)",
            errno.EROFS: "the file system is read-only: choose a writable --workdir or --output",
            errno.EACCES: "permission denied: choose another path or fix its permissions",
            errno.EPERM: "operation not permitted: choose another path or fix its permissions",
            errno.ENOENT: "no such file or directory",
            errno.ENOTDIR: "a path component is a file, not a directory",
            errno.EISDIR: "a directory is in the way of a file",
        }
        return f"{err.strerror or err}{':' + where if where else ''} ({hints.get(err.errno, 'operating system error')})"
    return str(err)


def rerun_command(command: str, arguments: list[str]) -> str:
    """The command line that runs a command again: `make demo` for a demo that
    make started (MAKELEVEL is set), else `sphcnn` with the same arguments."""
    if command == "demo" and "MAKELEVEL" in os.environ:
        return "make demo"
    return shlex.join(["sphcnn", *arguments])


def interrupted_line(command: str, arguments: list[str], interrupt: interrupts.Interrupted) -> str:
    """The one line of an interrupted command: the signal, what ran and what was
    saved (the interrupt's detail), and the command that resumes or reruns it."""
    detail = f" {interrupt.detail}" if interrupt.detail else ""
    again = "resume with the same command" if command in ("train", "demo") else "run the same command again"
    return f"sphcnn {command}: interrupted by {interrupt.name}{detail}; {again}: {rerun_command(command, arguments)}"


# Failures a user can cause: one line and exit status 2 (see the module docstring).
EXPECTED_FAILURES = (ValueError, OSError, RunError)


def main(argv=None) -> int:
    parser = build_parser()
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(arguments)
    with interrupts.handled():
        try:
            runtime.keep_host_memory()
            if getattr(args, "compilation_cache", "off") != "off":
                runtime.compilation_cache(args.compilation_cache)
            _initialize_distributed(args)
            return COMMANDS[args.command](args)
        except EXPECTED_FAILURES as err:
            if args.debug:
                raise
            print(f"sphcnn {args.command}: error: {error_line(err)}", file=sys.stderr)
            return 2
        except interrupts.Interrupted as interrupt:
            if args.debug:
                traceback.print_exc()
            print(interrupted_line(args.command, arguments, interrupt), file=sys.stderr, flush=True)
            return interrupt.exit_status


if __name__ == "__main__":
    sys.exit(main())
