"""Device time of the spin-weighted spherical harmonic transforms.

    python -m benchmarks.transforms            # all sizes, every available backend
    python -m benchmarks.transforms --quick --table
    python -m benchmarks.transforms --update-auto   # also rewrite sphcnn_kernels/auto_backend.json

Every (case, backend) runs in a fresh process (one sk.SphericalTransform with
the backend and lambda mode as options), so compile time and peak memory are
measured cold. Each case prints JSON lines {"name", "backend", "op", "ms", ...}
for op in forward, inverse, forward_grad (the gradient of forward: a vjp whose
cotangent is an argument of the jitted function, so XLA cannot fold it) and
inverse_grad (likewise for inverse); the gradient of each direction should
cost no more than the other direction. Fields of these lines:

  ms, min_ms, max_ms   device time per call: median (min, max) over runs of K
                       calls made back to back and waited for once, time / K
                       (calls_per_run = K, runs = number of runs; see
                       benchmarks.measure.back_to_back). Calls cycle through
                       input_sets = 4 distinct inputs (at n = 64 maps of 16.8 MB
                       and coefficients of 8.3 MB: with the results written in
                       between, a call finds its input evicted from a 50 MB L2
                       cache and reads it from device memory, as in a model).
  kernel_ms            sum of the GPU kernels' durations per call from a
                       jax.profiler trace, kernels_per_call their number; None
                       on CPUs (no device plane), profile_error when a trace
                       could not be read.
  bytes, bw_fraction   minimal traffic (input read once, output written once)
                       and bytes / (ms) / the device's peak bandwidth
                       (bandwidth_source: data sheet, or a measured copy).
  mode                 where the ffi kernels get lambda ('table' or
                       'onthefly'); None for other backends.

and one "summary" line per case: compile_s (SphericalTransform construction,
including its plan, plus lowering and compiling forward, which builds the
tables the backend embeds), roundtrip_err (max|forward(inverse(a)) - a| / max|a|
for random band-limited a, precision "highest"), peak_bytes (device allocator
peak on GPUs, growth of the peak resident set on CPUs, after compiling and
running forward and inverse once: before the timing loops, which hold several
inputs and results), constants_bytes (the dense table the xla and triton
backends embed, the packed table of the ffi kernels on CUDA in table mode,
else 0). A case that fails or runs past --time-limit gives an op "failed" line,
one not run an op "skipped" line.

    python -m benchmarks.transforms --peers-python /work/peers/bin/python --table

compares the ffi backend with peer libraries run by another interpreter (one
with ducc0 and/or s2fft; it needs neither JAX nor sphcnn of this one): by
default the cases n64, n256x4, n1024x4, n2048x1 and era5 (four real maps on
ERA5's 721 x 1440 grid at ell_max 359, --peers-python only). Each round runs ours, then
every peer, each in a fresh process that times forward and inverse as the
minimum of --runs synchronized calls after a warm-up; the figures are the
minima over --peer-rounds rounds, so that ours and the peers see the same
machine load. Lines: {"name", "backend", "op", "min_ms", "cpu_ms", "rounds"}
per backend and op (cpu_ms: the minimum CPU time of the process, all threads,
per call: the work done, which a loaded machine disturbs less than the wall
time; ours with "peak_bytes", the growth of the peak resident set over the
first calls), {"name", "op": "ratio", "peer", "forward", "inverse",
"forward_cpu", "inverse_cpu"} with ours / peer, or {"name", "backend", "op":
"skipped", "reason"}. The same maps for
everyone: a complex map of spin 0 is two real maps for ducc0 (geometry "CC", the
n x n grid with both poles, ell_max = n/2 - 1), a complex map of spin s != 0 one
spin-|s| pair (Q, U) (a real map of era5 is one real map, on ducc0's "CC" grid
of 721 x 1440 points); ducc0 runs them one call after another with all cores per
call, and again spread over one thread per core with one core per call, and the
faster of the two counts. s2fft runs each spin's maps as one jitted, vmapped
call with precomputed recursion coefficients (method "jax"), on its equiangular
grid with both poles ("mwss", band limit L = n/2: n/2 + 1 rings of n points).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

CASES = {
    "n64": dict(n=64, batch=8, spins=(0, 1), channels=32),
    "n128": dict(n=128, batch=8, spins=(0, 1), channels=32),
    "n256": dict(n=256, batch=8, spins=(0, 1), channels=16),
    "n2048": dict(n=2048, batch=1, spins=(0, 1), channels=2, mode="onthefly"),
    # Few large maps, for the comparison with peers (not in the default list).
    "n256x4": dict(n=256, batch=1, spins=(0, 1), channels=2),
    "n1024x4": dict(n=1024, batch=1, spins=(0, 1), channels=2, mode="onthefly"),
    "n2048x1": dict(n=2048, batch=1, spins=(0,), channels=1, mode="onthefly"),
    # ERA5's 0.25 degree grid, 721 x 1440 with both poles, at ell_max 359: four real maps.
    "era5": dict(grid=(721, 1440), ell_max=359, batch=4, spins=(0,), channels=1, real=True),
}
DEFAULT_CASES = ("n64", "n128", "n256", "n2048")
QUICK = ("n64", "n128")
# --peers-python: the default cases, the peers (modules of the other interpreter),
# and the seconds one peer process may take before it is stopped.
PEER_CASES = ("n64", "n256x4", "n1024x4", "n2048x1", "era5")
PEERS = ("ducc0", "s2fft")
PEER_TIMEOUT_S = 600
OPS = ("forward", "inverse", "forward_grad", "inverse_grad")
# The auto table's direction of each timed op (the transform primitive it runs).
AUTO_DIRECTIONS = {"forward": "analysis", "inverse": "synthesis"}
# A case enters the auto table only with a round-trip error of at most this (fp32 exact transforms: ~1e-6).
ROUNDTRIP_LIMIT = 1e-4
INPUT_SETS = 4
# Calls profiled per op (one where a call takes longer than PROFILE_SLOW_MS).
PROFILED_CALLS = 3
PROFILE_SLOW_MS = 300
# The dense table of the xla and triton backends is built in float64, S (2L-1) L n
# entries; above this size those backends are not run (n = 2048 would need 68 GB).
DENSE_TABLE_LIMIT = 1 << 30
DENSE_TABLE_BACKENDS = ("xla", "triton")


def _maps(case: dict) -> int:
    return case["batch"] * len(case["spins"]) * case["channels"]


def _band_limited(coeffs, ell_max: int, spins: tuple[int, ...]):
    """coeffs (..., L, 2L - 1, S, C) with the entries l < max(|m|, |s|) set to zero."""
    import jax.numpy as jnp
    import numpy as np

    ell = np.arange(ell_max + 1)[:, None, None]
    m = np.arange(-ell_max, ell_max + 1)[None, :, None]
    s = np.asarray(spins)[None, None, :]
    keep = (ell >= np.abs(m)) & (ell >= np.abs(s))
    return coeffs * jnp.asarray(keep[..., None])


def _operations(t) -> dict:
    """The four jitted operations of a transform, named after the op."""
    import jax

    def forward(v):
        return t.forward(v)

    def inverse(a):
        return t.inverse(a)

    def forward_grad(v, cotangent):
        return jax.vjp(t.forward, v)[1](cotangent)[0]

    def inverse_grad(a, cotangent):
        return jax.vjp(t.inverse, a)[1](cotangent)[0]

    return {fn.__name__: jax.jit(fn) for fn in (forward, inverse, forward_grad, inverse_grad)}


def _input_sets(x, a) -> dict[str, list[tuple]]:
    """Per op, INPUT_SETS distinct argument tuples (scaled copies of maps x and coefficients a)."""
    import numpy as np

    maps = [x * np.float32(1 + k / 8) for k in range(INPUT_SETS)]
    coeffs = [a * np.float32(1 + k / 8) for k in range(INPUT_SETS)]
    return {"forward": [(v,) for v in maps], "inverse": [(c,) for c in coeffs],
            "forward_grad": list(zip(maps, coeffs)), "inverse_grad": list(zip(coeffs, maps))}


def _constants_bytes(t, backend: str, platform: str) -> int:
    """Bytes of the constant table the backend embeds in the computation."""
    from sphcnn_kernels.backends.ffi_backend import lambda_source

    if backend in DENSE_TABLE_BACKENDS:
        return int(t.plan.dense_table.nbytes)
    if backend == "ffi" and platform == "cuda" and lambda_source(t.plan, t.mode, platform) == "table":
        return int(t.plan.packed_table_bytes)
    return 0


def run_case(name: str, backend: str, runs: int, budget_s: float) -> None:
    """Measure one case in this process and print its JSON lines."""
    import jax
    import numpy as np

    import sphcnn_kernels as sk
    from benchmarks.measure import (back_to_back, device_description, emit, kernel_profile, peak_bandwidth,
                                    peak_memory_bytes)
    from sphcnn_kernels.backends import current_platform
    from sphcnn_kernels.backends.ffi_backend import lambda_source

    case = CASES[name]
    n, spins = case["n"], tuple(case["spins"])
    platform, (_, device) = current_platform(), device_description()
    rng = np.random.default_rng(0)
    shape = (case["batch"], n, n, len(spins), case["channels"])
    x = jax.device_put((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64))
    baseline = peak_memory_bytes() if platform == "cpu" else 0

    start = time.perf_counter()
    t = sk.SphericalTransform(n, spins, backend=backend, mode=case.get("mode", "auto"))
    ops = _operations(t)
    forward = ops["forward"].lower(x).compile()
    compile_s = time.perf_counter() - start
    band = _band_limited(forward(x), t.ell_max, spins)
    back = forward(ops["inverse"](band))
    roundtrip = float(np.abs(np.asarray(back - band)).max() / np.abs(np.asarray(band)).max())
    peak = peak_memory_bytes() - baseline
    del back

    bandwidth, bandwidth_source = peak_bandwidth()
    traffic = x.nbytes + band.nbytes
    base = {"name": name, "backend": backend, "platform": platform, "device": device, "n": n,
            "ell_max": t.ell_max, "maps": _maps(case), "dtype": "complex64",
            "mode": lambda_source(t.plan, t.mode, platform) if backend == "ffi" else None}
    for op, inputs in _input_sets(x, band).items():
        timing = back_to_back(ops[op], inputs, runs=runs, budget_s=budget_s)
        profile = kernel_profile(ops[op], inputs, calls=PROFILED_CALLS if timing["ms"] < PROFILE_SLOW_MS else 1)
        emit({**base, "op": op, **timing, "input_sets": len(inputs), **profile, "bytes": traffic,
              "bw_fraction": traffic / (timing["ms"] * 1e-3) / bandwidth, "bandwidth_source": bandwidth_source})
    emit({**base, "op": "summary", "compile_s": compile_s, "roundtrip_err": roundtrip, "peak_bytes": peak,
          "constants_bytes": _constants_bytes(t, backend, platform)})


def _min_ms(call, repeats: int) -> dict:
    """{"ms", "cpu_ms"}: the minimum wall time and the minimum CPU time of this
    process (all its threads) in ms over `repeats` calls of call() (each returns
    once its work is done), after one warm-up call."""
    call()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"ms": min(wall) * 1e3, "cpu_ms": min(cpu) * 1e3}


def _faster(*timings: dict) -> dict:
    """The minimum of each field over several _min_ms results."""
    return {key: min(t[key] for t in timings) for key in timings[0]}


def run_timing(name: str, repeats: int) -> None:
    """Forward and inverse of one case on the ffi backend (--peers-python): one
    JSON line with the minimum ms of each and the peak memory the first calls added."""
    import jax
    import numpy as np

    import sphcnn_kernels as sk
    from benchmarks.measure import emit, peak_memory_bytes

    case = CASES[name]
    spins = tuple(case["spins"])
    rng = np.random.default_rng(0)
    shape = (case["batch"], *_grid_shape(case), len(spins), case["channels"])
    if case.get("real"):
        x = jax.device_put(rng.standard_normal(shape).astype(np.float32))
    else:
        x = jax.device_put((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64))
    baseline = peak_memory_bytes()
    if "grid" in case:
        t = sk.SphericalTransform(sk.grids.equiangular(*case["grid"]), spins, ell_max=case["ell_max"], backend="ffi",
                                  real=bool(case.get("real")))
    else:
        t = sk.SphericalTransform(case["n"], spins, backend="ffi", mode=case.get("mode", "auto"))
    forward, inverse = jax.jit(t.forward), jax.jit(t.inverse)
    a = forward(x) if case.get("real") else _band_limited(forward(x), t.ell_max, spins)
    jax.block_until_ready(inverse(a))
    peak = peak_memory_bytes() - baseline
    emit({"name": name, "backend": "ffi", "forward": _min_ms(lambda: jax.block_until_ready(forward(x)), repeats),
          "inverse": _min_ms(lambda: jax.block_until_ready(inverse(a)), repeats), "peak_bytes": peak})


def _grid_shape(case: dict) -> tuple[int, int]:
    """(nlat, nlon) of a case's maps: its grid, or n x n."""
    return tuple(case["grid"]) if "grid" in case else (case["n"], case["n"])


def _ell_max(case: dict) -> int:
    return case["ell_max"] if "ell_max" in case else case["n"] // 2 - 1


def _ducc0_timing(case: dict, repeats: int) -> dict:
    """ms of the case's maps through ducc0 (see the module docstring)."""
    from concurrent.futures import ThreadPoolExecutor

    import ducc0
    import numpy as np

    nlat, nlon = _grid_shape(case)
    ell_max = _ell_max(case)
    threads = os.cpu_count() or 1
    rng = np.random.default_rng(0)
    jobs = []  # (spin, maps (components, nlat, nlon))
    for spin in case["spins"]:
        for _ in range(case["batch"] * case["channels"]):
            if spin == 0:
                real_maps = 1 if case.get("real") else 2
                jobs += [(0, rng.standard_normal((1, nlat, nlon)).astype(np.float32)) for _ in range(real_maps)]
            else:
                jobs.append((abs(spin), rng.standard_normal((2, nlat, nlon)).astype(np.float32)))
    sht = ducc0.sht.experimental

    def analysis(job, nthreads):
        return sht.analysis_2d(map=job[1], spin=job[0], lmax=ell_max, geometry="CC", nthreads=nthreads)

    coefficients = [(spin, analysis((spin, maps), threads)) for spin, maps in jobs]

    def synthesis(job, nthreads):
        return sht.synthesis_2d(alm=job[1], spin=job[0], lmax=ell_max, geometry="CC", ntheta=nlat, nphi=nlon,
                                nthreads=nthreads)

    result = {}
    with ThreadPoolExecutor(threads) as pool:
        for op, fn, inputs in (("forward", analysis, jobs), ("inverse", synthesis, coefficients)):
            serial = _min_ms(lambda: [fn(job, threads) for job in inputs], repeats)
            spread = _min_ms(lambda: list(pool.map(lambda job: fn(job, 1), inputs)), repeats)
            result[op] = _faster(serial, spread)
    return result


def _s2fft_timing(case: dict, repeats: int) -> dict:
    """ms of the case's maps through s2fft (see the module docstring)."""
    import jax
    import numpy as np
    import s2fft

    L = case["n"] // 2
    maps = case["batch"] * case["channels"]
    rng = np.random.default_rng(0)
    calls = {"forward": [], "inverse": []}
    for spin in case["spins"]:
        shape = (maps, L + 1, 2 * L)
        f = jax.device_put((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64))
        for op, forward in (("forward", True), ("inverse", False)):
            precomps = s2fft.generate_precomputes_jax(L, spin, sampling="mwss", forward=forward)
            transform = s2fft.forward if forward else s2fft.inverse
            fn = jax.jit(jax.vmap(lambda v, transform=transform, precomps=precomps, spin=spin: transform(
                v, L, spin=spin, sampling="mwss", method="jax", precomps=precomps)))
            calls[op].append((fn, f))
            if forward:
                f = jax.block_until_ready(fn(f))
    return {op: _min_ms(lambda pairs=pairs: [jax.block_until_ready(fn(v)) for fn, v in pairs], repeats)
            for op, pairs in calls.items()}


def run_peer(name: str, peer: str, repeats: int) -> None:
    """Forward and inverse of one case through a peer library (--peers-python; this
    process runs in the peers' interpreter): one JSON line, or exit status 3 with the
    reason on stderr when the peer cannot be imported."""
    import importlib

    if peer == "s2fft" and "grid" in CASES[name]:
        sys.stderr.write("s2fft has no grid of these points at this band limit (its mwss grid of 721 x 1440 points "
                         "has L = 720)\n")
        raise SystemExit(3)
    try:
        importlib.import_module(peer)
    except ImportError as error:
        sys.stderr.write(f"{peer} cannot be imported: {error}\n")
        raise SystemExit(3)
    timing = {"ducc0": _ducc0_timing, "s2fft": _s2fft_timing}[peer](CASES[name], repeats)
    print(json.dumps({"name": name, "backend": peer, **timing}), flush=True)


def _timing_child(interpreter: str, name: str, backend: str, runs: int) -> dict:
    """One round of one backend (ours: 'ffi') on a case in a fresh process: its
    record, or {'skipped': reason}."""
    command = [interpreter, "-m", "benchmarks.transforms", "--timing", name, "--backend", backend, "--runs", str(runs)]
    root = pathlib.Path(__file__).resolve().parents[1]
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=root, env=os.environ.copy(),
                                timeout=PEER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"skipped": f"ran past {PEER_TIMEOUT_S} s"}
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not records:
        tail = result.stderr.strip().splitlines()[-1:] or [""]
        return {"skipped": f"exit status {result.returncode}: {tail[0]}"}
    return records[-1]


def compare_peers(args, runs: int) -> list[dict]:
    """Ours against the peers of args.peers_python, alternating by round (module docstring)."""
    names = args.cases.split(",") if args.cases else list(PEER_CASES)
    unknown = [name for name in names if name not in CASES]
    if unknown:
        raise SystemExit(f"benchmarks.transforms: unknown case(s) {unknown}; cases: {', '.join(CASES)}")
    peers = [peer for peer in args.peers.split(",") if peer in PEERS]
    records = []
    for name in names:
        case = CASES[name]
        best, skipped = {}, {}
        for _ in range(args.peer_rounds):
            for backend in ("ffi", *peers):
                if backend in skipped:
                    continue
                interpreter = sys.executable if backend == "ffi" else args.peers_python
                found = _timing_child(interpreter, name, backend, runs)
                if "skipped" in found:
                    skipped[backend] = found["skipped"]
                    continue
                kept = best.setdefault(backend, dict(found))
                for op in AUTO_DIRECTIONS:
                    kept[op] = _faster(kept[op], found[op])
        base = {"name": name, "grid": list(_grid_shape(case)), "ell_max": _ell_max(case),
                "spins": list(case["spins"]), "maps": _maps(case),
                "dtype": "float32" if case.get("real") else "complex64"}
        found = []
        for backend, timing in best.items():
            extra = {"peak_bytes": timing["peak_bytes"]} if "peak_bytes" in timing else {}
            found += [{**base, "backend": backend, "op": op, "min_ms": timing[op]["ms"],
                       "cpu_ms": timing[op]["cpu_ms"], "rounds": args.peer_rounds, **extra} for op in AUTO_DIRECTIONS]
        for backend, reason in skipped.items():
            found.append({**base, "backend": backend, "op": "skipped", "reason": reason})
        for peer in peers:
            if "ffi" in best and peer in best:
                ratio = {f"{op}{suffix}": best["ffi"][op][key] / best[peer][op][key]
                         for op in AUTO_DIRECTIONS for key, suffix in (("ms", ""), ("cpu_ms", "_cpu"))}
                found.append({**base, "op": "ratio", "peer": peer, **ratio})
        for record in found:
            print(json.dumps(record), flush=True)
        records += found
    if args.table:
        print_peer_table(records)
    return records


def print_peer_table(records: list[dict]) -> None:
    """forward / inverse min ms (wall and CPU) per case and backend, and ours / peer."""
    print()
    header = (f"{'case':>8} {'maps':>5} {'backend':>7} {'fwd ms':>9} {'inv ms':>9} {'fwd cpu':>9} {'inv cpu':>9}"
              f" {'ours/peer: fwd':>15} {'inv':>5} {'fwd cpu':>8} {'inv cpu':>8}")
    print(header)
    print("-" * len(header))
    rows = {}
    for r in records:
        rows.setdefault(r["name"], []).append(r)
    for name, found in rows.items():
        times = {}
        for r in found:
            if r["op"] in AUTO_DIRECTIONS:
                times.setdefault(r["backend"], {})[r["op"]] = r
        ratios = {r["peer"]: r for r in found if r["op"] == "ratio"}
        for backend, ops in times.items():
            cells = " ".join(f"{ops[op][key]:>9.2f}" for key in ("min_ms", "cpu_ms") for op in AUTO_DIRECTIONS)
            ratio = ratios.get(backend)
            if ratio:
                cells += (f" {ratio['forward']:>15.2f} {ratio['inverse']:>5.2f} {ratio['forward_cpu']:>8.2f}"
                          f" {ratio['inverse_cpu']:>8.2f}")
            print(f"{name:>8} {found[0]['maps']:>5} {backend:>7} {cells}")
        for r in found:
            if r["op"] == "skipped":
                print(f"{name:>8} {r['maps']:>5} {r['backend']:>7}  skipped: {r['reason']}")
    print()


def probe() -> None:
    """Print what the parent needs to know about the machine as one JSON line
    (in a child process, so that the parent never holds the device)."""
    import jax

    import sphcnn_kernels as sk
    from benchmarks.measure import device_description
    from sphcnn_kernels.auto import kernel_digest
    from sphcnn_kernels.backends import current_platform

    platform, kind = device_description()
    device = kind if platform == "gpu" else f"{os.cpu_count()} {platform.upper()} cores"
    print(json.dumps({"platform": current_platform(), "device": device, "jax": jax.__version__,
                      "backends": list(sk.available_backends()), "kernels": kernel_digest(current_platform())}),
          flush=True)


def _skip_reason(name: str, backend: str) -> str | None:
    """Why a (case, backend) is not run, or None."""
    case = CASES[name]
    spins, n = len(case["spins"]), case["n"]
    table = spins * (n - 1) * (n // 2) * n * 8
    if backend in DENSE_TABLE_BACKENDS and table > DENSE_TABLE_LIMIT:
        return f"the {backend} backend's dense table would take {table / 2**30:.0f} GiB to build"
    return None


def _failure(name: str, backend: str, reason: str) -> dict:
    return {"name": name, "backend": backend, "op": "failed", "reason": reason}


def _run_child(name: str, backend: str, runs: int, budget_s: float, timeout_s: float | None) -> list[dict]:
    """Run one case in a fresh process; its records, or one 'failed' record."""
    command = [sys.executable, "-m", "benchmarks.transforms", "--case", name, "--backend", backend,
               "--runs", str(runs), "--budget", str(budget_s)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return [_failure(name, backend, f"ran past the time limit ({timeout_s:.0f} s left)")]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        tail = result.stderr.strip().splitlines()[-1:] or [""]
        records.append(_failure(name, backend, f"exit status {result.returncode}: {tail[0]}"))
    return records


def _cell(value, fmt: str, width: int) -> str:
    return f"{'-' if value is None else format(value, fmt):>{width}}"


def _pair(ops: dict, key: str, fmt: str) -> str:
    """'forward/inverse' values of a field, '-' where missing."""
    values = [ops.get(op, {}).get(key) for op in ("forward", "inverse")]
    return "/".join("-" if v is None else format(v, fmt) for v in values)


def print_table(records: list[dict]) -> None:
    """A readable table of the records: one row per (case, backend)."""
    rows = {}
    for r in records:
        rows.setdefault((r["name"], r["backend"]), {})[r["op"]] = r
    header = (f"{'case':>6} {'maps':>5} {'backend':>7} {'mode':>8} {'fwd ms':>9} {'inv ms':>9} {'fwd grad':>9}"
              f" {'inv grad':>9} {'kernels/call':>12} {'bw fwd/inv':>11} {'compile s':>9} {'round trip':>10}"
              f" {'peak MB':>8}")
    print()
    print(header)
    print("-" * len(header))
    for (name, backend), ops in rows.items():
        note = ops.get("skipped") or ops.get("failed")
        if note and "forward" not in ops:
            print(f"{name:>6} {'':>5} {backend:>7}  {note['op']}: {note['reason']}")
            continue
        s, fwd = ops.get("summary", {}), ops.get("forward", {})
        ms = [_cell(ops.get(op, {}).get("ms"), ".3f", 9) for op in OPS]
        print(f"{name:>6} {fwd.get('maps', 0):>5} {backend:>7} {fwd.get('mode') or '-':>8} {' '.join(ms)}"
              f" {_pair(ops, 'kernels_per_call', '.0f'):>12} {_pair(ops, 'bw_fraction', '.0%'):>11}"
              f" {_cell(s.get('compile_s'), '.2f', 9)} {_cell(s.get('roundtrip_err'), '.1e', 10)}"
              f" {_cell(s.get('peak_bytes', 0) / 2**20 if s else None, '.0f', 8)}")
        if "failed" in ops:
            print(f"{'':>6} {'':>5} {'':>7}  failed: {ops['failed']['reason']}")
    print()


def update_auto_table(records: list[dict], machine: dict, path) -> None:
    """Write the forward / inverse medians (ms) of the records into the auto table
    at `path` (format: sphcnn_kernels.auto), as its 'analysis' / 'synthesis' rows.

    Only cases that ran to their summary with a round-trip error of at most
    ROUNDTRIP_LIMIT count: a kernel that is fast and wrong is never chosen. Each
    measured (platform, direction, n) gets exactly the backends measured now;
    other sizes are kept, unless the platform's kernels are measured from other
    sources than the table's (its '_kernels' digest, machine['kernels']): then
    the platform's old rows are dropped. _source[platform] says where and when
    the figures were measured.
    """
    from sphcnn_kernels.auto import DIGEST_KEY

    path = pathlib.Path(path)
    table = json.loads(path.read_text()) if path.exists() else {}
    complete = {(r["name"], r["backend"]) for r in records
                if r.get("op") == "summary" and r["roundtrip_err"] <= ROUNDTRIP_LIMIT}
    for r in records:
        if r.get("op") == "summary" and (r["name"], r["backend"]) not in complete:
            print(f"auto table: {r['name']} on {r['backend']} left out, round trip error {r['roundtrip_err']:.1e} "
                  f"> {ROUNDTRIP_LIMIT:.0e}", file=sys.stderr)
    fresh: dict = {}
    for r in records:
        if r.get("op") in AUTO_DIRECTIONS and (r["name"], r["backend"]) in complete:
            sizes = fresh.setdefault(r["platform"], {}).setdefault(AUTO_DIRECTIONS[r["op"]], {})
            sizes.setdefault(str(r["n"]), {})[r["backend"]] = round(r["ms"], 4)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    for platform, directions in fresh.items():
        digest = machine.get("kernels") if platform == machine["platform"] else None
        rows = table.setdefault(platform, {})
        if rows.get(DIGEST_KEY) != digest:
            rows.clear()
        if digest:
            rows[DIGEST_KEY] = digest
        for direction, sizes in directions.items():
            rows.setdefault(direction, {}).update(sizes)
        measured = sorted({int(n) for d in directions.values() for n in d})
        table.setdefault("_source", {})[platform] = (
            f"{machine['device']}, jax {machine['jax']}, {date}: medians of benchmarks.transforms --update-auto "
            f"(back-to-back device time) at n = {', '.join(map(str, measured))}")
    path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"updated {path}", file=sys.stderr)


def _probe_machine() -> dict:
    result = subprocess.run([sys.executable, "-m", "benchmarks.transforms", "--probe"], capture_output=True,
                            text=True, env=os.environ.copy())
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit("benchmarks.transforms: could not start JAX and sphcnn_kernels (see above)")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _backends(requested: str | None, available: list[str]) -> list[str]:
    if not requested:
        return available
    return [b for b in requested.split(",") if b in available]


def run_all(args, runs: int) -> list[dict]:
    """Run the selected cases, each in a fresh process, printing their JSON lines."""
    deadline = None if args.time_limit is None else time.monotonic() + args.time_limit
    names = args.cases.split(",") if args.cases else list(QUICK if args.quick else DEFAULT_CASES)
    unknown = [name for name in names if name not in CASES]
    if unknown:
        raise SystemExit(f"benchmarks.transforms: unknown case(s) {unknown}; cases: {', '.join(CASES)}")
    gridded = [name for name in names if "grid" in CASES[name]]
    if gridded:
        raise SystemExit(f"benchmarks.transforms: case(s) {gridded} run with --peers-python only (the backend "
                         "sweep times the n x n grid); add --peers-python PYTHON")
    machine = _probe_machine()
    records = []
    for name in names:
        for backend in _backends(args.backends, machine["backends"]):
            left = None if deadline is None else deadline - time.monotonic()
            reason = _skip_reason(name, backend) or ("time limit reached" if left is not None and left <= 0 else None)
            if reason:
                found = [{"name": name, "backend": backend, "op": "skipped", "reason": reason}]
            else:
                found = _run_child(name, backend, runs, args.budget, left)
            for record in found:
                print(json.dumps(record), flush=True)
            records += found
    if args.table:
        print_table(records)
    if args.update_auto:
        from sphcnn_kernels.auto import TIMINGS_FILE

        update_auto_table(records, machine, args.auto_file or TIMINGS_FILE)
    return records


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)} with 5 runs each")
    parser.add_argument("--table", action="store_true", help="also print a readable table at the end")
    parser.add_argument("--cases", help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--backends", help="comma-separated subset of the available backends")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per measurement (default 20, quick 5)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per measurement before fewer runs are taken")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds for all cases: cases not started by then are skipped, a running one is stopped")
    parser.add_argument("--update-auto", action="store_true", help="write the medians into the auto table")
    parser.add_argument("--auto-file", help="the auto table to update (default sphcnn_kernels/auto_backend.json)")
    parser.add_argument("--peers-python", help="an interpreter with ducc0 and/or s2fft: compare the ffi backend "
                        "with them instead (see above; --runs calls per process, default 5)")
    parser.add_argument("--peer-rounds", type=int, default=3, help="alternating rounds of --peers-python (default 3)")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {', '.join(PEERS)}")
    parser.add_argument("--timing", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 20)
    if args.timing:
        if args.backend == "ffi":
            run_timing(args.timing, args.runs or 5)
        else:
            run_peer(args.timing, args.backend, args.runs or 5)
    elif args.peers_python:
        compare_peers(args, args.runs or 5)
    elif args.probe:
        probe()
    elif args.case:
        run_case(args.case, args.backend, runs, args.budget)
    elif any(r["op"] == "failed" for r in run_all(args, runs)):
        raise SystemExit("benchmarks.transforms: some cases failed (op 'failed' lines above)")


if __name__ == "__main__":
    main()
