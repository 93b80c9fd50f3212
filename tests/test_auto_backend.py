"""backend="auto" follows its table: rows in the shipped format, as
benchmarks.transforms --update-auto writes them, decide what each direction
lowers to; CUDA kernels run under "auto" only when the table holds medians of
the sources they were built from; and the driver check names both versions."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pathlib
import re
import shutil
import subprocess

import jax
import jax.numpy as jnp
import pytest

import sphcnn_kernels as sk
from benchmarks import transforms as transform_benchmark
from sphcnn_kernels import auto
from sphcnn_kernels.backends import cuda_runtime

ROOT = pathlib.Path(__file__).resolve().parents[1]
HAS_CUDA_MODULE = importlib.util.find_spec("sphcnn_kernels._cuda") is not None
needs_cuda_module = pytest.mark.skipif(not HAS_CUDA_MODULE, reason="the CUDA module is not built (no nvcc)")


def _records(platform: str, n: int, analysis: dict, synthesis: dict, roundtrip: float = 1e-7) -> list[dict]:
    """benchmarks.transforms records of one case: per backend its forward and inverse
    medians (ms) and its summary."""
    records = []
    for backend in analysis:
        base = {"name": f"n{n}", "backend": backend, "platform": platform, "n": n}
        records += [{**base, "op": "forward", "ms": analysis[backend]},
                    {**base, "op": "inverse", "ms": synthesis[backend]},
                    {**base, "op": "summary", "roundtrip_err": roundtrip}]
    return records


@pytest.fixture
def table_file(tmp_path, monkeypatch):
    """An empty auto table that backend="auto" reads for the duration of a test."""
    path = tmp_path / "auto_backend.json"
    monkeypatch.setattr(auto, "TIMINGS_FILE", path)
    auto.measured_timings.cache_clear()
    yield path
    auto.measured_timings.cache_clear()


def _write(path, records, platform="cpu", kernels=None) -> None:
    machine = {"platform": platform, "device": "test", "jax": jax.__version__, "kernels": kernels}
    transform_benchmark.update_auto_table(records, machine, path)
    auto.measured_timings.cache_clear()


def _custom_calls(fn, arg, platform: str) -> list[str]:
    text = jax.jit(fn).trace(arg).lower(lowering_platforms=(platform,)).as_text()
    return re.findall(r"custom_call @(sphcnn_\w+)", text)


def _lowered_calls(n: int, platform: str, backend: str = "auto") -> tuple[list[str], list[str]]:
    """The sphcnn custom calls of forward and inverse of an n-grid transform lowered for `platform`."""
    t = sk.SphericalTransform(n, (0, 1), backend=backend)
    x = jax.ShapeDtypeStruct((2, n, n, 2, 3), jnp.complex64)
    a = jax.ShapeDtypeStruct(t.spectral_shape((2,), 3), jnp.complex64)
    return _custom_calls(t.forward, x, platform), _custom_calls(t.inverse, a, platform)


def test_the_shipped_table_is_keyed_by_the_primitive_directions():
    table = json.loads(auto.TIMINGS_FILE.read_text())
    for platform, rows in table.items():
        if not platform.startswith("_"):
            assert set(rows) - {auto.DIGEST_KEY} <= set(auto.DIRECTIONS), (platform, sorted(rows))


@pytest.mark.parametrize("faster", ["xla", "ffi"])
def test_a_measured_row_decides_what_each_direction_lowers_to(table_file, faster):
    # the analysis row says `faster` is faster, the synthesis row the opposite
    slower = {"xla": "ffi", "ffi": "xla"}[faster]
    _write(table_file, _records("cpu", 16, {faster: 1.0, slower: 9.0}, {faster: 9.0, slower: 1.0}))
    assert json.loads(table_file.read_text())["cpu"]["analysis"]["16"] == {faster: 1.0, slower: 9.0}
    assert auto.choose_backend("cpu", "analysis", 16) == faster
    assert auto.choose_backend("cpu", "synthesis", 20) == slower  # the nearest measured size
    forward, inverse = _lowered_calls(16, "cpu")
    assert (forward == ["sphcnn_analysis"]) == (faster == "ffi"), forward
    assert (inverse == ["sphcnn_synthesis"]) == (slower == "ffi"), inverse
    # the gradient of forward is a synthesis: it follows the synthesis row
    t = sk.SphericalTransform(16, (0,), backend="auto")
    x = jax.ShapeDtypeStruct((1, 16, 16, 1, 1), jnp.complex64)
    gradient = _custom_calls(jax.grad(lambda v: jnp.abs(t.forward(v)).sum()), x, "cpu")
    assert ("sphcnn_synthesis" in gradient) == (slower == "ffi"), gradient


def test_a_wrong_case_never_enters_the_table(table_file):
    records = _records("cpu", 16, {"ffi": 1.0, "xla": 9.0}, {"ffi": 1.0, "xla": 9.0})
    for r in records:
        if r["op"] == "summary" and r["backend"] == "ffi":
            r["roundtrip_err"] = 0.5
    _write(table_file, records)
    assert auto.choose_backend("cpu", "analysis", 16) == "xla"
    assert json.loads(table_file.read_text())["cpu"]["analysis"]["16"] == {"xla": 9.0}


def test_an_unknown_direction_is_an_error():
    with pytest.raises(ValueError, match=r"argument 'direction' is 'forward'; expected one of"):
        auto.choose_backend("cpu", "forward", 64)


@needs_cuda_module
def test_cuda_runs_xla_under_auto_until_the_current_kernels_are_measured(table_file):
    # no CUDA rows: xla, for the transforms and for the fused blocks (they follow the transform's backend)
    _write(table_file, _records("cpu", 64, {"ffi": 1.0, "xla": 2.0}, {"ffi": 1.0, "xla": 2.0}))
    assert {auto.choose_backend("cuda", d, n) for d in auto.DIRECTIONS for n in (16, 64, 2048)} == {"xla"}
    assert _lowered_calls(16, "cuda") == ([], [])
    # an explicit backend="ffi" still runs the kernels
    assert _lowered_calls(16, "cuda", "ffi") == (["sphcnn_analysis"], ["sphcnn_synthesis"])
    # rows measured from other sources do not count
    _write(table_file, _records("cuda", 16, {"ffi": 1.0, "xla": 2.0}, {"ffi": 1.0, "xla": 2.0}), "cuda", "0" * 64)
    assert _lowered_calls(16, "cuda") == ([], [])
    # rows of the current kernels do: the fastest backend per direction
    digest = auto.kernel_digest("cuda")
    _write(table_file, _records("cuda", 16, {"ffi": 1.0, "xla": 2.0}, {"ffi": 3.0, "xla": 2.0}), "cuda", digest)
    rows = json.loads(table_file.read_text())["cuda"]
    assert rows[auto.DIGEST_KEY] == digest and rows["synthesis"]["16"] == {"ffi": 3.0, "xla": 2.0}
    assert _lowered_calls(16, "cuda") == (["sphcnn_analysis"], [])


@needs_cuda_module
def test_new_kernels_drop_the_rows_of_the_old_ones(table_file):
    _write(table_file, _records("cuda", 64, {"ffi": 1.0, "xla": 2.0}, {"ffi": 1.0, "xla": 2.0}), "cuda", "0" * 64)
    digest = auto.kernel_digest("cuda")
    _write(table_file, _records("cuda", 16, {"ffi": 1.0, "xla": 2.0}, {"ffi": 1.0, "xla": 2.0}), "cuda", digest)
    assert sorted(json.loads(table_file.read_text())["cuda"]["analysis"]) == ["16"]


@needs_cuda_module
def test_the_kernel_digest_is_that_of_the_cuda_sources():
    # the same listing as CMakeLists.txt hashes: relative path and SHA-256 of each file, sorted
    files = sorted([*(ROOT / "csrc" / "cuda").glob("*"), *(ROOT / "csrc" / "include" / "sphcnn").glob("*")])
    listing = "".join(f"{f.relative_to(ROOT).as_posix()} {hashlib.sha256(f.read_bytes()).hexdigest()}\n"
                      for f in files)
    assert auto.kernel_digest("cuda") == hashlib.sha256(listing.encode()).hexdigest()


@needs_cuda_module
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc to compare with")
def test_the_cuda_module_reports_the_runtime_it_was_built_with():
    from sphcnn_kernels import _cuda

    release = re.search(r"release (\d+)\.(\d+)", subprocess.run(["nvcc", "--version"], capture_output=True,
                                                                  text=True).stdout)
    assert _cuda.cuda_runtime_version() == 1000 * int(release[1]) + 10 * int(release[2])
    assert _cuda.cuda_driver_version() >= 0


def test_a_driver_too_old_for_the_runtime_is_one_error_naming_both_versions():
    message = cuda_runtime.driver_error(13000, 12080)
    assert "CUDA runtime 13.0" in message and "supports CUDA up to 12.8" in message and "backend='xla'" in message

    class OldDriver:
        cuda_runtime_version = staticmethod(lambda: 13000)
        cuda_driver_version = staticmethod(lambda: 12080)

    with pytest.raises(RuntimeError, match=r"built with CUDA runtime 13\.0.*supports CUDA up to 12\.8"):
        cuda_runtime.check_driver(OldDriver)


@pytest.mark.parametrize("driver", [0, 13000, 13020, 14000])
def test_a_driver_of_the_same_or_a_newer_major_version_or_none_is_accepted(driver):
    # minor-version compatibility: a 13.2 runtime runs on a 13.0 driver; 0: no driver (lowering without a GPU)
    assert cuda_runtime.driver_error(13020, driver) is None
