"""Test configuration: float64 enabled (tests check both precisions explicitly),
tests marked ``gpu`` skipped unless JAX sees a CUDA GPU, and the commands'
persistent compilation cache in a temporary directory of the test run (never
the user's ~/.cache), inherited by the commands the tests start.

SPHCNN_REQUIRE_GPU=1 (set by benchmarks/gpu_suite.sh) makes every skip of a
``gpu``-marked test a failure, and so a skipped module that holds such tests:
on a GPU machine nothing is silently left out, and on a machine without one
``pytest -m gpu`` exits non-zero. On a GPU machine whose driver cannot run the
CUDA module's runtime the test run stops at once with one error naming both
versions."""

import os
import pathlib
import tempfile

import jax
import pytest

os.environ.setdefault("SPHCNN_COMPILATION_CACHE", tempfile.mkdtemp(prefix="sphcnn-test-jax-cache-"))

jax.config.update("jax_enable_x64", True)

REQUIRE_GPU = os.environ.get("SPHCNN_REQUIRE_GPU") == "1"
GPU_MARK = "pytest.mark.gpu"


def _has_gpu() -> bool:
    try:
        return any(d.platform == "gpu" for d in jax.devices())
    except RuntimeError:
        return False


def pytest_sessionstart(session):
    if not _has_gpu():
        return
    try:
        from sphcnn_kernels import _cuda
    except ImportError:
        return
    from sphcnn_kernels.backends.cuda_runtime import driver_error

    message = driver_error(_cuda.cuda_runtime_version(), _cuda.cuda_driver_version())
    if message:
        pytest.exit(message, returncode=3)


def pytest_collection_modifyitems(config, items):
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _required(reason: str) -> str:
    return f"SPHCNN_REQUIRE_GPU=1 and a gpu-marked test was skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_GPU and report.skipped and "gpu" in item.keywords:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome, report.longrepr = "failed", _required(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    path = pathlib.Path(str(getattr(collector, "path", "")))
    if REQUIRE_GPU and report.skipped and path.suffix == ".py" and GPU_MARK in path.read_text():
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome, report.longrepr = "failed", _required(f"{path.name} was skipped whole: {reason}")
