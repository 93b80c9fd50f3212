"""Build and packaging: the CPU extension is always there, the CUDA extension is
compiled wherever nvcc is installed, and importing never loads it on a machine
that does not lower for CUDA."""

import importlib.util
import shutil
import subprocess
import sys

import pytest

import sphcnn_kernels as sk


def test_cpu_extension_registers_its_targets():
    from sphcnn_kernels import _cpu

    assert set(_cpu.registrations()) == {"sphcnn_analysis", "sphcnn_synthesis", "sphcnn_activated_analysis",
                                         "sphcnn_activated_gradient", "sphcnn_affine_synthesis", "sphcnn_mixing",
                                         "sphcnn_mixing_weight_gradient", "sphcnn_grid_analysis",
                                         "sphcnn_grid_synthesis"}
    assert "ffi" in sk.available_backends("cpu")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed: the CUDA module is not built")
def test_cuda_extension_was_compiled_where_nvcc_exists():
    assert importlib.util.find_spec("sphcnn_kernels._cuda") is not None


def test_import_and_cpu_transform_never_load_cuda_module():
    code = (
        "import sys, jax, jax.numpy as jnp, sphcnn_kernels as sk\n"
        "jax.config.update('jax_platforms', 'cpu')\n"
        "sk.inverse(sk.forward(jnp.ones((1, 8, 8, 1, 1)), [0]), [0]).block_until_ready()\n"
        "assert 'sphcnn_kernels._cuda' not in sys.modules, 'loaded _cuda'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _configure(tmp_path, value: str, hide_nvcc: bool):
    """CMake configure step only (seconds), with nvcc hidden from PATH if asked."""
    import os
    import pathlib

    import pybind11

    root = pathlib.Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("CUDACXX", "CUDA_PATH", "CUDA_HOME", "SPHCNN_CUDA")}
    if hide_nvcc:
        nvcc_dirs = {str(pathlib.Path(p).resolve()) for p in env.get("PATH", "").split(os.pathsep)
                     if (pathlib.Path(p) / "nvcc").exists()}
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                      if str(pathlib.Path(p).resolve()) not in nvcc_dirs)
    cmake = shutil.which("cmake", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("cmake")
    command = [cmake, "-S", str(root), "-B", str(tmp_path / "build"), f"-DSPHCNN_CUDA={value}",
               f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_cuda_on_without_nvcc_fails_with_clear_message(tmp_path):
    result = _configure(tmp_path, "ON", hide_nvcc=True)
    if result.returncode == 0:
        pytest.skip("CMake finds a CUDA compiler outside PATH on this machine")
    assert "SPHCNN_CUDA=ON but no CUDA compiler was found" in result.stderr


def test_cuda_off_skips_the_cuda_module(tmp_path):
    result = _configure(tmp_path, "OFF", hide_nvcc=False)
    assert result.returncode == 0, result.stderr
    assert "building the CUDA module" not in result.stdout


def test_bad_cuda_switch_is_rejected(tmp_path):
    result = _configure(tmp_path, "maybe", hide_nvcc=False)
    assert result.returncode != 0
    assert "SPHCNN_CUDA must be AUTO, ON or OFF, got 'MAYBE'" in result.stderr
