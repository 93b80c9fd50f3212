"""Shared measurement helpers for the benchmarks: device time of jitted
functions (back-to-back calls, and GPU kernel time from a profiler trace),
memory bandwidth of the device, peak memory."""

from __future__ import annotations

import glob
import json
import os
import resource
import sys
import tempfile
import time

import jax
import numpy as np

# Peak memory bandwidth by device kind (bytes/s), from the vendors' data sheets.
_GPU_BANDWIDTH = {
    "H100 80GB HBM3": 3.35e12,  # H100 SXM
    "H100 PCIe": 2.0e12,
    "H200": 4.8e12,
    "A100-SXM4-80GB": 2.04e12,
    "A100-SXM4-40GB": 1.56e12,
}
# Back-to-back timing: the calls of a timed run take about TARGET_RUN_S seconds,
# at most MAX_CALLS calls.
TARGET_RUN_S = 0.05
MAX_CALLS = 100
# Kernel events of a GPU trace: device planes and the per-stream lines of the
# XLA GPU tracer; copies and memsets on those lines are not kernels.
GPU_PLANE_PREFIX = "/device:GPU:"
STREAM_LINE_PREFIX = "Stream"
NOT_KERNELS = ("Memcpy", "Memset")


def emit(record: dict) -> None:
    """Print one JSON line and flush."""
    print(json.dumps(record), flush=True)


def device_description() -> tuple[str, str]:
    """(platform, device kind) of JAX's default device, e.g. ('gpu', 'NVIDIA H200')."""
    device = jax.devices()[0]
    return device.platform, getattr(device, "device_kind", device.platform)


def peak_bandwidth() -> tuple[float, str]:
    """(bytes/s, source): a data-sheet figure for known GPUs, else a measured
    copy bandwidth (read + write of a 256 MiB array, best of 5)."""
    _, kind = device_description()
    for name, bandwidth in _GPU_BANDWIDTH.items():
        if name in kind:
            return bandwidth, f"datasheet {name}"
    x = jax.numpy.ones((64 << 20,), jax.numpy.float32)
    copy = jax.jit(lambda v: v * 1.0001)
    copy(x).block_until_ready()
    best = min(_timed(copy, x) for _ in range(5))
    return 2 * x.nbytes / best, "measured copy"


def _timed(fn, *args) -> float:
    """Seconds of one synchronized call."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def time_function(fn, *args, runs: int = 20, warmup: int = 2, budget_s: float = 60.0) -> dict:
    """Median, min and max wall time in ms of fn(*args), each call synchronized,
    after warm-up. Fewer runs (at least 3) are taken when `runs` would exceed the
    time budget."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    first = _timed(fn, *args)
    count = max(3, min(runs, int(budget_s / max(first, 1e-9)))) if first * runs > budget_s else runs
    samples = [first] + [_timed(fn, *args) for _ in range(count - 1)]
    ms = np.asarray(samples) * 1e3
    return {"ms": float(np.median(ms)), "min_ms": float(ms.min()), "max_ms": float(ms.max()), "runs": int(ms.size)}


def back_to_back(fn, inputs: list[tuple], *, runs: int = 20, warmup: int = 2, budget_s: float = 60.0) -> dict:
    """Device time of fn in ms per call, measured as the original spin_spherical_cnns
    benchmark does: one run issues K calls back to back (no synchronization in
    between, so the device queue stays full and host dispatch overlaps device
    work), then waits for the last result (a device runs the calls in the order
    they were issued: one compute stream on a GPU); the run's time / K is one
    sample. Earlier results are dropped as the run goes, so their memory is
    reused as in a model. Calls cycle through the argument tuples `inputs`
    (distinct arrays, so that a run does not just re-read one input from cache).

    K is chosen from one synchronized call after `warmup` calls: enough calls for
    TARGET_RUN_S seconds, at most MAX_CALLS. Fewer runs (at least 3) are taken
    when `runs` would exceed budget_s. Returns ms (median over runs), min_ms,
    max_ms, runs, calls_per_run.

    On a CPU the device is the host: XLA's CPU client would run back-to-back
    calls concurrently on the same cores, each slowing the other (measured at
    n = 64 on 2 cores: inverse 3.3 to 5.3 ms back to back, 2.3 ms synchronized),
    so there every call is waited for before the next is issued.
    """
    synchronize_each = jax.devices()[0].platform == "cpu"
    for i in range(warmup):
        jax.block_until_ready(fn(*inputs[i % len(inputs)]))
    single = _timed(fn, *inputs[0])
    calls = int(max(1, min(MAX_CALLS, TARGET_RUN_S // max(single, 1e-9))))
    count = max(3, min(runs, int(budget_s / max(single * calls, 1e-9))))
    samples = []
    for run in range(count):
        start = time.perf_counter()
        for i in range(calls):
            result = fn(*inputs[(run * calls + i) % len(inputs)])
            if synchronize_each:
                jax.block_until_ready(result)
        jax.block_until_ready(result)
        samples.append((time.perf_counter() - start) / calls)
    ms = np.asarray(samples) * 1e3
    return {"ms": float(np.median(ms)), "min_ms": float(ms.min()), "max_ms": float(ms.max()), "runs": count,
            "calls_per_run": calls}


def device_kernel_events(profile) -> list[tuple[str, float]] | None:
    """(name, duration in ns) of every kernel in a jax.profiler.ProfileData: the
    events on the stream lines of its GPU device planes ('/device:GPU:<i>'),
    copies and memsets excluded. None when the profile has no GPU device plane
    (a CPU run)."""
    planes = [p for p in profile.planes if p.name.startswith(GPU_PLANE_PREFIX)]
    if not planes:
        return None
    return [(event.name, float(event.duration_ns))
            for plane in planes for line in plane.lines if line.name.startswith(STREAM_LINE_PREFIX)
            for event in line.events if not event.name.startswith(NOT_KERNELS)]


def _gpu_line_names(profile) -> list[str]:
    return [line.name for p in profile.planes if p.name.startswith(GPU_PLANE_PREFIX) for line in p.lines]


def kernel_summary(profile, calls: int) -> dict:
    """kernel_ms (sum of kernel durations per call, ms) and kernels_per_call of a
    profile of `calls` calls; both None without a GPU device plane, and then also
    without kernel events (with a profile_error naming the lines found)."""
    events = device_kernel_events(profile)
    if not events:
        summary = {"kernel_ms": None, "kernels_per_call": None}
        if events is not None:
            summary["profile_error"] = f"no kernel events on the GPU stream lines; lines: {_gpu_line_names(profile)}"
        return summary
    return {"kernel_ms": sum(d for _, d in events) / calls / 1e6, "kernels_per_call": len(events) / calls}


def kernel_profile(fn, inputs: list[tuple], calls: int = 3) -> dict:
    """GPU kernel time of fn from a jax.profiler trace of `calls` synchronized calls
    (after the caller's warm-up): kernel_ms (the sum of the kernels' durations per
    call, ms) and kernels_per_call; both None on platforms without a GPU device
    plane in the trace (CPUs). Profiling is an add-on to the timings: any failure
    to trace or read the trace gives None for both and its message as
    profile_error instead of ending the benchmark."""
    try:
        with tempfile.TemporaryDirectory(prefix="sphcnn-trace-") as logdir:
            with jax.profiler.trace(logdir):
                for i in range(calls):
                    jax.block_until_ready(fn(*inputs[i % len(inputs)]))
            files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
            if not files:
                return {"kernel_ms": None, "kernels_per_call": None, "profile_error": "no .xplane.pb written"}
            return kernel_summary(jax.profiler.ProfileData.from_file(files[0]), calls)
    except Exception as error:  # any failure: profiling must not end the benchmark (see docstring)
        return {"kernel_ms": None, "kernels_per_call": None, "profile_error": f"{type(error).__name__}: {error}"}


def peak_memory_bytes() -> int:
    """Peak bytes in use on a GPU (allocator statistics), or the process's peak
    resident set size on the CPU (a high-water mark: subtract a baseline taken
    before the work to get what the work added)."""
    stats = jax.devices()[0].memory_stats() if jax.devices()[0].platform == "gpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)
