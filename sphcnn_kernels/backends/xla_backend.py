"""Pure-JAX backend: FFT over longitude, then a batched matrix product with the
lambda table. The reference implementation the other backends are tested against.

The table (S, 2 ell_max + 1, ell_max + 1, n) is built in float64 by the C++
recurrence, rounded to the data precision and embedded as a constant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.backends.fourier import forward_rings, rings_to_grid
from sphcnn_kernels.plan import Plan


def _precision(plan: Plan, platform: str):
    """HIGHEST keeps GPUs from TF32; on CPUs DEFAULT is already full precision
    (and HIGHEST only selects a slower code path)."""
    if plan.precision == "highest" and platform != "cpu":
        return jax.lax.Precision.HIGHEST
    return jax.lax.Precision.DEFAULT


def _real_product(spec: str, table: np.ndarray, z: jax.Array, plan: Plan, platform: str) -> jax.Array:
    """einsum of a real table with complex data, as one real product over (re, im)."""
    pair = jnp.stack([z.real, z.imag], axis=-1)
    out = jnp.einsum(spec, pair, jnp.asarray(table, dtype=plan.real_dtype), precision=_precision(plan, platform))
    return jax.lax.complex(out[..., 0], out[..., 1])


def analysis(x: jax.Array, *, plan: Plan, sign: int, weighted: bool, platform: str) -> jax.Array:
    if weighted:
        x = x * jnp.asarray(plan.ring_scale(True), dtype=plan.real_dtype)[:, None, None, None]
    f = forward_rings(x, sign, plan.ell_max)
    return _real_product("...jmscr,smlj->...lmscr", plan.legendre_table, f, plan, platform)


def synthesis(a: jax.Array, *, plan: Plan, sign: int, weighted: bool, platform: str) -> jax.Array:
    g = _real_product("...lmscr,smlj->...jmscr", plan.legendre_table, a, plan, platform)  # (..., n, M, S, C)
    x = rings_to_grid(g, sign, plan.n)
    if weighted:
        x = x * jnp.asarray(plan.ring_scale(True), dtype=plan.real_dtype)[:, None, None, None]
    return x
