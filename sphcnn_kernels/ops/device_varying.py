"""Device-varying values under jax.shard_map.

Inside shard_map, JAX types every value with the mesh axes it varies over (a
batch shard varies over the batch axis; a replicated parameter varies over
none). Automatic differentiation sums the gradient of a replicated input over
the devices by itself (the transpose of its implicit broadcast); a hand-written
VJP must do the same to return a cotangent of its input's type (:func:`sum_like`).
"""

from __future__ import annotations

import jax


def varying_axes(x: jax.Array) -> frozenset | None:
    """The mesh axes x varies over inside shard_map (empty outside), or None
    where this JAX does not type values by the axes they vary over."""
    kind = jax.typeof(x)
    manual = getattr(kind, "manual_axis_type", None)
    if manual is not None:
        return frozenset(manual.varying)
    vma = getattr(kind, "vma", None)
    return None if vma is None else frozenset(vma)


def sum_like(cotangent: jax.Array, primal: jax.Array) -> jax.Array:
    """`cotangent` summed over the mesh axes it varies over and `primal` does not:
    the cotangent of a replicated input computed from device-varying data."""
    have, want = varying_axes(cotangent), varying_axes(primal)
    extra = tuple(sorted(have - want)) if have is not None and want is not None else ()
    return jax.lax.psum(cotangent, extra) if extra else cotangent
