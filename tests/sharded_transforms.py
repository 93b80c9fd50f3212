"""Run by tests/test_sharding.py in a process of its own with 4 CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=4 must be set before JAX
starts): prints one JSON line per case with what the test asserts."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import sphcnn_kernels as sk

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
        backend=backend, layout=layout,
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


for backend, layout in [(b, l) for b in sys.argv[1:] for l in ("batch_major", "degree_major")]:
    print(json.dumps(case(backend, layout)), flush=True)
