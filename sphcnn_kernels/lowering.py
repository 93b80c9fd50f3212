"""Lowering of the transform primitives, one rule per platform.

The rule of a platform resolves backend="auto" for that platform (from the
measured medians of :mod:`sphcnn_kernels.auto`), checks that the chosen backend
can run there, and calls the backend's `analysis` or `synthesis`. Backends
that write only batch-major coefficients get them moved into place around
their stage (the FFI kernels write both layouts themselves).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import jax.numpy as jnp

from sphcnn_kernels.auto import choose_backend
from sphcnn_kernels.backends import available_backends


def resolve_backend(backend: str, platform: str, direction: str, n: int) -> str:
    """The backend a transform runs on `platform`; ValueError naming the backend,
    the platform and the available ones when it cannot run there."""
    if backend == "auto":
        return choose_backend(platform, direction, n)
    available = available_backends(platform)
    if backend not in available:
        raise ValueError(
            f"sphcnn_kernels: backend {backend!r} is not available on platform {platform!r}; available: {available}"
            + (" (the C++/CUDA extension was not built or cannot be imported)" if backend == "ffi" else "")
            + (" (install the 'triton' extra on a CUDA machine)" if backend == "triton" else "")
        )
    return backend


def rule(direction: str, platform: str | None) -> Callable:
    """The lowering function of `direction` ('analysis' or 'synthesis') for
    `platform` (None: any platform without a rule of its own, on the xla backend)."""

    def lower(operand, *, plan, sign, weighted, backend, precision, layout, mode):
        name = "xla" if platform is None else resolve_backend(backend, platform, direction, plan.n)
        module = importlib.import_module(f"sphcnn_kernels.backends.{name}_backend")
        native = layout == "batch_major" or module.WRITES_DEGREE_MAJOR
        stage_layout = layout if native else "batch_major"
        if not native and direction == "synthesis":
            operand = jnp.moveaxis(operand, 0, -4)
        stage = getattr(module, direction)
        out = stage(operand, plan=plan, sign=sign, weighted=weighted, precision=precision, layout=stage_layout,
                    mode=mode, platform=platform or "other")
        if not native and direction == "analysis":
            out = jnp.moveaxis(out, -4, 0)
        return out

    return lower
