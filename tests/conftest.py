"""Test configuration: float64 enabled (tests check both precisions explicitly),
tests marked ``gpu`` skipped unless JAX sees a CUDA GPU, and the commands'
persistent compilation cache in a temporary directory of the session (never
the user's ~/.cache), inherited by the commands the tests start."""

import os
import tempfile

import jax
import pytest

os.environ.setdefault("SPHCNN_COMPILATION_CACHE", tempfile.mkdtemp(prefix="sphcnn-test-jax-cache-"))

jax.config.update("jax_enable_x64", True)


def _has_gpu() -> bool:
    try:
        return any(d.platform == "gpu" for d in jax.devices())
    except RuntimeError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
