"""The one FFI contract (csrc/include/sphcnn/contract.h) without a GPU: handler
metadata read the way XLA reads it at registration (every CUDA handler is
command-buffer compatible), the capture-safety lint of the CUDA execute path,
the CPU targets' checks of every operand and attribute, the packed lambda table
against the dense one, and the CPU kernels reading the table against the
recurrence and the xla backend."""

from __future__ import annotations

import ctypes
import importlib.util
import pathlib
import re
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sphcnn_kernels as sk
from emulation_build import host_compiler
from references import random_coefficients, random_maps
from sphcnn_kernels import _cpu, grids
from sphcnn_kernels.backends import ffi_backend
from sphcnn_kernels.plan import get_plan
from sphcnn_kernels.ops import analysis_p

ROOT = pathlib.Path(__file__).resolve().parents[1]
CMD_BUFFER_COMPATIBLE = 1  # XLA_FFI_HANDLER_TRAITS_COMMAND_BUFFER_COMPATIBLE
HAS_CUDA_MODULE = importlib.util.find_spec("sphcnn_kernels._cuda") is not None
# The mixing has a CPU kernel of its own (sphcnn_kernels.ops.mixing); on GPUs it is
# the epilogue of the analysis and, transposed, the prologue of the gradient's synthesis
# (sphcnn_mixing_analysis, sphcnn_mixing_gradient: sphcnn_kernels.ops.mixing_analysis); the
# batch norm's gradient is the epilogue of the affine synthesis's transpose on CUDA
# (sphcnn_affine_gradient); on CPUs these are compositions of the other targets.
# The grid targets (any nlat x nlon grid) run on both platforms.
CPU_ONLY = {"sphcnn_mixing", "sphcnn_mixing_weight_gradient"}
CUDA_ONLY = {"sphcnn_mixing_analysis", "sphcnn_mixing_gradient", "sphcnn_affine_gradient"}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    compiler = host_compiler()
    library = tmp_path_factory.mktemp("probe") / "probe.so"
    command = [compiler, "-std=c++17", "-shared", "-fPIC", "-isystem", jax.ffi.include_dir(),
               str(ROOT / "tests" / "ffi_metadata" / "probe.cc"), "-o", str(library)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(library))
    lib.handler_metadata.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_int),
                                     ctypes.POINTER(ctypes.c_int)]
    lib.handler_metadata.restype = ctypes.c_int
    return lib


def _metadata(probe, capsule) -> tuple[int, int, int]:
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    get_pointer.restype = ctypes.c_void_p
    traits, major, minor = ctypes.c_uint32(), ctypes.c_int(), ctypes.c_int()
    assert probe.handler_metadata(get_pointer(capsule, None), traits, major, minor) == 0
    return traits.value, major.value, minor.value


def test_cpu_handlers_report_their_metadata(probe):
    registrations = _cpu.registrations()
    assert set(registrations) == {"sphcnn_analysis", "sphcnn_synthesis", "sphcnn_activated_analysis",
                                  "sphcnn_activated_gradient", "sphcnn_affine_synthesis", "sphcnn_grid_analysis",
                                  "sphcnn_grid_synthesis"} | CPU_ONLY
    for capsule in registrations.values():
        _, major, minor = _metadata(probe, capsule)
        assert (major, minor) >= (0, 1)


@pytest.mark.skipif(not HAS_CUDA_MODULE, reason="the CUDA module is not built (no nvcc)")
def test_every_cuda_handler_is_command_buffer_compatible(probe):
    from sphcnn_kernels import _cuda

    registrations = _cuda.registrations()
    assert set(registrations) == set(_cpu.registrations()) - CPU_ONLY | CUDA_ONLY  # one contract
    for name, capsule in registrations.items():
        traits, major, _ = _metadata(probe, capsule)
        assert traits & CMD_BUFFER_COMPATIBLE, f"{name}: traits {traits}"
        assert major == 0


def test_cuda_execute_path_has_no_allocation_event_or_cache():
    # Capture safety: XLA may record the handlers into CUDA graphs, so the
    # execute path must not allocate, record or wait for events, or cache.
    banned = re.compile(r"\b(cudaMalloc\w*|cudaFree\w*|cudaEvent\w*|cudaStreamWaitEvent|cudaDeviceGetAttribute|"
                        r"cudaGetDevice\w*|cudaSetDevice|cudaStreamSynchronize|cudaDeviceSynchronize|std::mutex|"
                        r"static\s+std::map|thread_local)\b")
    sources = sorted((ROOT / "csrc" / "cuda").glob("*.cu")) + sorted((ROOT / "csrc" / "cuda").glob("*.h"))
    assert sources
    for path in sources:
        text = path.read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
        found = banned.findall(code)
        assert not found, f"{path.name}: {sorted(set(found))}"


@pytest.mark.parametrize("n, ell_max, spins", [(8, 3, (0,)), (16, 5, (2, -1, 0)), (64, 31, (0, 3)), (70, 34, (-2,))])
@pytest.mark.parametrize("double", [False, True])
def test_packed_table_holds_the_dense_table(n, ell_max, spins, double):
    plan = get_plan(n, ell_max, spins, "complex128" if double else "complex64")
    packed = plan.packed_table
    assert packed.dtype == plan.real_dtype and packed.size * packed.itemsize == plan.packed_table_bytes
    dense = plan.dense_table  # (S, M, L, n)
    L, half, quantum = ell_max + 1, n // 2, 16 // packed.itemsize
    rows = [-(-(L - am) // quantum) * quantum for am in range(L)]
    offset = 0
    for s in range(len(spins)):
        for am in range(L):
            block = packed[offset: offset + 2 * half * rows[am]].reshape(2, half, rows[am])
            offset += block.size
            for sg, m in enumerate((am, -am)):
                want = dense[s, ell_max + m, am:, :half].T  # (half, L - am)
                np.testing.assert_array_equal(block[sg, :, : L - am], want)
                assert np.all(block[sg, :, L - am:] == 0)
    assert offset == packed.size


@pytest.mark.parametrize("layout", ["batch_major", "degree_major"])
@pytest.mark.parametrize("n, ell_max, spins", [(8, 3, (0, 1)), (32, 15, (-2, 0, 3)), (34, 10, (1,))])
def test_cpu_kernels_reading_the_table_match_the_recurrence(n, ell_max, spins, layout):
    rng = np.random.default_rng(n + ell_max)
    x = random_maps(rng, (3,), n, spins, 2)
    a = random_coefficients(rng, (3,), ell_max, spins, 2)
    if layout == "degree_major":
        a = np.moveaxis(a, 1, 0)
    results = {}
    for backend, mode in (("ffi", "table"), ("ffi", "onthefly"), ("xla", "auto")):
        t = sk.SphericalTransform(n, spins, ell_max, "complex128", backend=backend, layout=layout, mode=mode)
        results[mode] = (np.asarray(t.forward(x)), np.asarray(t.inverse(a)))
    for mode in ("table", "onthefly"):
        for got, want in zip(results[mode], results["auto"]):
            assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()


def _cpu_call(target, operand, out, scale, table, *, spins=(0,), sign=-1, source=1, degree_major=False,
              scratch=None):
    ffi_backend.extension("cpu")
    if scratch is None:
        scratch = 1 << 20
    call = jax.ffi.ffi_call(target, (out, jax.ShapeDtypeStruct((scratch,), np.uint8)))
    return call(operand, scale, table, spins=np.asarray(spins, np.int64), sign=np.int32(sign),
                degree_major=degree_major, lambda_source=np.int32(source))[0]


@pytest.mark.parametrize("change, message", [
    (dict(sign=0), r"sphcnn_analysis: sign must be -1 or \+1, got 0"),
    (dict(source=2), r"lambda_source must be 0 \(table\) or 1 \(on the fly\)"),
    (dict(source=0), r"the lambda table must hold \d+ entries"),
    (dict(spins=(0, 1)), r"inconsistent shapes"),
    (dict(scale=np.ones(10, np.float64)), r"ring_scale must be a real vector of nlat = 8 entries"),
    (dict(scale=np.ones(8, np.float32)), r"ring_scale must be a real vector"),
    (dict(operand=np.zeros((2, 8, 8, 1, 3), np.float64), spins=(1,)), r"real maps need every spin to be 0"),
    (dict(operand=np.zeros((3, 8, 8, 1, 3), np.complex128)), r"batch axes of \(3, 8, 8, 1, 3\) and \(2, 4, 7, 1, 3\) differ"),
])
def test_cpu_targets_check_the_contract(change, message):
    args = dict(operand=np.zeros((2, 8, 8, 1, 3), np.complex128), out=jax.ShapeDtypeStruct((2, 4, 7, 1, 3), np.complex128),
                scale=np.ones(8, np.float64), table=np.zeros((0,), np.float64))
    keywords = {}
    for key, value in change.items():
        (args if key in args else keywords)[key] = value
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(_cpu_call("sphcnn_analysis", args["operand"], args["out"], args["scale"], args["table"],
                                        **keywords))


@pytest.mark.parametrize("grid, mirrored, message", [
    (grids.equiangular(7, 16), False, r"sphcnn_grid_analysis: the attribute mirrored is false but ring_theta's rings "
                                         r"j and nlat - 1 - j are mirror images"),
    (grids.mw(5), True, r"sphcnn_grid_analysis: the attribute mirrored is true but ring_theta's rings "
                                        r"j and nlat - 1 - j are not mirror images"),
])
def test_cpu_grid_targets_check_the_attribute_mirrored(grid, mirrored, message):
    ffi_backend.extension("cpu")
    nlat, nlon = grid.shape
    call = jax.ffi.ffi_call("sphcnn_grid_analysis", (jax.ShapeDtypeStruct((1, 4, 7, 1, 1), np.complex128),
                                                     jax.ShapeDtypeStruct((0,), np.uint8)))
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(call(np.zeros((1, nlat, nlon, 1, 1), np.complex128), np.ones(nlat), np.zeros((0,)),
                                   ffi_backend.ring_theta(grid, "complex128"), spins=np.zeros(1, np.int64),
                                   sign=np.int32(-1), degree_major=False, lambda_source=np.int32(1),
                                   mirrored=mirrored))
    assert ffi_backend.mirrored(grid, "complex128") is not mirrored


def test_cpu_targets_accept_a_valid_call():
    # ring_scale 1 and sign -1: the unweighted analysis, as the xla backend computes it.
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 1, 3)) + 0j
    out = _cpu_call("sphcnn_analysis", x, jax.ShapeDtypeStruct((2, 4, 7, 1, 3), np.complex128), np.ones(8),
                    np.zeros((0,)), scratch=_cpu.scratch_bytes(True, 8, 3, 1, 2, 3, True, 1))
    want = analysis_p.bind(jnp.asarray(x), plan=get_plan(8, 3, (0,), "complex128"), sign=-1, weighted=False,
                           backend="xla", precision="highest", layout="batch_major", mode="auto")
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), atol=1e-12)


def test_scratch_sizes_are_what_the_kernels_use():
    # CPU: none (the kernels' work buffers stay warm in a cache of their own).
    assert _cpu.scratch_bytes(True, 16, 7, 2, 3, 5, False, 1) == 0
    assert _cpu.scratch_bytes(False, 16, 7, 2, 3, 5, True, 0) == 0
    if HAS_CUDA_MODULE:
        from sphcnn_kernels import _cuda

        # CUDA: the Fourier rings (S, M, n, P padded to 16 bytes), 256-byte aligned, plus nothing else
        # when the kernels' buffers fit shared memory.
        assert _cuda.scratch_bytes(True, 16, 7, 2, 3, 5, False, 0) == -(-2 * 15 * 16 * 16 * 8 // 256) * 256
        assert _cuda.scratch_bytes(True, 16, 7, 2, 3, 5, True, 0) == -(-2 * 15 * 16 * 15 * 16 // 256) * 256
