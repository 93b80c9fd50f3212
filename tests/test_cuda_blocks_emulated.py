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
(csrc/cuda/affine_stage.h, emulate_affine.cc). And the kernels of the grid targets
(sphcnn_grid_analysis / sphcnn_grid_synthesis: nlat x nlon grids, lambda on the fly at
colatitudes read from device memory) on equiangular 7 x 16 and 10 x 24, Gauss-Legendre
8 x 17 and ERA5's 721 x 1440 rings with their mirror rings paired (the attribute
mirrored), the equiangular 7 x 16 also unpaired, and McEwen-Wiaux-like 5 x 9 rings,
against the same float64 sums at those colatitudes.

How the checks are collected and run: the cases are the Python lists of
tests/emulation_cases.py, so collecting compiles nothing. test_check is
parametrized over (emulator, case, check), one test id each, e.g.
test_check[emulate_blocks-synthesis-otf-n16-ell_max7-...-float-gradient]. The
fixture `emulation`, built once for the whole test run (indirect: its parameter
is the emulator's name), compiles the emulator once and runs it once over all
its cases, each case one JSON argument, the emulator printing one JSON record
per (case, check) (emulation_build.emulation, kept for the test process, so
that test_cuda_emulation_checks.py reuses the run); each test looks up its
record, and a missing record fails. The bounds below are the tests' own: a
record's bound must equal them, and its value be within."""

import pytest

from emulation_build import emulation as _run
from emulation_cases import EMULATIONS, GRID_SPINS, GRIDS, TRANSFORMS, UNPAIRED, argument, case_id, checks

# The relative errors' bounds (float32, float64) against the float64 sums.
ERROR_BOUNDS = {
    ("emulate_blocks", "stage"): (1e-6, 1e-12),
    ("emulate_blocks", "result"): (1e-6, 1e-12),
    ("emulate_blocks", "gradient"): (2e-6, 1e-12),
    **{("emulate_mixing", check): (2e-6, 1e-12) for check in ("a", "b", "energy", "ct_a", "rings")},
    **{("emulate_affine", check): (2e-6, 1e-12) for check in ("ct_a", "products", "constant")},
}
# Checks that count what went wrong: elements not written, not zero where they
# must be, fenced otherwise than needed, or sums whose bits differ on other grids.
COUNTS = {"written", "zeros_below", "zeros", "fences", "grids", "energy_grids", "products_grids"}

CHECKS = [pytest.param(name, case, check, id=f"{name}-{case_id(case)}-{check}")
          for name, cases in EMULATIONS.items() for case in cases for check in checks(name, case)]


@pytest.fixture(scope="session")
def emulation(request):
    """The run of the emulator named by the test's parameter over all its cases."""
    return _run(request.param)


@pytest.mark.parametrize("emulation, case, check", CHECKS, indirect=["emulation"])
def test_check(emulation, case, check):
    record = emulation.record(case, check)
    value, bound = record["value"], record["bound"]
    if (emulation.name, check) in ERROR_BOUNDS:
        expected = ERROR_BOUNDS[emulation.name, check][case["precision"] == "double"]
        assert bound == expected and value <= expected, record
    elif check in COUNTS:
        assert value == 0 == bound, record
    elif check == "chain":
        # chains of at most 20 + 20 additions where one thread per lane added all 8192 rows
        assert value["before"] == case["rows"] and bound == case["chain_at_most"], record
        assert value["first"] <= bound and value["second"] <= bound, record
    else:
        # the bias sums: within the rounding bound of their longest chain of additions
        assert check == "error" and value <= bound, record
    assert record["pass"], record


@pytest.mark.parametrize("emulation", list(EMULATIONS), indirect=True)
def test_every_record_and_only_those_and_exit_status_0(emulation):
    cases = EMULATIONS[emulation.name]
    expected = {(argument(case), check) for case in cases for check in checks(emulation.name, case)}
    assert set(emulation.records) == expected
    assert emulation.returncode == 0, emulation.stderr


def _kind(case):
    analysis = case["direction"] == "analysis"
    if case.get("affine") and not analysis:
        return "affine-synthesis"
    if not case.get("activation"):
        return case["direction"]
    return ("activated" if analysis else "gradient") + ("-pooled" if case["activation"] == 2 else "")


@pytest.mark.parametrize("emulation", ["emulate_blocks"], indirect=True)
def test_the_transforms_cover_every_size_both_ways_and_the_fused_boundary(emulation):
    """Every n in both directions, lambda sources and precisions; at n <= 16 the
    fused block boundary: the ring DFT's prologue and the gradient kernels, with
    and without pooling, the affine synthesis, and the gradient store's shares in
    global scratch (fenced); 12 checks of the bias sums, the spherical MNIST rows'
    chain among them."""
    runs = [case for case in EMULATIONS["emulate_blocks"] if "direction" in case and not case.get("grid")]
    for n in {case["n"] for case in TRANSFORMS}:
        assert {(case["direction"], case["lambda"], case["precision"]) for case in runs if case["n"] == n} == {
            (d, s, p) for d in ("analysis", "synthesis") for s in ("table", "otf") for p in ("float", "double")}, n
    small = [case for case in runs if case["n"] <= 16]
    fused = {"activated", "activated-pooled", "gradient", "gradient-pooled", "affine-synthesis"}
    assert fused <= set(map(_kind, small))
    assert any(_kind(case) == "gradient" and emulation.record(case, "fences")["plan"]["global_ring"] for case in small)
    bias_sums = [case for case in EMULATIONS["emulate_blocks"] if case.get("bias_sums")]
    assert len(bias_sums) == 12 and any(case["rows"] == 8192 and "chain" in checks("emulate_blocks", case)
                                        for case in bias_sums)


@pytest.mark.parametrize("emulation", ["emulate_blocks"], indirect=True)
def test_the_grid_targets_cover_every_grid_both_ways_signs_and_precisions(emulation):
    """Each grid of GRIDS in both directions, signs and precisions with each of
    GRID_SPINS, on the kernels of the grid targets, the mirrored ones (all but
    the McEwen-Wiaux-like rings) with their mirror rings paired; a mirrored grid
    unpaired (UNPAIRED: every ring alone) and ERA5's 721 x 1440, paired, in both
    directions, precisions and signs."""
    runs = [case for case in EMULATIONS["emulate_blocks"] if case.get("grid")]
    assert {grid["rings"] for grid in GRIDS if grid.get("mirrored")} == {"equiangular", "gauss"}
    for grid in GRIDS:
        got = {(case["direction"], tuple(case["spins"]), case["sign"], case["precision"]) for case in runs
               if (case["rings"], case["nlat"], case["nlon"], case.get("mirrored", False))
               == (grid["rings"], grid["nlat"], grid["nlon"], grid.get("mirrored", False))}
        assert got == {(d, tuple(s), sign, p) for d in ("analysis", "synthesis") for s in GRID_SPINS
                       for sign in (-1, 1) for p in ("float", "double")}, grid
    unpaired = [case for case in runs if case["rings"] == UNPAIRED["rings"] and case["nlat"] == UNPAIRED["nlat"]
                and not case.get("mirrored")]
    era5 = [case for case in runs if case["nlat"] == 721]
    assert all(case["mirrored"] for case in era5)
    for some in (unpaired, era5):
        assert {case["direction"] for case in some} == {"analysis", "synthesis"}
        assert {case["sign"] for case in some} == {-1, 1} and {case["precision"] for case in some} == {"float", "double"}
    assert all(case["lambda"] == "otf" and case["nlon"] >= 2 * case["ell_max"] + 1 for case in runs)
    assert all(emulation.record(case, "result")["pass"] for case in runs)


@pytest.mark.parametrize("emulation", ["emulate_mixing"], indirect=True)
def test_the_mixing_reaches_both_batch_tile_regimes_and_two_degree_tiles(emulation):
    """Several items a block and several column tiles an item, and two degree
    tiles, as the plans choose them."""
    plans = [(case, emulation.record(case, "a")["plan"]) for case in EMULATIONS["emulate_mixing"]]
    assert any(plan["batch_tile"] == 32 and plan["degree_tiles"] == 2 for _, plan in plans)
    assert any(case["channels"] == 40 and plan["batch_tile"] == 1 for case, plan in plans)


@pytest.mark.parametrize("emulation", ["emulate_affine"], indirect=True)
def test_the_batch_norms_gradient_reaches_every_tile_and_two_degree_tiles(emulation):
    plans = [emulation.record(case, "ct_a")["plan"] for case in EMULATIONS["emulate_affine"]]
    assert {plan["config"] for plan in plans} >= {0, 1, 2}
    assert any(plan["degree_tiles"] == 2 for plan in plans)
