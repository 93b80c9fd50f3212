"""Training-step speed of the task models.

    python -m benchmarks.train_step                 # spin_classifier_6_layers, batch 32 and 128
    python -m benchmarks.train_step --batches 32 --steps 20
    python -m benchmarks.train_step --task qm9 --preset small      # qm9_small, batch 16, 18 and 29 atoms
    python -m benchmarks.train_step --task qm9 --model qm9_default --batches 16 --atoms 18,29

One step = forward, backward, Adam update and batch-norm statistics (QM9: the
random rotation and the featurization of the molecules too), jitted as one
function (sphcnn.train.step.train_step). Spherical MNIST: random 64 x 64 images.
QM9: synthetic molecules of QM9's atom types with exactly --atoms atoms each
(random positions at least 1 Angstrom apart; the step's cost depends on the
atom count only), i.e. a batch trimmed to that many atom slots. Each case runs
in a fresh process and prints one JSON line: steps/s and examples/s (median
over --steps steps after one warm-up step), first_step_s (from creating the
model to the first finished step: initialization plus tracing and
compilation), forward_ms (evaluation-mode forward only), peak memory (GPU
allocator peak; on CPUs the growth of the process's peak resident set), and the
transform backend the model used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _molecules(batch: int, atoms: int, seed: int = 0):
    """Random molecules of `atoms` atoms of QM9's types, positions (Angstrom) at
    least 1 A apart: (charges int32 (batch, atoms), positions float32 (batch, atoms, 3))."""
    import numpy as np

    rng = np.random.default_rng(seed)
    charges = rng.choice(np.array([1, 6, 7, 8, 9], np.int32), (batch, atoms), p=[0.5, 0.35, 0.06, 0.08, 0.01])
    positions = np.zeros((batch, atoms, 3), np.float32)
    for b in range(batch):
        placed = []
        while len(placed) < atoms:
            point = rng.uniform(-3.0, 3.0, 3)
            if all(np.linalg.norm(point - q) >= 1.0 for q in placed):
                placed.append(point)
        positions[b] = placed
    return charges, positions


def _case(task_name: str, model_name: str, batch: int, atoms: int):
    """(model, bound task, batch dict, grid size) of one case."""
    import dataclasses

    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    import sphcnn

    if task_name == "spherical_mnist":
        from sphcnn.tasks.mnist.task import TASK

        rng = np.random.default_rng(0)
        data = {"images": jnp.asarray(rng.uniform(0, 255, (batch, 64, 64, 1, 1)).astype(np.float32)),
                "labels": jnp.asarray(rng.integers(0, 10, batch), jnp.int32)}
        return sphcnn.spin_classifier_6_layers(rngs=nnx.Rngs(0)), TASK, data, 64
    from sphcnn.models.regressors import REGRESSOR_PRESETS
    from sphcnn.tasks.qm9.task import TASK

    preset = REGRESSOR_PRESETS[model_name]
    charges, positions = _molecules(batch, atoms)
    data = {"charges": jnp.asarray(charges), "positions": jnp.asarray(positions),
            "label": jnp.asarray(np.random.default_rng(1).normal(size=batch).astype(np.float32))}
    task = dataclasses.replace(TASK, resolution=preset.resolutions[0])
    return preset.build(rngs=nnx.Rngs(0)), task, data, preset.resolutions[0]


def run_case(task_name: str, model_name: str, batch: int, atoms: int, steps: int) -> None:
    start = time.perf_counter()
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np

    import sphcnn
    from benchmarks.measure import device_description, emit, peak_memory_bytes, time_function
    from sphcnn.train import optimizers
    from sphcnn.train import step as training
    from sphcnn_kernels.auto import choose_backend
    from sphcnn_kernels.backends import current_platform

    imports_s = time.perf_counter() - start
    platform, device = device_description()
    baseline = peak_memory_bytes() if platform == "cpu" else 0

    created = time.perf_counter()
    model, task, data, n = _case(task_name, model_name, batch, atoms)
    data["weights"] = jnp.ones(batch, jnp.float32)
    optimizer = optimizers.adam(1e-3)
    graphs, state = training.split(model, optimizer)
    step = jax.jit(functools.partial(training.train_step, graphs, optimizer, task, 0), donate_argnums=0)
    state, metrics = step(state, data)
    jax.block_until_ready(metrics)
    first_step_s = time.perf_counter() - created

    timings = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = step(state, data)
        jax.block_until_ready(metrics)
        timings.append(time.perf_counter() - t)
    step_ms = float(np.median(timings) * 1e3)

    predict = jax.jit(functools.partial(training.predict, graphs, task))
    forward = time_function(predict, state, data, runs=steps)

    record = {
        "name": "train_step", "task": task_name, "model": model_name, "platform": platform, "device": device,
        "batch": batch, "ms": step_ms, "steps_per_s": 1e3 / step_ms, "examples_per_s": batch * 1e3 / step_ms,
        "min_ms": float(np.min(timings) * 1e3), "max_ms": float(np.max(timings) * 1e3), "steps": steps,
        "first_step_s": first_step_s, "imports_s": imports_s, "forward_ms": forward["ms"],
        "peak_bytes": peak_memory_bytes() - baseline, "backend": choose_backend(current_platform(), "forward", n),
        "loss": float(metrics["loss"]), "parameters": sphcnn.parameter_count(model),
    }
    if task_name == "qm9":
        record.update(atoms=atoms, ms_per_atom_sphere=step_ms / (batch * atoms))
    emit(record)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="spherical_mnist", choices=("spherical_mnist", "qm9"))
    parser.add_argument("--preset", help="qm9: a training preset (sphcnn.train.config), for its model and batch "
                                         "size")
    parser.add_argument("--model", help="qm9: a regressor preset (default qm9_small); spherical_mnist: "
                                        "spin_classifier_6_layers only")
    parser.add_argument("--batches", help="comma-separated batch sizes (default: 32,128; qm9: 16)")
    parser.add_argument("--atoms", default="18,29", help="qm9: comma-separated atoms per molecule (default 18,29)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per case")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    model = args.model or ("qm9_small" if args.task == "qm9" else "spin_classifier_6_layers")
    if args.preset:
        from sphcnn.train.config import resolve

        config = resolve(args.preset, task=args.task)
        model, args.batches = args.model or config.model, args.batches or str(config.batch_size)
    if args.case:
        batch, atoms = (int(v) for v in args.case.split(","))
        run_case(args.task, model, batch, atoms, args.steps)
        return
    batches = [int(b) for b in (args.batches or ("16" if args.task == "qm9" else "32,128")).split(",")]
    atom_counts = [int(a) for a in args.atoms.split(",")] if args.task == "qm9" else [0]
    for batch in batches:
        for atoms in atom_counts:
            command = [sys.executable, "-m", "benchmarks.train_step", "--task", args.task, "--model", model,
                       "--case", f"{batch},{atoms}", "--steps", str(args.steps)]
            result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
            if result.returncode != 0:
                sys.stderr.write(result.stderr)
                raise SystemExit(f"train_step benchmark failed at batch {batch}" + (f", {atoms} atoms" if atoms else ""))
            print(result.stdout.strip(), flush=True)
            json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
