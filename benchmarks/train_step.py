"""Training-step speed of the task models.

    python -m benchmarks.train_step                 # spin_classifier_6_layers, batch 32 and 128
    python -m benchmarks.train_step --batches 32 --steps 20
    python -m benchmarks.train_step --batches 32 --unfused    # the layer-by-layer model, steps/s only
    python -m benchmarks.train_step --batches 32 --backend ffi --steps-only   # the kernels, whatever auto picks
    python -m benchmarks.train_step --task qm9 --preset small      # qm9_small, batch 16, 18 and 29 atoms
    python -m benchmarks.train_step --task qm9 --model qm9_default --batches 16 --atoms 18,29

One step = forward, backward, Adam update and batch-norm statistics (QM9: the
random rotation and the featurization of the molecules too), jitted as one
function (sphcnn.train.step.train_step). Spherical MNIST: random 64 x 64 images.
QM9: synthetic molecules of QM9's atom types with exactly --atoms atoms each
(random positions at least 1 Angstrom apart; the step's cost depends on the
atom count only), i.e. a batch trimmed to that many atom slots.

Each case runs twice, each time in a fresh process with the settings of
`sphcnn train` (sphcnn.train.runtime: the host allocator that keeps its memory,
the XLA step options, JAX's persistent compilation cache in a new temporary
directory): first cold (empty cache), then warm (the cache the cold run
filled, timing the first step only). One JSON line per case: steps/s and
examples/s (median over --steps back-to-back steps, each waited for, after one
warm-up step), first_step_s (cold: from creating the model to the first
finished step, i.e. initialization, tracing, compilation and the step) and
first_step_warm_s (the same with the warm cache, with its cache hits and
misses), forward_ms (evaluation-mode forward only), peak memory (GPU allocator
peak; on CPUs the growth of the process's peak resident set), the transform
backend the model used, and on GPUs the kernels per step, their summed time
(kernel_ms) and the device-busy fraction kernel_ms / ms from a profiler trace
of 3 steps (None on CPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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


def _case(task_name: str, model_name: str, batch: int, atoms: int, fused: bool = True, backend: str = "auto"):
    """(model, bound task, batch dict, grid size) of one case; fused: the MNIST
    model's fused blocks (SpinSphericalClassifier(fused=...)); backend: the MNIST
    model's transform backend."""
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
        return sphcnn.spin_classifier_6_layers(rngs=nnx.Rngs(0), fused=fused, backend=backend), TASK, data, 64
    from sphcnn.models.regressors import REGRESSOR_PRESETS
    from sphcnn.tasks.qm9.task import TASK

    preset = REGRESSOR_PRESETS[model_name]
    charges, positions = _molecules(batch, atoms)
    data = {"charges": jnp.asarray(charges), "positions": jnp.asarray(positions),
            "label": jnp.asarray(np.random.default_rng(1).normal(size=batch).astype(np.float32))}
    task = dataclasses.replace(TASK, resolution=preset.resolutions[0])
    return preset.build(rngs=nnx.Rngs(0)), task, data, preset.resolutions[0]


def run_case(task_name: str, model_name: str, batch: int, atoms: int, steps: int, first_only: bool,
             cache_dir: str | None, fused: bool = True, backend: str = "auto") -> None:
    start = time.perf_counter()
    from sphcnn.train import runtime

    allocator = runtime.keep_host_memory()
    if cache_dir is not None:
        runtime.compilation_cache(cache_dir)
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np

    import sphcnn
    from benchmarks.measure import device_description, emit, kernel_profile, peak_memory_bytes, time_function
    from sphcnn.train import optimizers
    from sphcnn.train import step as training
    from sphcnn_kernels.auto import choose_backend
    from sphcnn_kernels.backends import current_platform

    imports_s = time.perf_counter() - start
    platform, device = device_description()
    baseline = peak_memory_bytes() if platform == "cpu" else 0
    cache_before = runtime.cache_counts()

    created = time.perf_counter()
    model, task, data, n = _case(task_name, model_name, batch, atoms, fused, backend)
    data["weights"] = jnp.ones(batch, jnp.float32)
    optimizer = optimizers.adam(1e-3)
    graphs, state = training.split(model, optimizer)
    step = jax.jit(functools.partial(training.train_step, graphs, optimizer, task, 0), donate_argnums=0,
                   compiler_options=runtime.step_compiler_options())
    state, metrics = step(state, data)
    jax.block_until_ready(metrics)
    first_step_s = time.perf_counter() - created
    cache = {k: v - cache_before[k] for k, v in runtime.cache_counts().items()}
    if first_only:
        emit({"first_step_s": first_step_s, "cache_hits": cache["hits"], "cache_misses": cache["misses"]})
        return

    timings = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = step(state, data)
        jax.block_until_ready(metrics)
        timings.append(time.perf_counter() - t)
    step_ms = float(np.median(timings) * 1e3)

    def advance():
        nonlocal state
        state, values = step(state, data)
        return values

    kernels = kernel_profile(advance, [()], calls=3)
    predict = jax.jit(functools.partial(training.predict, graphs, task),
                      compiler_options=runtime.step_compiler_options())
    forward = time_function(predict, state, data, runs=steps)

    record = {
        "name": "train_step", "task": task_name, "model": model_name, "platform": platform, "device": device,
        "batch": batch, "ms": step_ms, "steps_per_s": 1e3 / step_ms, "examples_per_s": batch * 1e3 / step_ms,
        "min_ms": float(np.min(timings) * 1e3), "max_ms": float(np.max(timings) * 1e3), "steps": steps,
        "first_step_s": first_step_s, "imports_s": imports_s, "forward_ms": forward["ms"],
        "kernels_per_step": kernels["kernels_per_call"], "kernel_ms": kernels["kernel_ms"],
        "device_busy": None if kernels["kernel_ms"] is None else kernels["kernel_ms"] / step_ms,
        "peak_bytes": peak_memory_bytes() - baseline,
        "backend": backend if backend != "auto" else choose_backend(current_platform(), "analysis", n),
        "host_allocator": "kept" if allocator else "system", "compiler_options": runtime.step_compiler_options(),
        "loss": float(metrics["loss"]), "parameters": sphcnn.parameter_count(model),
        "fused": bool(getattr(model, "fused", False)),
    }
    if "profile_error" in kernels:
        record["profile_error"] = kernels["profile_error"]
    if task_name == "qm9":
        record.update(atoms=atoms, ms_per_atom_sphere=step_ms / (batch * atoms))
    emit(record)


def _run(args, model: str, batch: int, atoms: int, cache: str, first_only: bool) -> dict:
    """One case in a fresh process with JAX's persistent cache in `cache`; its JSON line."""
    command = [sys.executable, "-m", "benchmarks.train_step", "--task", args.task, "--model", model,
               "--case", f"{batch},{atoms}", "--steps", str(args.steps), "--compilation-cache", cache]
    extra = (["--first-step-only"] if first_only else []) + (["--unfused"] if args.unfused else []) + [
        "--backend", args.backend]
    result = subprocess.run(command + extra, capture_output=True, text=True, env=os.environ.copy())
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"train_step benchmark failed at batch {batch}" + (f", {atoms} atoms" if atoms else ""))
    return json.loads(result.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--unfused", action="store_true",
                        help="spherical_mnist: the layer-by-layer model (fused=False), steps/s only (no first-step "
                             "runs), for comparison with the default fused blocks")
    parser.add_argument("--backend", default="auto", choices=("auto", "ffi", "xla"),
                        help="spherical_mnist: the model's transform backend (default auto: what backend='auto' "
                             "resolves to on this platform)")
    parser.add_argument("--steps-only", action="store_true",
                        help="steps/s only: no second run with a warm compilation cache")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--first-step-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compilation-cache", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    model = args.model or ("qm9_small" if args.task == "qm9" else "spin_classifier_6_layers")
    if args.preset:
        from sphcnn.train.config import resolve

        config = resolve(args.preset, task=args.task)
        model, args.batches = args.model or config.model, args.batches or str(config.batch_size)
    if args.case:
        batch, atoms = (int(v) for v in args.case.split(","))
        run_case(args.task, model, batch, atoms, args.steps, args.first_step_only, args.compilation_cache,
                 fused=not args.unfused, backend=args.backend)
        return
    batches = [int(b) for b in (args.batches or ("16" if args.task == "qm9" else "32,128")).split(",")]
    atom_counts = [int(a) for a in args.atoms.split(",")] if args.task == "qm9" else [0]
    for batch in batches:
        for atoms in atom_counts:
            with tempfile.TemporaryDirectory(prefix="sphcnn-jax-cache-") as cache:
                record = _run(args, model, batch, atoms, cache, first_only=False)
                if not (args.unfused or args.steps_only):
                    warm = _run(args, model, batch, atoms, cache, first_only=True)
                    record.update(first_step_warm_s=warm["first_step_s"], warm_cache_hits=warm["cache_hits"],
                                  warm_cache_misses=warm["cache_misses"])
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
