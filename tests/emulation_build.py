"""Builds the programs of tests/cuda_emulation (the CUDA blocks run on CPU
threads, the sweep of the launch plans) with the host C++ compiler: CXX, else
g++ or c++, skipping the test without one. C++20 with -pthread, the emulated
asynchronous copies (-DSPHCNN_EMULATED_ASYNC), and the include directories of
the CUDA blocks, the CPU kernels, the emulation and the XLA FFI headers.

`emulation` builds an emulator once per test process and runs it once per
selection of its cases and schedule, keeping its JSON records (one per check of a case,
tests/cuda_emulation/emulated_reference.h) by case and check."""

import dataclasses
import functools
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import jax.ffi
import pytest

from emulation_cases import argument, cases_of

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


@functools.cache
def _build_directory() -> tempfile.TemporaryDirectory:
    """Where the emulators are built, removed when the test process ends."""
    return tempfile.TemporaryDirectory(prefix="sphcnn-emulators-")


@functools.cache
def _emulator(name: str) -> pathlib.Path:
    return compile_emulation(EMULATION / f"{name}.cc", pathlib.Path(_build_directory().name))


@dataclasses.dataclass(frozen=True)
class Emulation:
    """One run of an emulator: its records by (case argument, check), its exit
    status (0: every check passed; 1: one failed or a case could not run; 2: a
    malformed case; else it crashed) and the end of its stderr."""

    name: str
    records: dict
    returncode: int
    stderr: str

    def record(self, case: dict, check: str) -> dict:
        """The record of `check` for `case`; a missing one fails the test, with
        the exit status and stderr of the run."""
        found = self.records.get((argument(case), check))
        assert found is not None, (f"{self.name} printed no {check!r} record for {argument(case)} "
                                   f"(exit status {self.returncode}):\n{self.stderr}")
        return found

    def of_case(self, case: dict) -> list[dict]:
        """Every record of `case`, in the order printed."""
        return [record for (given, _), record in self.records.items() if given == argument(case)]


@functools.cache
def emulation(name: str, sizes: tuple[int, ...] | None = None, eager: bool = False) -> Emulation:
    """Runs tests/cuda_emulation/<name>.cc (built once per test process) over its
    cases in tests/emulation_cases.py (those of grid sizes n in `sizes` when
    given), under the eager schedule (SPHCNN_EMULATION_EAGER=1,
    emulated_schedule.h) or the deferred one."""
    env = dict(os.environ, SPHCNN_EMULATION_EAGER="1" if eager else "0")
    result = subprocess.run([str(_emulator(name)), *map(argument, cases_of(name, sizes))], capture_output=True,
                            text=True, env=env, timeout=1800)
    records = {}
    for line in result.stdout.splitlines():
        record = json.loads(line)
        records[argument(record["case"]), record["check"]] = record
    return Emulation(name, records, result.returncode, result.stderr[-3000:])
