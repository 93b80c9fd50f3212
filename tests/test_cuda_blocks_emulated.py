"""The CUDA kernels without a GPU: the block functions of the ring DFT (csrc/cuda/ring_dft.h)
and the Legendre stage (csrc/cuda/legendre_gemm.h), the exact code the __global__ kernels run,
are compiled for the CPU with an emulator of the CUDA thread block
(tests/cuda_emulation/emulate_blocks.cc: one thread per CUDA thread, a barrier
for __syncthreads, asynchronous copies completed only at their wait) and
launched with the handler's launch plan. Both stages are compared with float64
sums: fp32 <= 1e-6 and fp64 <= 1e-12 relative to the largest reference value,
every output element written (outputs and scratch start as NaN), exact zeros
below max(|m|, |s|), n from 4 to 256 (and 70 = 2 5 7), spins up to |s| = 3
(and |s| > ell_max), pooled ell_max, odd batch and channel counts, both
spectral layouts, real input for spin 0, table and on-the-fly lambda. The same
kernels run for real in tests/test_gpu_kernels.py on a GPU. The fused block
boundary too: the ring DFT with the prologue of the activated analysis (the magnitude
nonlinearity, and the pooling from the 2n grid) against sums of maps
activated and pooled in double, and the gradient kernels
(csrc/cuda/activation_gradient.h) after the synthesis against the transposed
pooling in double and the derivative of the nonlinearity's definition in long
double, the bias sums against long double sums and bit-identical on any grid,
and every thread's fences before the barriers after which it reads global
memory other threads wrote (csrc/cuda/block_common.h); and the affine
synthesis (the ring DFT applying a batch norm's factor and offset to the rings of the
synthesis) against the sums of the mapped coefficients; and the Legendre stage with the
convolution's product and the batch norm's partial sums as its epilogue, and
with the transposed product as the prologue of the gradient's synthesis
(csrc/cuda/mixing_stage.h, emulate_mixing.cc); and the Legendre stage of the affine
synthesis's transpose with the batch norm's gradient as its epilogue
(csrc/cuda/affine_stage.h, emulate_affine.cc)."""

import pathlib
import re
import subprocess

import pytest

from emulation_build import compile_emulation as _compile

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "cuda_emulation" / "emulate_blocks.cc"
MIXING_SOURCE = ROOT / "tests" / "cuda_emulation" / "emulate_mixing.cc"
AFFINE_SOURCE = ROOT / "tests" / "cuda_emulation" / "emulate_affine.cc"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    return _compile(SOURCE, tmp_path_factory.mktemp("emulator"))


def _run(emulator, sizes):
    result = subprocess.run([str(emulator), *map(str, sizes)], capture_output=True, text=True, timeout=900)
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    worst = dict(re.findall(r"(?<!gradient )(float|double) ([0-9.e+-]+)", lines[-1]))
    gradient = dict(re.findall(r"gradient (float|double) ([0-9.e+-]+)", lines[-1]))
    return result, lines, {k: float(v) for k, v in worst.items()}, {k: float(v) for k, v in gradient.items()}


@pytest.mark.parametrize("sizes", [(4, 8, 16, 32, 64, 70), (128, 256)], ids=["n4-70", "n128-256"])
def test_k1_and_k2_match_float64_sums(emulator, sizes):
    result, lines, worst, gradient = _run(emulator, sizes)
    assert result.returncode == 0, "\n".join(lines[-40:])
    checks = [line for line in lines[:-1] if "unwritten" in line]
    # every size, both directions, both lambda sources, both precisions
    assert len(checks) >= 8 * len(sizes)
    assert all("unwritten 0 nonzero_below 0 unfenced 0" in line for line in checks)
    assert worst["float"] <= 1e-6 and worst["double"] <= 1e-12
    # the fused block boundary: the ring DFT's prologue and the gradient kernels, with and without pooling, and the
    # gradient store's shares in global scratch (fenced); the gradient against its long double derivative
    if sizes[0] <= 16:
        for kind in ("activated ", "activated-pooled", "gradient ", "gradient-pooled", "affine-synthesis"):
            assert any(line.startswith(kind) for line in checks), kind
        assert any(line.startswith("gradient ") and "global-ring" in line for line in checks)
    assert gradient["float"] <= 2e-6 and gradient["double"] <= 1e-12


def test_bias_sums_match_long_double_sums_on_any_grid(emulator):
    """The activated gradient's bias sums (column_sum_block in two levels) of
    random partials against long double sums, within the rounding bound of
    their longest chain of additions; the same bits on 1 and 5 blocks per level
    as on the handler's grids; chains of at most 20 + 20 additions where one
    thread per lane added all 8192 rows (a batch of 128 on a grid of 64 rings)."""
    result = subprocess.run([str(emulator), "bias-sums"], capture_output=True, text=True, timeout=300)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and lines[-1] == "bias-sums problems 0", result.stdout + result.stderr
    checks = [line for line in lines if line.startswith("bias-sum ")]
    assert len(checks) == 12 and all(line.endswith("problems 0") for line in checks)
    for line in checks:
        error, bound = map(float, re.search(r"error (\S+) bound (\S+)", line).groups())
        assert error <= bound
    mnist = [re.search(r"chain (\d+) -> (\d+) \+ (\d+)", line).groups() for line in checks if "rows=8192" in line]
    assert mnist and all(int(before) == 8192 and int(first) <= 20 and int(second) <= 20
                         for before, first, second in mnist)


def _run_fused_stage(source: pathlib.Path, directory: pathlib.Path, kind: str) -> list[str]:
    """Compiles and runs one fused-stage emulator: its `kind` check lines, after
    asserting a zero exit, 12 checks (6 cases x 2 precisions) without problems and
    the worst errors float32 <= 2e-6, float64 <= 1e-12."""
    binary = _compile(source, directory)
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=900)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, "\n".join(lines[-20:]) + result.stderr
    checks = [line for line in lines if line.startswith(kind + " ")]
    assert len(checks) == 12 and all(line.endswith("problems 0") for line in checks)
    worst = dict(re.findall(r"(float|double) ([0-9.e+-]+)", lines[-1]))
    assert float(worst["float"]) <= 2e-6 and float(worst["double"]) <= 1e-12
    return checks


def test_k2_with_the_convolutions_mixing_matches_float64_sums(tmp_path):
    """The Legendre stage with the convolution's epilogue (analysis_mixing_block and
    energy_sum_block): the coefficients a, the mixed b (zeros at |m| > l) and the
    energies against float64 sums, every element written, the energies
    bit-identical whatever the number of blocks; and the Legendre stage of the gradient's
    synthesis with the transposed mixing as its prologue
    (synthesis_mixing_block): ct_a and the rings, padding columns zero; both
    with every thread's fence before it reads back global memory other threads
    wrote (counted in the problems)."""
    checks = _run_fused_stage(MIXING_SOURCE, tmp_path, "mixing")
    assert all(" ct_a " in line and " rings " in line for line in checks)
    # both batch-tile regimes (several items a block, several column tiles an item) and two degree tiles
    assert any("batch_tile=32 degree_tiles=2" in line for line in checks)
    assert any("C=40" in line and "batch_tile=1" in line for line in checks)


def test_k2_with_the_batch_norms_gradient_matches_float64_sums(tmp_path):
    """The Legendre stage of the affine synthesis's transpose with the batch norm's gradient as
    its epilogue (affine_gradient_block, affine_sum_block): ct_a = factor u, the
    products' sums and u at a_00 against float64 sums, every tile shape, spin
    groups, several degree tiles, the sums bit-identical whatever the number of
    blocks."""
    checks = _run_fused_stage(AFFINE_SOURCE, tmp_path, "affine-gradient")
    assert {f"config={c}" for c in range(3)} <= {word for line in checks for word in line.split()}
    assert any("degree_tiles=2" in line for line in checks)
