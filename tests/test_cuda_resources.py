"""The resources of the CUDA kernels as ptxas allocates them, without a GPU:
the CUDA sources csrc/cuda/*.cu (transforms_cuda.cu, fused_cuda.cu) compiled
with nvcc for sm_90 and sm_80 (the flags and include directories of the _cuda
target of CMakeLists.txt) into cubins, with ptxas's report of every kernel:

- registers x threads per block (the kernel's __launch_bounds__, the block
  size every launch uses) fit the 65536 registers of a multiprocessor;
- static shared memory plus the largest dynamic shared memory any launch plan
  gives the kernel (tests/cuda_emulation/sweep_launch_plans.cc) fit 48 KiB, the
  limit without opting in (no kernel opts in);
- float kernels do not spill registers to local memory (the double kernels'
  spills are recorded, as the test's property "spills").

Skipped where nvcc is not on PATH."""

import re
import shutil
import subprocess

import jax.ffi
import pytest

from emulation_build import ROOT, launch_sweep

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH: the CUDA kernels are not compiled")

ARCHES = ("sm_90", "sm_80")
REGISTER_FILE = 65536
SHARED_WITHOUT_OPT_IN = 48 * 1024
CUDA = ROOT / "csrc" / "cuda"
SOURCES = sorted(CUDA.glob("*.cu"))
REPORT = re.compile(
    r"Function properties for (\S+)\n\s*(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads\n"
    r"ptxas info\s*: Used (\d+) registers(.*)")


def _launch_bounds() -> dict[str, int]:
    """Threads per block of each __global__ kernel: its __launch_bounds__ constant."""
    constants = {}
    for header in CUDA.glob("*.h"):
        constants.update((name, int(value)) for name, value in
                         re.findall(r"constexpr int (k\w+) = (\d+);", header.read_text()))
    source = "".join(path.read_text() for path in SOURCES)
    bounds = re.findall(r"__global__ void __launch_bounds__\((\w+)\) (\w+)\(", source)
    assert len(bounds) == len(re.findall(r"__global__ void", source)), "a kernel without __launch_bounds__"
    return {kernel: constants[constant] for constant, kernel in bounds}


def _readable(mangled: list[str]) -> list[str]:
    """Demangled names without namespaces and parameters, as the sweep names them."""
    demangler = shutil.which("cu++filt") or shutil.which("c++filt")
    assert demangler is not None, "no cu++filt or c++filt to demangle the kernels' names"
    lines = subprocess.run([demangler], input="\n".join(mangled), capture_output=True, text=True,
                           check=True).stdout.splitlines()
    names = []
    for line in lines:
        line = line.replace("sphcnn::cuda::(anonymous namespace)::", "").replace("sphcnn::cuda::", "")
        names.append(re.sub(r"\s+>", ">", line.removeprefix("void ").split("(")[0]))
    return names


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, dict[str, dict]]:
    """Per architecture, per kernel: registers, spill stores and loads, static shared bytes."""
    directory = tmp_path_factory.mktemp("cubins")
    flags = ["-O3", "--expt-relaxed-constexpr", "-std=c++17", f"-I{ROOT / 'csrc' / 'include'}", f"-I{CUDA}",
             "-isystem", jax.ffi.include_dir(), "-cubin", "-Xptxas", "-v"]
    for arch in ARCHES:
        (directory / arch).mkdir()
    compiles = {arch: subprocess.Popen([NVCC, f"-arch={arch}", *flags, *map(str, SOURCES), "--output-directory",
                                        str(directory / arch)],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for arch in ARCHES}
    found = {}
    for arch, process in compiles.items():
        log = process.communicate(timeout=600)[0]
        assert process.returncode == 0, log[-3000:]
        entries = REPORT.findall(log)
        assert entries, log[-3000:]
        found[arch] = {
            name: {"registers": int(entry[4]), "spill_stores": int(entry[2]), "spill_loads": int(entry[3]),
                   "static_shared": int(m[1]) if (m := re.search(r"(\d+) bytes smem", entry[5])) else 0}
            for name, entry in zip(_readable([entry[0] for entry in entries]), entries)}
    return found


@pytest.mark.parametrize("arch", ARCHES)
def test_registers_fit_the_register_file(reports, arch):
    bounds = _launch_bounds()
    kernels = reports[arch]
    unmapped = sorted(name for name in kernels if name.split("<")[0] not in bounds)
    assert not unmapped, f"kernels without known threads per block: {unmapped}"
    # every kernel of the source, in both precisions
    assert {name.split("<")[0] for name in kernels} == set(bounds) and len(kernels) >= 2 * len(bounds)
    for name, kernel in kernels.items():
        assert kernel["registers"] * bounds[name.split("<")[0]] <= REGISTER_FILE, (name, kernel)


@pytest.mark.parametrize("arch", ARCHES)
def test_shared_memory_fits_without_opt_in(reports, arch):
    bounds = _launch_bounds()
    plans = launch_sweep()["kernels"]
    missing = sorted(set(reports[arch]) - set(plans))
    assert not missing, f"kernels no launch plan of the sweep launches: {missing}"
    for name, kernel in reports[arch].items():
        # launches use the block size the kernel was compiled for
        assert plans[name]["threads"] == bounds[name.split("<")[0]], name
        assert kernel["static_shared"] + plans[name]["max_shared"] <= SHARED_WITHOUT_OPT_IN, (name, kernel)


@pytest.mark.parametrize("arch", ARCHES)
def test_float_kernels_do_not_spill(reports, arch, record_property):
    spills = {name: (kernel["spill_stores"], kernel["spill_loads"]) for name, kernel in reports[arch].items()
              if kernel["spill_stores"] or kernel["spill_loads"]}
    record_property("spills", spills)
    floats = [name for name in reports[arch] if re.match(r"\w+<float\b", name)]
    assert len(floats) == len(reports[arch]) / 2
    assert not [name for name in floats if name in spills], spills
