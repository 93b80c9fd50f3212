"""Backend registry: which implementations exist on which platform.

* ``xla``: pure JAX (FFT + einsum against a float64-built table); runs everywhere
  and is the reference the others are tested against.
* ``ffi``: the C++ kernels on CPU (``_cpu``) and the CUDA kernels on NVIDIA GPUs
  (``_cuda``), called through XLA FFI. ``_cuda`` is imported only when a
  computation is lowered for a CUDA device.
* ``triton``: fused Legendre-stage kernels written in Triton, called through
  jax-triton (NVIDIA GPUs; optional extra ``sphcnn[triton]``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from types import ModuleType

import jax

BACKENDS = ("xla", "ffi", "triton")


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
    """Backends that can run on `platform` (default: the current one)."""
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


def check_backend(func: str, backend: str, platform: str) -> None:
    """ValueError unless `backend` is known and available on `platform`."""
    if backend not in BACKENDS:
        raise ValueError(f"{func}: argument 'backend' must be one of {('auto',) + BACKENDS}, got {backend!r}")
    available = available_backends(platform)
    if backend not in available:
        raise ValueError(
            f"{func}: backend {backend!r} is not available on platform {platform!r}; available: {available}"
            + (" (the C++/CUDA extension was not built or cannot be imported)" if backend == "ffi" else "")
            + (" (install the 'triton' extra on a CUDA machine)" if backend == "triton" else "")
        )


def implementation(backend: str, platform: str) -> ModuleType:
    """The module implementing `analysis` and `synthesis` for a backend."""
    if backend not in available_backends(platform):
        raise ValueError(
            f"sphcnn_kernels: backend {backend!r} cannot be lowered for platform {platform!r}; "
            f"available there: {available_backends(platform)}"
        )
    return importlib.import_module(f"sphcnn_kernels.backends.{backend}_backend")
