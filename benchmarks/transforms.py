"""Timings of the spin-weighted spherical harmonic transforms.

    python -m benchmarks.transforms            # all sizes, every available backend
    python -m benchmarks.transforms --quick --table
    python -m benchmarks.transforms --update-auto   # also rewrite sphcnn_kernels/auto_backend.json

Every (size, backend) case runs in a fresh process, so compile time and peak
memory are measured cold. Each case prints JSON lines
{"name", "backend", "op", "ms", ...}: op is forward, inverse or forward_grad (the
gradient of forward, i.e. its transpose), ms the median over >= 20 runs after
warm-up (fewer, at least 3, for cases slower than the time budget; "runs" says
how many), bytes the minimal traffic (input read once, output written once),
bw_fraction that traffic over the device's peak bandwidth, peak_bytes the peak
device memory (GPU) or the growth of the peak resident set over the inputs (CPU), compile_s the plan construction plus
compilation of forward, roundtrip_err max|forward(inverse(a)) - a| / max|a| for
random band-limited a in the default precision, constants_bytes the plan's
constant tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CASES = {
    "n64": dict(n=64, batch=8, spins=(0, 1), channels=32),
    "n128": dict(n=128, batch=8, spins=(0, 1), channels=32),
    "n256": dict(n=256, batch=8, spins=(0, 1), channels=16),
    "n2048": dict(n=2048, batch=1, spins=(0, 1), channels=2, mode="onthefly"),
}
QUICK = ("n64", "n128")
# The XLA backend embeds a dense float64-built table of S (2L-1) L n entries; above
# this size it is not run (n = 2048 would need 68 GB).
XLA_TABLE_LIMIT = 1 << 30


def _maps(case: dict) -> int:
    return case["batch"] * len(case["spins"]) * case["channels"]


def run_case(name: str, backend: str, runs: int, budget_s: float) -> None:
    """Measure one case in this process and print its JSON lines."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import sphcnn_kernels as sk
    from benchmarks.measure import device_description, emit, peak_bandwidth, peak_memory_bytes, time_function
    from sphcnn_kernels.backends.ffi_backend import cuda_mode
    from sphcnn_kernels.primitives import analysis, synthesis

    case = CASES[name]
    n, spins, ell_max = case["n"], tuple(case["spins"]), case["n"] // 2 - 1
    platform, device = device_description()
    plan = sk.get_plan(n, ell_max, spins, "complex64", backend, "highest", case.get("mode", "auto"))
    rng = np.random.default_rng(0)
    shape = (case["batch"], n, n, len(spins), case["channels"])
    x = jnp.asarray((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64))

    baseline = peak_memory_bytes() if platform == "cpu" else 0
    forward = jax.jit(lambda v: analysis(v, plan, -1, True))
    inverse = jax.jit(lambda v: synthesis(v, plan, 1, False))
    start = time.perf_counter()
    compiled = forward.lower(x).compile()
    compile_s = time.perf_counter() - start
    a = compiled(x)
    cotangent = jnp.conj(a)
    grad = jax.jit(jax.grad(lambda v: jnp.real(jnp.sum(cotangent * analysis(v, plan, -1, True))), holomorphic=False))

    coeffs = np.asarray(a)
    ell = np.arange(ell_max + 1)[:, None, None]
    m = np.arange(-ell_max, ell_max + 1)[None, :, None]
    keep = (ell >= np.abs(m)) & (ell >= np.abs(np.asarray(spins)))[None, None, :]
    band = jnp.asarray(coeffs * keep[None, ..., None])
    back = np.asarray(forward(inverse(band)))
    roundtrip = float(np.abs(back - np.asarray(band)).max() / np.abs(np.asarray(band)).max())

    bandwidth, bandwidth_source = peak_bandwidth()
    if backend == "xla":
        constants = plan.legendre_table.size * 4
    elif platform == "gpu" and cuda_mode(plan) == "table":
        constants = len(spins) * (2 * ell_max + 1) * (n // 2) * (ell_max + 1) * 4
    else:
        constants = n * 4
    base = {
        "name": name, "backend": backend, "platform": platform, "device": device, "n": n, "ell_max": ell_max,
        "maps": _maps(case), "dtype": "complex64",
        "mode": cuda_mode(plan) if (platform == "gpu" and backend == "ffi") else None,
    }
    for op, fn, arg in (("forward", forward, x), ("inverse", inverse, band), ("forward_grad", grad, x)):
        timing = time_function(fn, arg, runs=runs, budget_s=budget_s)
        traffic = x.nbytes + a.nbytes
        emit({**base, "op": op, **timing, "bytes": traffic,
              "bw_fraction": traffic / (timing["ms"] * 1e-3) / bandwidth, "bandwidth_source": bandwidth_source})
    emit({**base, "op": "summary", "compile_s": compile_s, "roundtrip_err": roundtrip,
          "peak_bytes": peak_memory_bytes() - baseline, "constants_bytes": int(constants)})


def _backends(requested: str | None) -> list[str]:
    import sphcnn_kernels as sk

    available = list(sk.available_backends())
    if not requested:
        return available
    return [b for b in requested.split(",") if b in available]


def _skip_reason(name: str, backend: str) -> str | None:
    case = CASES[name]
    spins, n = len(case["spins"]), case["n"]
    table = spins * (n - 1) * (n // 2) * n * 8
    if backend == "xla" and table > XLA_TABLE_LIMIT:
        return f"the XLA backend's dense table would take {table / 2**30:.0f} GiB"
    return None


def print_table(records: list[dict]) -> None:
    rows = {}
    for r in records:
        rows.setdefault((r["name"], r["backend"]), {})[r["op"]] = r
    print()
    header = f"{'case':>6} {'maps':>5} {'backend':>7} {'forward ms':>11} {'inverse ms':>11} {'grad ms':>9} {'compile s':>9} {'round trip':>10} {'peak MB':>8}"
    print(header)
    print("-" * len(header))
    for (name, backend), ops in rows.items():
        if "skipped" in ops:
            print(f"{name:>6} {'':>5} {backend:>7}  skipped: {ops['skipped']['reason']}")
            continue
        s = ops.get("summary", {})
        print(
            f"{name:>6} {ops['forward']['maps']:>5} {backend:>7} {ops['forward']['ms']:>11.2f} {ops['inverse']['ms']:>11.2f}"
            f" {ops['forward_grad']['ms']:>9.2f} {s.get('compile_s', float('nan')):>9.2f}"
            f" {s.get('roundtrip_err', float('nan')):>10.1e} {s.get('peak_bytes', 0) / 2**20:>8.0f}"
        )
    print()


def update_auto_table(records: list[dict]) -> None:
    from sphcnn_kernels.auto import TIMINGS_FILE

    table = json.loads(TIMINGS_FILE.read_text()) if TIMINGS_FILE.exists() else {}
    for r in records:
        if r.get("op") not in ("forward", "inverse"):
            continue
        platform = "cuda" if r["platform"] == "gpu" else r["platform"]
        table.setdefault(platform, {}).setdefault(r["op"], {}).setdefault(str(r["n"]), {})[r["backend"]] = round(r["ms"], 4)
    TIMINGS_FILE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"updated {TIMINGS_FILE}", file=sys.stderr)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)} with 5 runs each")
    parser.add_argument("--table", action="store_true", help="also print a readable table at the end")
    parser.add_argument("--cases", help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--backends", help="comma-separated subset of the available backends")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per measurement (default 20, quick 5)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per measurement before fewer runs are taken")
    parser.add_argument("--update-auto", action="store_true", help="write the medians into sphcnn_kernels/auto_backend.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 20)
    if args.case:
        run_case(args.case, args.backend, runs, args.budget)
        return
    names = args.cases.split(",") if args.cases else list(QUICK if args.quick else CASES)
    records = []
    for name in names:
        for backend in _backends(args.backends):
            reason = _skip_reason(name, backend)
            if reason:
                record = {"name": name, "backend": backend, "op": "skipped", "reason": reason}
                print(json.dumps(record), flush=True)
                records.append(record)
                continue
            command = [sys.executable, "-m", "benchmarks.transforms", "--case", name, "--backend", backend,
                       "--runs", str(runs), "--budget", str(args.budget)]
            result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
            if result.returncode != 0:
                sys.stderr.write(result.stderr)
                raise SystemExit(f"benchmark case {name}/{backend} failed")
            for line in result.stdout.splitlines():
                print(line, flush=True)
                records.append(json.loads(line))
    if args.table:
        print_table(records)
    if args.update_auto:
        update_auto_table(records)


if __name__ == "__main__":
    main()
