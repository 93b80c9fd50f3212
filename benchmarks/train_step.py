"""Training-step speed of spin_classifier_6_layers on 64 x 64 inputs.

    python -m benchmarks.train_step                 # batch 32 and 128
    python -m benchmarks.train_step --batches 32 --steps 20

One step = forward, backward, Adam update and batch-norm statistics, jitted as
one function (sphcnn.train.step.train_step). Each batch size runs in a fresh
process and prints one JSON line: steps/s (median over --steps steps after one
warm-up step), first_step_s (from creating the model to the first finished step:
initialization plus tracing and compilation), forward_ms (evaluation-mode
forward only), peak memory (GPU allocator peak; on CPUs the growth of the
process's peak resident set), and the transform backend the model used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def run_case(batch: int, steps: int) -> None:
    start = time.perf_counter()
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    import sphcnn
    from benchmarks.measure import device_description, emit, peak_memory_bytes, time_function
    from sphcnn.tasks.mnist.task import TASK
    from sphcnn.train import optimizers
    from sphcnn.train import step as training
    from sphcnn_kernels.auto import choose_backend
    from sphcnn_kernels.backends import current_platform

    imports_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(0, 255, (batch, 64, 64, 1, 1)).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
    data = {"images": images, "labels": labels, "weights": jnp.ones(batch, jnp.float32)}
    platform, device = device_description()
    baseline = peak_memory_bytes() if platform == "cpu" else 0

    created = time.perf_counter()
    model = sphcnn.spin_classifier_6_layers(rngs=nnx.Rngs(0))
    optimizer = optimizers.adam(1e-3)
    graphs, state = training.split(model, optimizer)
    step = jax.jit(functools.partial(training.train_step, graphs, optimizer, TASK, 0), donate_argnums=0)
    state, metrics = step(state, data)
    jax.block_until_ready(metrics)
    first_step_s = time.perf_counter() - created

    def one_step(current):
        new, out = step(current, data)
        return new, out

    timings = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = one_step(state)
        jax.block_until_ready(metrics)
        timings.append(time.perf_counter() - t)
    step_ms = float(np.median(timings) * 1e3)

    predict = jax.jit(functools.partial(training.predict, graphs, TASK))
    forward = time_function(predict, state, data, runs=steps)

    emit({
        "name": "train_step", "model": "spin_classifier_6_layers", "platform": platform, "device": device,
        "batch": batch, "ms": step_ms, "steps_per_s": 1e3 / step_ms, "min_ms": float(np.min(timings) * 1e3),
        "max_ms": float(np.max(timings) * 1e3), "steps": steps, "first_step_s": first_step_s,
        "imports_s": imports_s, "forward_ms": forward["ms"], "peak_bytes": peak_memory_bytes() - baseline,
        "backend": choose_backend(current_platform(), "forward", 64), "loss": float(metrics["loss"]),
        "parameters": sphcnn.parameter_count(model),
    })


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="32,128", help="comma-separated batch sizes")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per batch size")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        run_case(args.case, args.steps)
        return
    for batch in (int(b) for b in args.batches.split(",")):
        command = [sys.executable, "-m", "benchmarks.train_step", "--case", str(batch), "--steps", str(args.steps)]
        result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        if result.returncode != 0:
            sys.stderr.write(result.stderr)
            raise SystemExit(f"train_step benchmark failed at batch {batch}")
        print(result.stdout.strip(), flush=True)
        json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
