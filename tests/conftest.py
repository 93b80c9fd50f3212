"""Test configuration: float64 enabled (tests check both precisions explicitly)
and tests marked ``gpu`` skipped unless JAX sees a CUDA GPU."""

import jax
import pytest

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
