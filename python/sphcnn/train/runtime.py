"""Process settings of sphcnn's own entry points: the `sphcnn` command and the
benchmarks call these explicitly; importing sphcnn never changes them.

keep_host_memory(): glibc's allocator keeps freed memory instead of returning it
  to the system. XLA's CPU runtime allocates every step's buffers anew; arrays
  over 32 MiB (one spherical MNIST activation at batch 32 is 33.5 MB) come from
  fresh mappings and the arenas of its worker threads shrink after each step,
  so every step page-faults its memory in again: measured 72,000 faults (296 MB)
  and 121 ms of system time per spin_classifier_6_layers step at batch 32 on 2
  cores, 226 ms a step; with one arena, no trimming and no mappings, 0 faults
  and 177 ms. The process keeps its peak memory until it exits. Set
  SPHCNN_HOST_ALLOCATOR=system to leave the allocator alone.

compilation_cache(directory): JAX's persistent compilation cache, so that a
  second run with the same model and batch shapes loads its compiled steps
  instead of compiling them (default directory: $SPHCNN_COMPILATION_CACHE, else
  ~/.cache/sphcnn/jax; entries are never evicted, delete the directory to
  reclaim the space).

step_compiler_options(): XLA options for the jitted train and evaluation steps
  on GPUs. The step has no cuFFT and only command-buffer-compatible custom calls
  (tests/test_step_lowering.py), so XLA can record all of it into CUDA graphs
  (command buffers); xla_gpu_graph_min_graph_size = 1 (XLA's default: 5) also
  captures the short runs of kernels between the regions it would otherwise
  launch one by one. The command types stay XLA's default list (FUSION, CUBLAS,
  CUBLASLT, CUSTOM_CALL, CUDNN). Empty on CPUs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pathlib
import sys

import jax

DEFAULT_CACHE_DIR = pathlib.Path(os.environ.get("SPHCNN_COMPILATION_CACHE", "~/.cache/sphcnn/jax"))
MIN_COMPILE_SECONDS = 0.0
GPU_STEP_OPTIONS = {"xla_gpu_graph_min_graph_size": 1}

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_host_memory() -> bool:
    """Make glibc's malloc keep freed memory (see the module docstring); True when
    applied. Call it before the first JAX computation: threads that already have
    an arena keep theirs."""
    if os.environ.get("SPHCNN_HOST_ALLOCATOR", "") == "system" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):  # not glibc (e.g. musl)
        return False
    settings = ((_M_ARENA_MAX, 1), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_MMAP_MAX, 0))
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)


def compilation_cache(directory: str | os.PathLike | None = None) -> pathlib.Path:
    """Turn on JAX's persistent compilation cache in `directory` (created if
    missing; default DEFAULT_CACHE_DIR) for every compilation of this process,
    however short (MIN_COMPILE_SECONDS = 0: a model's start is also many small
    compilations of its initialization); returns the directory."""
    path = pathlib.Path(directory if directory is not None else DEFAULT_CACHE_DIR).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"compilation cache: cannot create directory {path} ({err.strerror}); pass "
                         "--compilation-cache off or a writable directory") from None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path


_CACHE_EVENTS = {"/jax/compilation_cache/cache_hits": "hits", "/jax/compilation_cache/cache_misses": "misses"}
_cache_counts: dict[str, int] | None = None


def _count_cache_event(event: str, **kwargs) -> None:
    if event in _CACHE_EVENTS:
        _cache_counts[_CACHE_EVENTS[event]] += 1


def cache_counts() -> dict[str, int]:
    """{'hits', 'misses'}: JAX's persistent-cache lookups of this process so far
    (counted from the first call of this function, by jax.monitoring events)."""
    global _cache_counts
    if _cache_counts is None:
        _cache_counts = {"hits": 0, "misses": 0}
        jax.monitoring.register_event_listener(_count_cache_event)
    return dict(_cache_counts)


def step_compiler_options() -> dict:
    """XLA options for the compiled steps on the default backend (see the module docstring)."""
    return dict(GPU_STEP_OPTIONS) if jax.default_backend() in ("cuda", "gpu", "rocm") else {}
