"""A batch of maps sharded over 4 CPU devices stays sharded through forward
and inverse (no all-gather in the compiled program, outputs sharded like the
input), under jit with sharded arguments, with in_shardings and inside
shard_map, with results equal to one device's (float64), on the n x n grid,
through the grid ops (equiangular(9, 20)) and on the grids without kernels
(healpix, mw, mwss); the cases run in a process of their own
(tests/sharded_transforms.py), which has 4 devices."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from jax.sharding import PartitionSpec as P

HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, str(HERE / "sharded_transforms.py"), "ffi", "xla"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_every_backend_and_layout_ran(cases):
    assert {(c["backend"], c["layout"]) for c in cases if c["kind"] == "square"} == {
        (b, l) for b in ("ffi", "xla") for l in ("batch_major", "degree_major")}
    assert {(c["backend"], c["grid"]) for c in cases if c["kind"] == "grid"} == {
        ("ffi", "equiangular(nlat=9, nlon=20)"), ("xla", "equiangular(nlat=9, nlon=20)"), ("xla", "healpix(nside=4)"),
        ("xla", "mw(L=6)"), ("xla", "mwss(L=6)")}


@pytest.mark.parametrize("index", range(4))
def test_batch_stays_sharded_and_results_equal_one_device(cases, index):
    c = [c for c in cases if c["kind"] == "square"][index]
    assert c["gathers"] == 0 and c["in_shardings_gathers"] == 0, c
    assert c["roundtrip_spec"] == c["grad_spec"] == str(P("b")), c
    assert c["forward_spec"] == c["want_forward_spec"], c
    assert (c["custom_calls"] > 0) == (c["backend"] == "ffi"), c
    for key in ("roundtrip_error", "in_shardings_error", "shard_map_error", "grad_error"):
        assert c[key] < 1e-12, (key, c)


@pytest.mark.parametrize("backend,grid", [("ffi", "equiangular(nlat=9, nlon=20)"),
                                          ("xla", "equiangular(nlat=9, nlon=20)"), ("xla", "healpix(nside=4)"),
                                          ("xla", "mw(L=6)"), ("xla", "mwss(L=6)")])
def test_grid_ops_keep_the_batch_sharded(cases, backend, grid):
    (c,) = [c for c in cases if c["kind"] == "grid" and c["backend"] == backend and c["grid"] == grid]
    assert c["gathers"] == [0, 0, 0, 0], c  # forward, inverse, their gradients
    assert c["forward_spec"] == c["inverse_spec"] == c["grad_spec"] == c["inverse_grad_spec"] == str(P("b")), c
    assert (c["custom_calls"] > 0) == (backend == "ffi"), c
    for key in ("forward_error", "inverse_error", "grad_error", "inverse_grad_error"):
        assert c[key] < 1e-12, (key, c)
