"""Builds the programs of tests/cuda_emulation (the CUDA blocks run on CPU
threads, the sweep of the launch plans) with the host C++ compiler: CXX, else
g++ or c++, skipping the test without one. C++20 with -pthread, the emulated
asynchronous copies (-DSPHCNN_EMULATED_ASYNC), and the include directories of
the CUDA blocks, the CPU kernels, the emulation and the XLA FFI headers."""

import functools
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import jax.ffi
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EMULATION = ROOT / "tests" / "cuda_emulation"


def host_compiler() -> str:
    """The host C++ compiler (CXX, else g++ or c++); skips the test without one."""
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    return compiler


def compile_emulation(source: pathlib.Path, directory: pathlib.Path) -> pathlib.Path:
    """The binary of `source`, built in `directory`."""
    compiler = host_compiler()
    binary = directory / source.stem
    includes = [f"-I{ROOT / 'csrc' / d}" for d in ("include", "cuda", "cpu")] + ["-isystem", jax.ffi.include_dir()]
    command = [compiler, "-std=c++20", "-O2", "-pthread", "-DSPHCNN_EMULATED_ASYNC", f"-I{EMULATION}", *includes,
               str(source), "-o", str(binary)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return binary


@functools.cache
def launch_sweep() -> dict:
    """The JSON summary of sweep_launch_plans.cc (every launch of the CUDA
    handlers over extreme geometries), built and run once per test process."""
    with tempfile.TemporaryDirectory(prefix="sphcnn-sweep-") as directory:
        binary = compile_emulation(EMULATION / "sweep_launch_plans.cc", pathlib.Path(directory))
        result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)
