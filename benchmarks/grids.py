"""Transforms on the grids of sphcnn_kernels.grids: time, bytes and the real
path against the complex one, side by side in one process.

    python -m benchmarks.grids                  # ERA5-shaped, Gauss-Legendre, HEALPix; real and complex
    python -m benchmarks.grids --cases era5     # one case

One JSON line per (case, real): forward and inverse ms (median of
back-to-back synchronized calls after warm-up, benchmarks.measure), the bytes
of the maps and of the coefficients, and for real=True the ratio of its times
and bytes to the complex transform's of the same real maps (real maps are
promoted to complex for the complex transform, as a user without real=True
would). Same work in both: same grid, band limit, maps and spins.
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
}


def _measure(grid: grids.Grid, ell_max: int, maps: int, real: bool) -> dict:
    t = sk.SphericalTransform(grid, (0,), ell_max=ell_max, real=real)
    x = np.random.default_rng(0).normal(size=(maps, *grid.shape, 1, 1)).astype(np.float32)
    x = jnp.asarray(x if real else x.astype(np.complex64))
    forward = jax.jit(t.forward)
    a = jax.block_until_ready(forward(x))
    inverse = jax.jit(t.inverse)
    return dict(forward_ms=time_function(forward, x)["ms"], inverse_ms=time_function(inverse, a)["ms"],
                map_bytes=int(x.nbytes), coefficient_bytes=int(a.nbytes))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    args = parser.parse_args(argv)
    for name in args.cases.split(","):
        if name not in CASES:
            parser.error(f"argument --cases: unknown case {name!r}; expected some of {', '.join(CASES)}")
        grid, ell_max, maps = CASES[name]
        complex_run = _measure(grid, ell_max, maps, real=False)
        real_run = _measure(grid, ell_max, maps, real=True)
        base = dict(name="grids", case=name, grid=repr(grid), ell_max=ell_max, maps=maps, spins=[0])
        emit({**base, "real": False, **complex_run})
        ratios = {f"{key}_vs_complex": real_run[key] / complex_run[key] for key in real_run}
        emit({**base, "real": True, **real_run, **ratios})


if __name__ == "__main__":
    main()
