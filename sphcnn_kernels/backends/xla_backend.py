"""Pure-JAX backend: FFT over longitude, then a batched matrix product with the
lambda table. The reference implementation the other backends are tested against.

The table (S, 2 ell_max + 1, ell_max + 1, n) is the plan's dense table (built in
float64 by the C++ recurrence, rounded once to the data precision), embedded as
a constant. Writes batch-major coefficients only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sphcnn_kernels.backends.fourier import forward_rings, rings_to_grid
from sphcnn_kernels.plan import Plan
from sphcnn_kernels.precision import matmul_precision

WRITES_DEGREE_MAJOR = False


def _real_product(spec: str, z: jax.Array, plan: Plan, precision: str, platform: str) -> jax.Array:
    """einsum of the real table with complex data, as one real product over (re, im)."""
    pair = jnp.stack([z.real, z.imag], axis=-1)
    out = jnp.einsum(spec, pair, plan.dense_table, precision=matmul_precision(precision, platform))
    return jax.lax.complex(out[..., 0], out[..., 1])


def analysis(x: jax.Array, *, plan: Plan, sign: int, weighted: bool, precision: str, platform: str,
             **_) -> jax.Array:
    x = x.astype(plan.dtype)
    if weighted:
        x = x * plan.ring_scale(True)[:, None, None, None]
    f = forward_rings(x, sign, plan.ell_max)
    return _real_product("...jmscr,smlj->...lmscr", f, plan, precision, platform)


def synthesis(a: jax.Array, *, plan: Plan, sign: int, weighted: bool, precision: str, platform: str,
              **_) -> jax.Array:
    g = _real_product("...lmscr,smlj->...jmscr", a, plan, precision, platform)  # (..., n, M, S, C)
    x = rings_to_grid(g, sign, plan.n)
    if weighted:
        x = x * plan.ring_scale(True)[:, None, None, None]
    return x
