"""Every launch the CUDA handlers make, over extreme geometries, without a GPU
(tests/cuda_emulation/sweep_launch_plans.cc): the plans of
csrc/cuda/launch_plan.h and activation_gradient.h for n from 4 to 2048, 1 to
4096 maps, 1 to 8 spins, both precisions and lambda sources, with and without
pooling, evaluated as the handlers evaluate them; every launch within what the
hardware accepts (threads per block in [1, 1024], grid in [1, 2^31 - 1],
dynamic shared memory at most 48 KiB: no kernel opts in to more), every
scratch region inside the scratch without overflow, every int field of a plan
holding its value, and every __global__ kernel of csrc/cuda/*.cu
(transforms_cuda.cu, fused_cuda.cu) launched by some plan."""

import re

from emulation_build import ROOT, launch_sweep

SHARED_WITHOUT_OPT_IN = 48 * 1024


def _global_kernels() -> set[str]:
    source = "".join(path.read_text() for path in sorted((ROOT / "csrc" / "cuda").glob("*.cu")))
    return set(re.findall(r"__global__ void (?:__launch_bounds__\([^)]*\) )?(\w+)\(", source))


def test_every_launch_stays_within_the_hardware_limits():
    summary = launch_sweep()
    assert summary["violations"] == 0
    assert summary["geometries"] >= 100_000
    assert summary["plans"] >= 2_000_000 and summary["launches"] >= 7_000_000
    kernels = summary["kernels"]
    for name, kernel in kernels.items():
        assert 1 <= kernel["threads"] <= 1024, name
        assert 1 <= kernel["max_grid"] <= 2**31 - 1, name
        assert kernel["max_shared"] <= SHARED_WITHOUT_OPT_IN, name
    assert 1 <= summary["max_grid"] <= 2**31 - 1
    assert 0 < summary["max_scratch_bytes"] < 2**63
    # both precisions of every kernel the handlers launch
    launched = {name.split("<")[0] for name in kernels}
    assert launched == _global_kernels()
    assert all(f"{base}<float" in "".join(kernels) and f"{base}<double" in "".join(kernels) for base in launched)
    # the largest tiles come close to the budget: the sweep reaches them
    assert max(kernel["max_shared"] for kernel in kernels.values()) > 48_000
