"""SPHCNN_REQUIRE_GPU=1 (tests/conftest.py) turns skips of gpu-marked tests into
failures: on this machine, which has no GPU, `pytest -m gpu` with it set exits
non-zero, also when a module holding gpu-marked tests is skipped whole."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import jax
import pytest

TESTS = pathlib.Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(any(d.platform == "gpu" for d in jax.devices()),
                                reason="shows what happens to gpu-marked tests without a GPU")


def _pytest(directory: pathlib.Path, target: str, require: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPHCNN_REQUIRE_GPU": require}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", target],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("require, exit_code", [("0", 0), ("1", 1)])
def test_a_skipped_gpu_test_fails_only_when_a_gpu_is_required(require, exit_code):
    result = _pytest(TESTS.parent, "tests/test_benchmark_measure.py", require)
    assert result.returncode == exit_code, result.stdout[-2000:]
    assert ("SPHCNN_REQUIRE_GPU=1 and a gpu-marked test was skipped" in result.stdout) == (require == "1")


def test_a_module_of_gpu_tests_skipped_whole_fails_when_a_gpu_is_required(tmp_path):
    shutil.copy(TESTS / "conftest.py", tmp_path)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers = gpu: needs a CUDA GPU\n")
    (tmp_path / "test_module.py").write_text(
        "import pytest\npytest.importorskip('a_module_that_is_not_installed')\n\n\n"
        "@pytest.mark.gpu\ndef test_kernel():\n    pass\n")
    skipped = _pytest(tmp_path, "test_module.py", "0")  # exit code 5: no test ran, nothing failed
    assert skipped.returncode == 5 and "1 skipped" in skipped.stdout, skipped.stdout
    result = _pytest(tmp_path, "test_module.py", "1")
    assert result.returncode not in (0, 5) and "test_module.py was skipped whole" in result.stdout, result.stdout
