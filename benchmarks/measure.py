"""Shared measurement helpers for the benchmarks: wall-clock medians of jitted
functions, memory bandwidth of the device, peak memory."""

from __future__ import annotations

import json
import resource
import sys
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


def emit(record: dict) -> None:
    """Print one JSON line and flush."""
    print(json.dumps(record), flush=True)


def device_description() -> tuple[str, str]:
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
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def time_function(fn, *args, runs: int = 20, warmup: int = 2, budget_s: float = 60.0) -> dict:
    """Median, min and max wall time in ms of fn(*args) after warm-up. Fewer runs
    (at least 3) are taken when `runs` would exceed the time budget."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    first = _timed(fn, *args)
    count = max(3, min(runs, int(budget_s / max(first, 1e-9)))) if first * runs > budget_s else runs
    samples = [first] + [_timed(fn, *args) for _ in range(count - 1)]
    ms = np.asarray(samples) * 1e3
    return {"ms": float(np.median(ms)), "min_ms": float(ms.min()), "max_ms": float(ms.max()), "runs": int(ms.size)}


def peak_memory_bytes() -> int:
    """Peak bytes in use on a GPU (allocator statistics), or the process's peak
    resident set size on the CPU (a high-water mark: subtract a baseline taken
    before the work to get what the work added)."""
    stats = jax.devices()[0].memory_stats() if jax.devices()[0].platform == "gpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)
