"""backend="auto": the fastest available backend per platform and grid size,
from measured medians kept in ``auto_backend.json`` (written by
``python -m benchmarks.transforms --update-auto``, which
``benchmarks/gpu_suite.sh`` runs on a GPU). Sizes between measured ones use the
nearest measured size (in log n); without measurements for a platform the order
of preference is ffi, xla.

Triton is never chosen by "auto": measured on an H200 (issue 11, n = 64 and 128,
512 maps) it took 0.256 / 0.246 ms and 0.873 / 0.796 ms forward / inverse where
the xla backend took 0.138 / 0.149 and 0.393 / 0.449 ms. It runs XLA's FFT and
the transposes around it, as xla does, and adds a Legendre kernel that is
slower than XLA's batched matrix product; it stays available by name.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib

from sphcnn_kernels.backends import available_backends

TIMINGS_FILE = pathlib.Path(__file__).with_name("auto_backend.json")
NEVER_AUTO = ("triton",)
_PREFERENCE = ("ffi", "xla")


@functools.lru_cache(maxsize=1)
def measured_timings() -> dict:
    """{platform: {direction: {n (str): {backend: median ms}}}} from the package
    (keys starting with '_' are notes)."""
    if not TIMINGS_FILE.exists():
        return {}
    return json.loads(TIMINGS_FILE.read_text())


def choose_backend(platform: str, direction: str, n: int) -> str:
    """The backend "auto" resolves to for a transform of grid size n on `platform`."""
    candidates = [b for b in available_backends(platform) if b not in NEVER_AUTO]
    table = measured_timings().get(platform, {}).get(direction, {})
    if table:
        nearest = min(table, key=lambda size: abs(math.log(int(size)) - math.log(n)))
        timed = {b: ms for b, ms in table[nearest].items() if b in candidates}
        if timed:
            return min(timed, key=timed.get)
    return next(b for b in _PREFERENCE if b in candidates)
