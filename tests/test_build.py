"""Build and packaging: the CPU extension is always there, the CUDA extension is
compiled wherever nvcc is installed, and importing never loads it on a machine
that does not lower for CUDA."""

import importlib.util
import shutil
import subprocess
import sys

import pytest

import sphcnn_kernels as sk


def test_cpu_extension_registers_both_targets():
    from sphcnn_kernels import _cpu

    assert set(_cpu.registrations()) == {"sphcnn_analysis", "sphcnn_synthesis"}
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
