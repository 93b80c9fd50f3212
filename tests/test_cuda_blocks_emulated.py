"""The CUDA Legendre-stage kernels without a GPU: the block functions of
csrc/cuda/legendre_blocks.h (the exact code the __global__ kernels run) are
compiled for the CPU with an emulator of the CUDA thread block
(tests/cuda_emulation/emulate_blocks.cc: one thread per CUDA thread, a barrier
for __syncthreads) and compared with float64 sums over the shared recurrence,
in table and on-the-fly modes, both directions, float and double. The same
kernels run for real in tests/test_gpu_kernels.py on a GPU."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "cuda_emulation" / "emulate_blocks.cc"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    binary = tmp_path_factory.mktemp("emulator") / "emulate_blocks"
    command = [compiler, "-std=c++20", "-O2", "-pthread", f"-I{ROOT / 'csrc' / 'include'}",
               f"-I{ROOT / 'csrc' / 'cuda'}", str(SOURCE), "-o", str(binary)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return binary


def _worst(output: str) -> dict:
    found = dict(re.findall(r"(float|double) ([0-9.e+-]+)", output.splitlines()[-1]))
    return {k: float(v) for k, v in found.items()}


def test_blocks_match_float64_reference(emulator):
    # n from 4 to 140, pooled cases, |s| > ell_max, 1 to 33 channels, several
    # degree chunks and ring tiles, recurrence state in shared and global memory.
    result = subprocess.run([str(emulator)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "nonfinite 0" in result.stdout and "nonfinite 1" not in result.stdout
    worst = _worst(result.stdout)
    assert worst["float"] < 1e-5 and worst["double"] < 1e-12


def test_blocks_at_high_degree(emulator):
    # n = 256 (ell_max = 127) with spin -40: the scaled regime of the recurrence.
    result = subprocess.run([str(emulator), "256"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    worst = _worst(result.stdout)
    assert worst["float"] < 1e-5 and worst["double"] < 1e-12
