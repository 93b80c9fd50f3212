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
  checked case) when asynchronous copies land when issued and blocks run from the
  last to the first (SPHCNN_EMULATION_EAGER=1, emulated_schedule.h) as when
  copies land at their wait and blocks run in order: every output element is
  written by one block and every sum has a fixed order;
- forced at small sizes (emulate_blocks.cc, forced_plan): the ring DFT with its buffers
  in global scratch on one block per work item, and the on-the-fly analysis's
  accumulators in global scratch with each of its three tiles, one block per
  item or blocks looping over the items, against float64 sums."""

import os
import re
import subprocess

import pytest

from emulation_build import EMULATION, compile_emulation

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

# The emulators and the grid sizes n of their cases run under both schedules.
SCHEDULED = {"emulate_blocks": (4, 8), "emulate_mixing": (8, 16, 32), "emulate_affine": (8, 16, 32)}


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


@pytest.fixture(scope="module")
def schedules(tmp_path_factory):
    """Per emulator: its stdout lines under the deferred and the eager schedule."""
    directory = tmp_path_factory.mktemp("schedules")
    runs = {}
    for name, sizes in SCHEDULED.items():
        binary = compile_emulation(EMULATION / f"{name}.cc", directory)
        outputs = []
        for eager in ("0", "1"):
            env = dict(os.environ, SPHCNN_EMULATION_EAGER=eager)
            result = subprocess.run([str(binary), *map(str, sizes)], capture_output=True, text=True, env=env,
                                    timeout=900)
            assert result.returncode == 0, f"{name} eager={eager}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            outputs.append(result.stdout.splitlines())
        runs[name] = outputs
    return runs


@pytest.mark.parametrize("name", list(SCHEDULED))
def test_outputs_are_bit_identical_under_both_schedules(schedules, name):
    deferred, eager = schedules[name]
    digests = [line for line in deferred if line.startswith("digest ")]
    # one digest after every check line, the summary line last
    assert len(digests) == (len(deferred) - 1) / 2 >= 6
    assert all(line.startswith("digest ") for line in deferred[1:-1:2])
    assert [line for line in eager if line.startswith("digest ")] == digests
    # the errors against float64 sums, computed from the outputs, agree too
    assert eager == deferred


def _forced(lines, pattern):
    return [line for line in lines if re.search(pattern, line)]


def test_forced_launch_choices_match_float64_sums(schedules):
    """The forced cases of emulate_blocks.cc at n = 8 (in the deferred run):
    every element written, zeros below max(|m|, |s|), float32 <= 1e-6 and
    float64 <= 1e-12 relative to the largest float64 sum."""
    lines = schedules["emulate_blocks"][0]
    many_blocks = _forced(lines, r"n=8 .* ring_blocks=128 global-ring:")
    # both directions and precisions (the ring DFT is the same for both lambda sources)
    assert len(many_blocks) == 4
    accumulators = {config: _forced(lines, rf"^analysis .* otf .* k1k2=global-acc config={config} ")
                    for config in range(3)}
    assert all(len(found) == 2 for found in accumulators.values())
    # one block per item (config 0), and fewer blocks than items
    assert "gemm_blocks=5 " in accumulators[1][0] and "gemm_blocks=3 " in accumulators[2][0]
    for line in many_blocks + sum(accumulators.values(), []):
        assert "unwritten 0 nonzero_below 0" in line
        stage, result = map(float, re.search(r"stage ([0-9.e+-]+) result ([0-9.e+-]+)", line).groups())
        assert max(stage, result) <= (1e-6 if " float " in line else 1e-12), line
