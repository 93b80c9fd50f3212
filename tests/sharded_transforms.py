"""Run by tests/test_sharding.py in a process of its own with 4 CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=4 must be set before JAX
starts): prints one JSON line per case with what the test asserts, the n x n
grid's cases (kind "square") for each backend and layout, then the grid ops'
(kind "grid", equiangular(9, 20)) for each backend, then (kind "grid", backend
"xla") the grids without kernels: healpix(4) with one Jacobi iteration, mw(6)
and mwss(6)."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import sphcnn_kernels as sk
from sphcnn_kernels import grids

jax.config.update("jax_enable_x64", True)
assert jax.device_count() == 4, os.environ.get("XLA_FLAGS")
mesh = Mesh(np.array(jax.devices()), ("b",))


def case(backend: str, layout: str) -> dict:
    t = sk.SphericalTransform(16, (0, 1), dtype="complex128", backend=backend, layout=layout)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(8, 16, 16, 2, 3)) + 1j * rng.normal(size=(8, 16, 16, 2, 3)))
    sharded = jax.device_put(x, NamedSharding(mesh, P("b")))
    roundtrip = jax.jit(lambda v: t.inverse(t.forward(v)))
    forward = jax.jit(t.forward)
    grad = jax.jit(jax.grad(lambda v: jnp.sum(jnp.abs(t.forward(v)) ** 2)))
    spec = P("b") if layout == "batch_major" else P(None, "b")
    placed = jax.jit(lambda v: t.inverse(t.forward(v)), in_shardings=NamedSharding(mesh, P("b")))
    mapped = jax.shard_map(lambda v: t.inverse(t.forward(v)), mesh=mesh, in_specs=P("b"), out_specs=P("b"))
    texts = [f.lower(sharded).compile().as_text() for f in (roundtrip, forward, grad)]
    single = np.asarray(jax.jit(lambda v: t.inverse(t.forward(v)))(np.asarray(x)))
    return dict(
        kind="square", backend=backend, layout=layout,
        gathers=sum(text.count("all-gather") for text in texts),
        custom_calls=sum(text.count("custom-call") for text in texts),
        roundtrip_spec=str(roundtrip(sharded).sharding.spec), forward_spec=str(forward(sharded).sharding.spec),
        want_forward_spec=str(spec), grad_spec=str(grad(sharded).sharding.spec),
        roundtrip_error=float(np.max(np.abs(np.asarray(roundtrip(sharded)) - single))),
        in_shardings_error=float(np.max(np.abs(np.asarray(placed(x)) - single))),
        in_shardings_gathers=placed.lower(x).compile().as_text().count("all-gather"),
        shard_map_error=float(np.max(np.abs(np.asarray(jax.jit(mapped)(sharded)) - single))),
        grad_error=float(np.max(np.abs(np.asarray(grad(sharded)) - np.asarray(grad(np.asarray(x)))))),
    )


def grid_case(backend: str, grid: grids.Grid, iterations: int = 0) -> dict:
    """forward, inverse and the gradients of both on `grid`."""
    t = sk.SphericalTransform(grid, (0, 1), dtype="complex128", backend=backend, iterations=iterations,
                              ell_max=5 if grid.kind == "healpix" else None)
    rng = np.random.default_rng(1)
    shape = (8, *grid.shape, 2, 3)
    x = jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape))
    forward, inverse = jax.jit(t.forward), jax.jit(t.inverse)
    grad = jax.jit(jax.grad(lambda v: jnp.sum(jnp.abs(t.forward(v)) ** 2)))
    inverse_grad = jax.jit(jax.grad(lambda c: jnp.sum(jnp.abs(t.inverse(c)) ** 2)))
    a = forward(np.asarray(x))
    maps, coefficients = (jax.device_put(v, NamedSharding(mesh, P("b"))) for v in (x, a))
    texts = [f.lower(v).compile().as_text() for f, v in ((forward, maps), (inverse, coefficients), (grad, maps),
                                                          (inverse_grad, coefficients))]
    return dict(
        kind="grid", backend=backend, grid=repr(grid),
        gathers=[text.count("all-gather") for text in texts],  # forward, inverse, their gradients
        custom_calls=sum(text.count("sphcnn_grid_") for text in texts),
        forward_spec=str(forward(maps).sharding.spec), inverse_spec=str(inverse(coefficients).sharding.spec),
        grad_spec=str(grad(maps).sharding.spec), inverse_grad_spec=str(inverse_grad(coefficients).sharding.spec),
        forward_error=float(np.max(np.abs(np.asarray(forward(maps)) - np.asarray(a)))),
        inverse_error=float(np.max(np.abs(np.asarray(inverse(coefficients)) - np.asarray(inverse(np.asarray(a)))))),
        grad_error=float(np.max(np.abs(np.asarray(grad(maps)) - np.asarray(grad(np.asarray(x)))))),
        inverse_grad_error=float(np.max(np.abs(np.asarray(inverse_grad(coefficients))
                                               - np.asarray(inverse_grad(np.asarray(a)))))),
    )


for backend, layout in [(b, l) for b in sys.argv[1:] for l in ("batch_major", "degree_major")]:
    print(json.dumps(case(backend, layout)), flush=True)
for backend in sys.argv[1:]:
    print(json.dumps(grid_case(backend, grids.equiangular(9, 20))), flush=True)
for grid, iterations in ((grids.healpix(4), 1), (grids.mw(6), 0), (grids.mwss(6), 0)):
    print(json.dumps(grid_case("xla", grid, iterations)), flush=True)
