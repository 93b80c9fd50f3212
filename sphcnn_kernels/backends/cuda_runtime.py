"""The CUDA runtime the kernels were built with against the driver that runs them.

``_cuda`` links the CUDA runtime statically. Under CUDA's minor-version
compatibility a runtime runs on any driver of the same or a newer major version,
so a driver whose newest supported CUDA version has a smaller major version than
the runtime's cannot run the kernels: every launch would fail with
``cudaErrorInsufficientDriver``. :func:`check_driver` turns that into one error
at the first lowering for CUDA, naming both versions.
"""

from __future__ import annotations


def version_text(version: int) -> str:
    """'13.0' for CUDA's integer version 13000 (1000 major + 10 minor)."""
    return f"{version // 1000}.{version % 1000 // 10}"


def driver_error(runtime: int, driver: int) -> str | None:
    """The error message when a driver supporting CUDA `driver` cannot run a
    module built with CUDA runtime `runtime`, else None.

    Args:
        runtime: the runtime's version, 1000 major + 10 minor (13000 for 13.0).
        driver: the newest version the driver supports, same encoding; 0 when no
            driver is installed (lowering for CUDA on a machine without a GPU is
            allowed, so there is nothing to check).

    Returns:
        The message, or None.
    """
    if driver <= 0 or driver // 1000 >= runtime // 1000:
        return None
    return (f"sphcnn_kernels: the CUDA kernels were built with CUDA runtime {version_text(runtime)}, but the "
            f"installed NVIDIA driver supports CUDA up to {version_text(driver)}; a driver for CUDA "
            f"{runtime // 1000}.x or newer is needed. Update the driver, or rebuild sphcnn with the CUDA toolkit "
            f"{driver // 1000}.x that matches it and jax's plugin for it, or run the transforms with "
            "backend='xla'.")


def check_driver(module) -> None:
    """Raise RuntimeError (see :func:`driver_error`) when the driver cannot run
    the kernels of `module` (``sphcnn_kernels._cuda``)."""
    message = driver_error(module.cuda_runtime_version(), module.cuda_driver_version())
    if message:
        raise RuntimeError(message)
