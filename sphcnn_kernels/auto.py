"""backend="auto": the fastest available backend per platform and grid size,
from measured medians kept in ``auto_backend.json`` (written by
``python -m benchmarks.transforms --update-auto``). Sizes between measured ones
use the nearest measured size (in log n); without measurements for a platform
the order of preference is ffi, triton, xla.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib

from sphcnn_kernels.backends import available_backends

TIMINGS_FILE = pathlib.Path(__file__).with_name("auto_backend.json")
_PREFERENCE = ("ffi", "triton", "xla")


@functools.lru_cache(maxsize=1)
def measured_timings() -> dict:
    """{platform: {direction: {n (str): {backend: median ms}}}} from the package."""
    if not TIMINGS_FILE.exists():
        return {}
    return json.loads(TIMINGS_FILE.read_text())


def choose_backend(platform: str, direction: str, n: int) -> str:
    """The backend "auto" resolves to for a transform of grid size n."""
    available = available_backends(platform)
    table = measured_timings().get(platform, {}).get(direction, {})
    if table:
        nearest = min(table, key=lambda size: abs(math.log(int(size)) - math.log(n)))
        timed = {b: ms for b, ms in table[nearest].items() if b in available}
        if timed:
            return min(timed, key=timed.get)
    return next(b for b in _PREFERENCE if b in available)
