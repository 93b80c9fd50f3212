"""Kernel smoke test: every FFI target of one platform's kernel module, run once
against the xla backend.

    python -m benchmarks.kernel_smoke [--platform cpu|cuda]

The platform defaults to that of JAX's default device. For each target that the
platform's module registers (``sphcnn_kernels._cpu`` or ``_cuda``,
``registrations()``) one check runs the public function that reaches it with a
transform on backend="ffi" in complex64 (n = 16, two batch items, three
channels; the grid targets: equiangular(9, 20)) and the same function with a
transform on backend="xla" in complex128 as the reference, on a device of
that platform. A check passes when
the kernel side's result is finite, its error max |got - want| / max |want|
(the largest over the result's arrays) is at most 1e-4, and the lowering of the
kernel side holds a custom call of the target (regex ``custom_call
@(sphcnn_\\w+)``); a registered target without a check, or whose check's
lowering does not call it, fails as "not covered". A check that raises fails
with the exception's first line, and the others still run.

One JSON line per target: {"name": "kernel_smoke", "platform", "target",
"check" (what was run), "calls" (the sphcnn custom calls of the kernel side),
"rel_err", "ok", "seconds"} with "reason" when it fails, then {"name":
"kernel_smoke", "op": "summary", "platform", "targets", "failed", "seconds"}.
Exit status 0 when every target passes, else 1. Runs with jax_enable_x64 on.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import time
from collections.abc import Callable

import jax
import numpy as np

import sphcnn_kernels as sk
from benchmarks.measure import emit
from sphcnn_kernels import grids
from sphcnn_kernels.ops import Activation, activated_analysis, affine_synthesis, mixing, mixing_analysis
from sphcnn_kernels.backends import current_platform, ffi_backend

N = 16
GRID = grids.equiangular(9, 20)  # the grid targets': an odd number of rings, nlon > 2 ell_max + 1
SPINS = (0, 1)
BATCH = 2
CHANNELS = 3
OUT_CHANNELS = 2
LEAKY_SPIN = 0
TOLERANCE = 1e-4
DEVICES = {"cpu": "cpu", "cuda": "gpu"}  # jax.devices() backend names
CALL = re.compile(r"custom_call @(sphcnn_\w+)")


@dataclasses.dataclass(frozen=True)
class Check:
    """A kernel computation and its reference: kernel(*args) on the ffi backend in
    complex64/float32, reference(*args widened to complex128/float64) the same
    function on the xla backend."""

    description: str
    kernel: Callable
    reference: Callable
    args: tuple


def _transforms() -> tuple[sk.SphericalTransform, sk.SphericalTransform]:
    """(kernel side: ffi, complex64; reference: xla, complex128), degree-major, n = N."""
    return (sk.SphericalTransform(N, SPINS, dtype="complex64", backend="ffi", layout="degree_major"),
            sk.SphericalTransform(N, SPINS, dtype="complex128", backend="xla", layout="degree_major"))


def _complex(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


def _real(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


def _triangular(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Degree-major coefficients (L, batch, 2L - 1, S, C), zero at |m| > l (as transforms write them)."""
    L = shape[0]
    keep = np.abs(np.arange(2 * L - 1) - (L - 1))[None, :] <= np.arange(L)[:, None]
    return _complex(rng, shape) * keep[:, None, :, None, None]


def _pullback(f: Callable) -> Callable:
    """(*primals, ct) -> the cotangents of f's arguments at primals."""
    return lambda *args: jax.vjp(f, *args[:-1])[1](args[-1])


def _widen(x: np.ndarray) -> np.ndarray:
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def _maps(rng: np.random.Generator, p: int = 1) -> np.ndarray:
    return _complex(rng, (BATCH, p * N, p * N, len(SPINS), CHANNELS))


def _forward() -> Check:
    t, r = _transforms()
    return Check("transform.forward", t.forward, r.forward, (_maps(np.random.default_rng(1)),))


def _inverse() -> Check:
    t, r = _transforms()
    return Check("transform.inverse", t.inverse, r.inverse,
                 (_complex(np.random.default_rng(2), t.spectral_shape((BATCH,), CHANNELS)),))


def _grid_transforms() -> tuple[sk.SphericalTransform, sk.SphericalTransform]:
    """(kernel side: ffi, complex64; reference: xla, complex128) on GRID."""
    return (sk.SphericalTransform(GRID, SPINS, dtype="complex64", backend="ffi"),
            sk.SphericalTransform(GRID, SPINS, dtype="complex128", backend="xla"))


def _grid_forward() -> Check:
    t, r = _grid_transforms()
    maps = _complex(np.random.default_rng(11), (BATCH, *GRID.shape, len(SPINS), CHANNELS))
    return Check(f"transform.forward on {GRID!r}", t.forward, r.forward, (maps,))


def _grid_inverse() -> Check:
    t, r = _grid_transforms()
    return Check(f"transform.inverse on {GRID!r}", t.inverse, r.inverse,
                 (_complex(np.random.default_rng(12), t.spectral_shape((BATCH,), CHANNELS)),))


def _activated(t: sk.SphericalTransform) -> Callable:
    return lambda y, bias: activated_analysis(t, y, Activation(bias, LEAKY_SPIN), True)


def _activated_inputs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Maps on the 2n grid (pooled to n) and a bias."""
    return _maps(rng, 2), 0.7 * _real(rng, (len(SPINS), CHANNELS))


def _activated_analysis() -> Check:
    t, r = _transforms()
    return Check("activated_analysis (leaky spin 0, pooled)", _activated(t), _activated(r),
                 _activated_inputs(np.random.default_rng(3)))


def _activated_gradient() -> Check:
    t, r = _transforms()
    rng = np.random.default_rng(4)
    ct = _complex(rng, t.spectral_shape((BATCH,), CHANNELS))
    return Check("vjp of activated_analysis (leaky spin 0, pooled) for (y, bias)", _pullback(_activated(t)),
                 _pullback(_activated(r)), (*_activated_inputs(rng), ct))


def _affine(t: sk.SphericalTransform) -> Callable:
    return lambda a, factor, offset: affine_synthesis(t, a, factor, offset)


def _affine_inputs(t: sk.SphericalTransform, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    small = (len(SPINS), CHANNELS)
    return _complex(rng, t.spectral_shape((BATCH,), CHANNELS)), _complex(rng, small), _complex(rng, small)


def _affine_synthesis() -> Check:
    t, r = _transforms()
    return Check("affine_synthesis", _affine(t), _affine(r), _affine_inputs(t, np.random.default_rng(5)))


def _affine_gradient() -> Check:
    t, r = _transforms()
    rng = np.random.default_rng(6)
    return Check("vjp of affine_synthesis for (a, factor, offset)", _pullback(_affine(t)), _pullback(_affine(r)),
                 (*_affine_inputs(t, rng), _maps(rng)))


def _mixing(backend: str) -> Callable:
    return lambda a, filters: mixing(a, filters, backend, N)


def _mixing_inputs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Triangular coefficients (L, B, 2L - 1, S, C) and filters (L, S, S, C, C_out)."""
    L = N // 2
    return (_triangular(rng, (L, BATCH, 2 * L - 1, len(SPINS), CHANNELS)),
            _complex(rng, (L, len(SPINS), len(SPINS), CHANNELS, OUT_CHANNELS)))


def _mixing_check() -> Check:
    return Check("mixing", _mixing("ffi"), _mixing("xla"), _mixing_inputs(np.random.default_rng(7)))


def _mixing_weight_gradient() -> Check:
    rng = np.random.default_rng(8)
    a, filters = _mixing_inputs(rng)
    ct = _triangular(rng, a.shape[:-1] + (OUT_CHANNELS,))
    return Check("vjp of mixing for (a, filters)", _pullback(_mixing("ffi")), _pullback(_mixing("xla")),
                 (a, filters, ct))


def _mixing_analysis_fn(t: sk.SphericalTransform) -> Callable:
    return lambda x, bias, filters: mixing_analysis(t, x, filters, Activation(bias, LEAKY_SPIN), True)


def _mixing_analysis_inputs(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    return (*_activated_inputs(rng), _mixing_inputs(rng)[1])


def _mixing_analysis() -> Check:
    t, r = _transforms()
    return Check("mixing_analysis (activated, pooled)", _mixing_analysis_fn(t), _mixing_analysis_fn(r),
                 _mixing_analysis_inputs(np.random.default_rng(9)))


def _mixing_gradient() -> Check:
    t, r = _transforms()
    rng = np.random.default_rng(10)
    inputs = _mixing_analysis_inputs(rng)
    moments = (BATCH, len(SPINS), OUT_CHANNELS)
    ct = (_complex(rng, t.spectral_shape((BATCH,), OUT_CHANNELS)), (_complex(rng, moments), _real(rng, moments)))
    return Check("vjp of mixing_analysis (activated, pooled) for (x, bias, filters)", _pullback(_mixing_analysis_fn(t)),
                 _pullback(_mixing_analysis_fn(r)), (*inputs, ct))


# The check of each target, per platform.
TARGETS: dict[str, dict[str, Callable[[], Check]]] = {
    "cpu": {
        "sphcnn_analysis": _forward,
        "sphcnn_synthesis": _inverse,
        "sphcnn_activated_analysis": _activated_analysis,
        "sphcnn_activated_gradient": _activated_gradient,
        "sphcnn_affine_synthesis": _affine_synthesis,
        "sphcnn_mixing": _mixing_check,
        "sphcnn_mixing_weight_gradient": _mixing_weight_gradient,
        "sphcnn_grid_analysis": _grid_forward,
        "sphcnn_grid_synthesis": _grid_inverse,
    },
    "cuda": {
        "sphcnn_analysis": _forward,
        "sphcnn_synthesis": _inverse,
        "sphcnn_activated_analysis": _activated_analysis,
        "sphcnn_activated_gradient": _activated_gradient,
        "sphcnn_affine_synthesis": _affine_synthesis,
        "sphcnn_affine_gradient": _affine_gradient,
        "sphcnn_mixing_analysis": _mixing_analysis,
        "sphcnn_mixing_gradient": _mixing_gradient,
        "sphcnn_grid_analysis": _grid_forward,
        "sphcnn_grid_synthesis": _grid_inverse,
    },
}


def custom_calls(check: Check, platform: str) -> list[str]:
    """The sphcnn custom calls of the kernel side lowered for `platform` (no device needed)."""
    text = jax.jit(check.kernel).trace(*check.args).lower(lowering_platforms=(platform,)).as_text()
    return sorted(set(CALL.findall(text)))


def relative_error(got, want) -> float:
    """max |got - want| / max |want| over each pair of arrays of the two pytrees
    (scale 1 where want is 0), the largest; inf where got is not finite."""
    errors = []
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            raise ValueError(f"result shape {g.shape}, reference {w.shape}")
        if not np.all(np.isfinite(g)):
            return math.inf
        scale = float(np.max(np.abs(w)))
        errors.append(float(np.max(np.abs(g - w))) / (scale if scale > 0 else 1.0))
    return max(errors)


def compare(check: Check) -> float:
    """relative_error of the kernel side against the reference, both run on JAX's default device."""
    got = jax.jit(check.kernel)(*check.args)
    want = jax.jit(check.reference)(*jax.tree.map(_widen, check.args))
    return relative_error(got, want)


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def check_target(target: str, platform: str) -> dict:
    """Run the check of `target` on a device of `platform`; its JSON record."""
    record = {"name": "kernel_smoke", "platform": platform, "target": target}
    build = TARGETS[platform].get(target)
    if build is None:
        return {**record, "ok": False, "reason": "not covered", "seconds": 0.0}
    start = time.perf_counter()
    try:
        check = build()
        record.update(check=check.description, calls=custom_calls(check, platform))
        with jax.default_device(jax.devices(DEVICES[platform])[0]):
            error = compare(check)
        record["rel_err"] = error if math.isfinite(error) else None
        if target not in record["calls"]:
            record.update(ok=False, reason="not covered")
        elif error > TOLERANCE:
            record.update(ok=False, reason=f"rel_err above {TOLERANCE:g}" if math.isfinite(error) else "not finite")
        else:
            record["ok"] = True
    except Exception as error:  # one broken kernel must not hide the others
        record.update(ok=False, reason=_first_line(error))
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


def run(platform: str) -> list[dict]:
    """Check every target that the platform's module registers (and every target
    of the table); print and return one record per target, then the summary."""
    jax.config.update("jax_enable_x64", True)
    start = time.perf_counter()
    targets = sorted(set(ffi_backend.extension(platform).registrations()) | set(TARGETS[platform]))
    records = []
    for target in targets:
        records.append(check_target(target, platform))
        emit(records[-1])
    failed = sum(not record["ok"] for record in records)
    records.append({"name": "kernel_smoke", "op": "summary", "platform": platform, "targets": len(targets),
                    "failed": failed, "seconds": round(time.perf_counter() - start, 3)})
    emit(records[-1])
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run each FFI target of a platform's kernel module once against "
                                                 "the xla backend (one JSON line per target).")
    parser.add_argument("--platform", choices=sorted(TARGETS), help="default: the platform of JAX's default device")
    platform = parser.parse_args(argv).platform or current_platform()
    if platform not in TARGETS:
        parser.error(f"no kernel module for platform {platform!r}; choose one of {sorted(TARGETS)}")
    return 0 if run(platform)[-1]["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
