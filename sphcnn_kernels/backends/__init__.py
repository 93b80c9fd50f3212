"""Backend registry: which implementations exist on which platform.

* ``xla``: pure JAX (FFT + einsum against a float64-built table); runs everywhere
  and is the reference the others are tested against.
* ``ffi``: one XLA FFI custom call per transform, the same contract on every
  platform (``sphcnn_analysis`` / ``sphcnn_synthesis``): the C++ kernels on CPU
  (``_cpu``) and the CUDA kernels on NVIDIA GPUs (``_cuda``). ``_cuda`` is imported
  only when a computation is lowered for CUDA.
* ``triton``: the Legendre stage in Triton, called through jax-triton, around
  XLA's FFT (NVIDIA GPUs; optional extra ``sphcnn[triton]``); never chosen by
  backend="auto" (see :mod:`sphcnn_kernels.auto`).
"""

from __future__ import annotations

import functools
import importlib.util

import jax


def current_platform() -> str:
    """The platform of JAX's default device: 'cpu', 'cuda', 'rocm', 'tpu', ..."""
    device = jax.devices()[0]
    if device.platform == "gpu":
        version = getattr(device.client, "platform_version", "").lower()
        return "rocm" if "rocm" in version else "cuda"
    return device.platform


@functools.lru_cache(maxsize=None)
def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_backends(platform: str | None = None) -> tuple[str, ...]:
    """The backends that can run on a platform.

    Args:
        platform: 'cpu', 'cuda', ... (default: the platform of JAX's default device).

    Returns:
        The backend names, 'xla' first.
    """
    platform = platform or current_platform()
    found = ["xla"]
    if platform == "cpu" and _module_available("sphcnn_kernels._cpu"):
        found.append("ffi")
    if platform == "cuda":
        if _module_available("sphcnn_kernels._cuda"):
            found.append("ffi")
        if _module_available("jax_triton") and _module_available("triton"):
            found.append("triton")
    return tuple(found)
