"""What the CUDA hardware refuses and what it may reorder, checked by the CPU
emulation of the blocks (tests/cuda_emulation), and the launch choices the
plans make only at sizes too large to emulate:

- a launch with threads per block outside [1, 1024], a grid outside
  [1, 2^31 - 1], or dynamic shared memory above 48 KiB without the opt-in
  (emulated_launch.h), and an asynchronous copy (csrc/cuda/block_common.h's
  async_copy, emulated_async.h) with an address not aligned to its size or a
  destination past the block's shared memory, each end the program with its
  message (refused_launches.cc); launches and copies at the limits run;
- the emulators' outputs are bit-identical (digests of their bytes, per
  checked case) when asynchronous copies land at once and blocks run from the
  last to the first (SPHCNN_EMULATION_EAGER=1, emulated_schedule.h) as when
  copies land at their wait and blocks run in order: every output element is
  written by one block and every sum has a fixed order;
- forced at small sizes (emulate_blocks.cc, forced_plan): the ring DFT with its buffers
  in global scratch on one block per work item, and the on-the-fly analysis's
  accumulators in global scratch with each of its three tiles, one block per
  item or blocks looping over the items, against float64 sums.

The schedule and forced-plan tests are parametrized over the cases of
tests/emulation_cases.py (one test id per emulator and case, so that collecting
compiles nothing). The fixtures `deferred` and `eager`, built once for the whole
test run (indirect: their parameter is the emulator's name), compile each
emulator once and run it once per schedule: the deferred run over every case
(the very run test_cuda_blocks_emulated.py checks: emulation_build.emulation
keeps it for the test process), the eager one over the cases of SCHEDULED. A
case's records are compared whole, the digest of its outputs among their
fields."""

import subprocess

import pytest

from emulation_build import EMULATION, compile_emulation, emulation
from emulation_cases import EMULATIONS, case_id, cases_of, checks

REFUSALS = [
    ("threads-0", "emulated launch refused: threads per block outside [1, 1024]"),
    ("threads-1025", "emulated launch refused: threads per block outside [1, 1024]"),
    ("grid-0", "emulated launch refused: grid outside [1, 2^31 - 1] blocks"),
    ("grid-2^31", "emulated launch refused: grid outside [1, 2^31 - 1] blocks"),
    ("shared-49153", "emulated launch refused: dynamic shared memory above 48 KiB without the opt-in attribute"),
    ("shared-opt-in-above-maximum", "emulated launch refused: dynamic shared memory above the opt-in maximum"),
    ("copy16-destination", "emulated cp.async refused: shared destination not aligned to the copy's size"),
    ("copy16-source", "emulated cp.async refused: global source not aligned to the copy's size"),
    ("copy16-source-not-read", "emulated cp.async refused: global source not aligned to the copy's size"),
    ("copy8-destination", "emulated cp.async refused: shared destination not aligned to the copy's size"),
    ("copy8-source", "emulated cp.async refused: global source not aligned to the copy's size"),
    ("copy-past-shared", "emulated cp.async refused: shared destination outside the block's dynamic shared memory"),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    return compile_emulation(EMULATION / "refused_launches.cc", tmp_path_factory.mktemp("refusals"))


@pytest.mark.parametrize("case, message", REFUSALS, ids=[case for case, _ in REFUSALS])
def test_what_the_hardware_refuses_ends_the_emulation(refusals, case, message):
    result = subprocess.run([str(refusals), case], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "no refusal" not in result.stdout
    assert message in result.stderr


def test_launches_and_copies_at_the_limits_run(refusals):
    """1024 threads with 48 KiB, 163 KiB with the opt-in, 2^31 - 1 blocks, and
    16- and 8-byte copies at aligned addresses up to the end of shared memory."""
    result = subprocess.run([str(refusals), "within-limits"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "within-limits: no refusal"


# The emulators and the grid sizes n of their cases run under both schedules.
SCHEDULED = {"emulate_blocks": (4, 8), "emulate_mixing": (8, 16, 32), "emulate_affine": (8, 16, 32)}


@pytest.fixture(scope="session")
def deferred(request):
    """The emulator named by the test's parameter over all its cases, deferred."""
    return emulation(request.param)


@pytest.fixture(scope="session")
def eager(request):
    """The emulator named by the test's parameter over its SCHEDULED cases, eager."""
    return emulation(request.param, SCHEDULED[request.param], eager=True)


@pytest.mark.parametrize("deferred, eager, case",
                         [pytest.param(name, name, case, id=f"{name}-{case_id(case)}")
                          for name, sizes in SCHEDULED.items() for case in cases_of(name, sizes)],
                         indirect=["deferred", "eager"])
def test_outputs_are_bit_identical_under_both_schedules(deferred, eager, case):
    # the digests of the outputs, and the errors against float64 sums computed from them, agree
    records = deferred.of_case(case)
    assert records and eager.of_case(case) == records


def test_at_least_6_cases_of_each_emulator_run_under_both_schedules():
    assert all(len(cases_of(name, sizes)) >= 6 for name, sizes in SCHEDULED.items())


def _forced(case):
    return case.get("block_per_item") or "accumulator_config" in case


FORCED = [case for case in EMULATIONS["emulate_blocks"] if "direction" in case and _forced(case)]


@pytest.mark.parametrize("case", FORCED, ids=map(case_id, FORCED))
@pytest.mark.parametrize("deferred", ["emulate_blocks"], indirect=True)
def test_forced_launch_choices_match_float64_sums(deferred, case):
    """The forced cases of emulate_blocks.cc at n = 8 (in the deferred run): the
    plan's launch as forced, every element written, zeros below max(|m|, |s|),
    float32 <= 1e-6 and float64 <= 1e-12 relative to the largest float64 sum."""
    plan = deferred.record(case, "stage")["plan"]
    if case.get("block_per_item"):
        # one block per work item: n rings x (batch spins channels) rows of one row a tile
        assert plan["global_ring"] and plan["ring_rows"] == 1
        assert plan["ring_blocks"] == case["n"] * case["batch"] * len(case["spins"]) * case["channels"] == 128
    else:
        # one block per item (config 0), and fewer blocks than items
        assert plan["k1k2"] == "global-acc" and plan["config"] == case["accumulator_config"]
        if "accumulator_blocks" in case:
            assert plan["gemm_blocks"] == case["accumulator_blocks"]
    bound = 1e-6 if case["precision"] == "float" else 1e-12
    for check in ("stage", "result"):
        assert deferred.record(case, check)["value"] <= bound, check
    for check in {"written", "zeros_below"} & set(checks("emulate_blocks", case)):
        assert deferred.record(case, check)["value"] == 0, check


def test_the_forced_cases_run_both_ways_in_both_precisions_and_every_tile():
    """K1 on one block per item in both directions and precisions (the ring DFT
    is the same for both lambda sources); the global accumulators with each of
    the three tiles in both precisions, one block per item or 5 or 3 blocks."""
    per_item = [case for case in FORCED if case.get("block_per_item")]
    assert len(per_item) == 4 and {case["direction"] for case in per_item} == {"analysis", "synthesis"}
    accumulators = {config: [case for case in FORCED if case.get("accumulator_config") == config]
                    for config in range(3)}
    assert all(len(found) == 2 for found in accumulators.values())
    assert [accumulators[config][0].get("accumulator_blocks") for config in range(3)] == [None, 5, 3]
