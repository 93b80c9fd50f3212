"""backend="auto": the fastest measured backend per platform, direction and grid size.

The measurements are medians kept in ``auto_backend.json``, written by
``python -m benchmarks.transforms --update-auto`` (``benchmarks/gpu_suite.sh``
runs it on a GPU). The table is keyed by platform, then by the direction of the
transform primitive, ``"analysis"`` (forward, and the gradient of inverse) or
``"synthesis"`` (inverse, and the gradient of forward), then by grid size n,
then by backend::

    {"cpu": {"analysis": {"64": {"ffi": 4.4, "xla": 20.4}, ...}, "synthesis": {...}},
     "cuda": {"_kernels": "<digest>", "analysis": {...}, "synthesis": {...}},
     "_source": {"cpu": "where and when the figures were measured", ...}}

Sizes between measured ones use the nearest measured size (in log n).

CUDA kernels run under "auto" only once measured: the CUDA rows count only
when their ``"_kernels"`` digest equals :func:`kernel_digest` of the built
``_cuda`` module (a hash of the CUDA sources it was compiled from), so a table
measured from other kernels, or none at all, makes "auto" choose ``xla`` on
CUDA. An explicit ``backend="ffi"`` always runs the kernels. Without
measurements on other platforms the order of preference is ffi, xla.

Triton is never chosen by "auto": measured on an H200 (n = 64 and 128, 512
maps) it took 0.256 / 0.246 ms and 0.873 / 0.796 ms forward / inverse where the
xla backend took 0.138 / 0.149 and 0.393 / 0.449 ms. It runs XLA's FFT and the
transposes around it, as xla does, and adds a Legendre kernel that is slower
than XLA's batched matrix product; it stays available by name.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import pathlib

from sphcnn_kernels.backends import available_backends

TIMINGS_FILE = pathlib.Path(__file__).with_name("auto_backend.json")
DIRECTIONS = ("analysis", "synthesis")
NEVER_AUTO = ("triton",)
# Platforms whose kernels "auto" runs only when measured from the current
# sources, and the backend it runs there until then.
MEASURED_ONLY = {"cuda": "xla"}
DIGEST_KEY = "_kernels"
_PREFERENCE = ("ffi", "xla")


@functools.lru_cache(maxsize=1)
def measured_timings() -> dict:
    """The table of ``TIMINGS_FILE`` (see the module docstring); {} when absent."""
    if not TIMINGS_FILE.exists():
        return {}
    return json.loads(TIMINGS_FILE.read_text())


@functools.lru_cache(maxsize=None)
def kernel_digest(platform: str) -> str | None:
    """The digest of the kernel sources the platform's ffi module was built from
    (CUDA: ``_cuda.kernel_sources_digest()``); None where the platform has no
    such module or it is not built."""
    if platform != "cuda" or "ffi" not in available_backends(platform):
        return None
    return importlib.import_module("sphcnn_kernels._cuda").kernel_sources_digest()


def current_rows(table: dict, platform: str) -> dict:
    """{direction: {n (str): {backend: ms}}} of `platform` in `table` that
    describe the kernels built now: all its rows, except on a platform of
    ``MEASURED_ONLY`` whose rows carry another digest (or none) than
    :func:`kernel_digest`, where there are none."""
    rows = table.get(platform, {})
    if platform in MEASURED_ONLY and (not rows.get(DIGEST_KEY) or rows.get(DIGEST_KEY) != kernel_digest(platform)):
        return {}
    return {direction: sizes for direction, sizes in rows.items() if direction in DIRECTIONS}


def choose_backend(platform: str, direction: str, n: int) -> str:
    """The backend "auto" resolves to on `platform` for the transform primitive
    `direction` ('analysis' or 'synthesis') on an n x n grid.

    Raises:
        ValueError: `direction` is not one of ``DIRECTIONS``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"choose_backend: argument 'direction' is {direction!r}; expected one of {DIRECTIONS} "
                         "(the transform primitive: forward is an analysis, inverse a synthesis)")
    candidates = [b for b in available_backends(platform) if b not in NEVER_AUTO]
    sizes = current_rows(measured_timings(), platform).get(direction, {})
    if sizes:
        nearest = min(sizes, key=lambda size: abs(math.log(int(size)) - math.log(n)))
        timed = {b: ms for b, ms in sizes[nearest].items() if b in candidates}
        if timed:
            return min(timed, key=timed.get)
    if platform in MEASURED_ONLY:
        return MEASURED_ONLY[platform]
    return next(b for b in _PREFERENCE if b in candidates)
