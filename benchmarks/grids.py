"""Transforms on the grids of sphcnn_kernels.grids: time, bytes and the real
path against the complex one, side by side in one process, and against s2fft.

    python -m benchmarks.grids                  # ERA5-shaped, Gauss-Legendre, HEALPix; real and complex
    python -m benchmarks.grids --cases era5     # one case
    python -m benchmarks.grids --cases era5_359,healpix256 --backends auto,ffi --peers s2fft   # on a GPU

One JSON line per (case, backend, real): forward and inverse ms (median of
back-to-back synchronized calls after warm-up, benchmarks.measure), the bytes
of the maps and of the coefficients, and for real=True the ratio of its times
and bytes to the complex transform's of the same real maps (real maps are
promoted to complex for the complex transform, as a user without real=True
would). Same work in both: same grid, band limit, maps and spins. A backend
that does not run a grid (ffi on HEALPix) gives {"op": "skipped", "reason"}.

--peers s2fft adds, per case, s2fft's JAX transforms of the same real maps at
the same band limit (reality=True, precomputed recursion, one jitted vmapped
call per direction): on HEALPix its own healpix sampling of the same nside;
on latitude-longitude grids, which s2fft does not sample as ERA5 does, its
mwss grid of that band limit (L + 1 rings of 2L points: other points, the same
maps and harmonic work). One line {"peer": "s2fft", forward_ms, inverse_ms,
"real_vs_s2fft": ours (real, first backend) / s2fft, forward and inverse}, or
{"peer": "s2fft", "op": "skipped", "reason"} when s2fft cannot be imported or
fails.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import sphcnn_kernels as sk
from benchmarks.measure import emit, time_function
from sphcnn_kernels import grids

# name -> (grid, ell_max, maps)
CASES = {
    "era5": (grids.equiangular(721, 1440), 127, 4),
    "gauss_legendre": (grids.gauss_legendre(128, 256), 127, 4),
    "healpix": (grids.healpix(64), 127, 4),
    # the GPU figures: ERA5 at its full band limit, HEALPix nside 256 at L = 2 nside
    "era5_359": (grids.equiangular(721, 1440), 359, 4),
    "healpix256": (grids.healpix(256), 511, 4),
}
DEFAULT_CASES = ("era5", "gauss_legendre", "healpix")


def _measure(grid: grids.Grid, ell_max: int, maps: int, real: bool, backend: str) -> dict:
    t = sk.SphericalTransform(grid, (0,), ell_max=ell_max, real=real, backend=backend)
    x = np.random.default_rng(0).normal(size=(maps, *grid.shape, 1, 1)).astype(np.float32)
    x = jnp.asarray(x if real else x.astype(np.complex64))
    forward = jax.jit(t.forward)
    a = jax.block_until_ready(forward(x))
    inverse = jax.jit(t.inverse)
    return dict(forward_ms=time_function(forward, x)["ms"], inverse_ms=time_function(inverse, a)["ms"],
                map_bytes=int(x.nbytes), coefficient_bytes=int(a.nbytes))


def _s2fft(grid: grids.Grid, ell_max: int, maps: int) -> dict:
    """forward and inverse ms of `maps` real maps through s2fft (module docstring)."""
    import s2fft

    L = ell_max + 1
    if grid.kind == "healpix":
        options = dict(sampling="healpix", nside=grid.params[0])
        shape = (grid.n_points,)
    else:
        options = dict(sampling="mwss")
        shape = (L + 1, 2 * L)
    calls = {}
    for direction, forward in (("forward", True), ("inverse", False)):
        precomps = s2fft.generate_precomputes_jax(L, 0, forward=forward, **options)
        transform = s2fft.forward if forward else s2fft.inverse
        calls[direction] = jax.jit(jax.vmap(lambda v, transform=transform, precomps=precomps: transform(
            v, L, spin=0, method="jax", reality=True, precomps=precomps, **options)))
    f = jnp.asarray(np.random.default_rng(0).normal(size=(maps, *shape)).astype(np.float32))
    flm = jax.block_until_ready(calls["forward"](f))
    return dict(forward_ms=time_function(calls["forward"], f)["ms"],
                inverse_ms=time_function(calls["inverse"], flm)["ms"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--backends", default="auto", help="comma-separated, from auto, xla, ffi")
    parser.add_argument("--peers", default="", help="comma-separated: s2fft, or nothing")
    args = parser.parse_args(argv)
    backends = args.backends.split(",")
    for backend in backends:
        if backend not in ("auto", "xla", "ffi"):
            parser.error(f"argument --backends: unknown backend {backend!r}; expected some of auto, xla, ffi")
    peers = [p for p in args.peers.split(",") if p]
    for peer in peers:
        if peer != "s2fft":
            parser.error(f"argument --peers: unknown peer {peer!r}; expected s2fft")
    for name in args.cases.split(","):
        if name not in CASES:
            parser.error(f"argument --cases: unknown case {name!r}; expected some of {', '.join(CASES)}")
        grid, ell_max, maps = CASES[name]
        base = dict(name="grids", case=name, grid=repr(grid), ell_max=ell_max, maps=maps, spins=[0])
        ours = None
        for backend in backends:
            if backend == "ffi" and grid.analysis_method != "quadrature":
                emit({**base, "backend": backend, "op": "skipped", "reason": f"no kernels on {grid!r}"})
                continue
            complex_run = _measure(grid, ell_max, maps, real=False, backend=backend)
            real_run = _measure(grid, ell_max, maps, real=True, backend=backend)
            emit({**base, "backend": backend, "real": False, **complex_run})
            ratios = {f"{key}_vs_complex": real_run[key] / complex_run[key] for key in real_run}
            emit({**base, "backend": backend, "real": True, **real_run, **ratios})
            ours = ours or real_run
        if "s2fft" in peers:
            try:
                timing = _s2fft(grid, ell_max, maps)
            except Exception as error:  # the peer's failure is a result of the run, not of ours
                emit({**base, "peer": "s2fft", "op": "skipped", "reason": f"{type(error).__name__}: {error}"[:300]})
                continue
            ratio = {} if ours is None else {"real_vs_s2fft": [ours["forward_ms"] / timing["forward_ms"],
                                                               ours["inverse_ms"] / timing["inverse_ms"]]}
            emit({**base, "peer": "s2fft", **timing, **ratio})


if __name__ == "__main__":
    main()
