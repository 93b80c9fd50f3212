"""Linear JAX primitives: one helper for every linear operator of sphcnn, and the
two primitives every transform is made of.

For a plan (grid n, band limit L - 1 = ell_max, spins), a ring scale w_j and a
sign sigma = +-1:

  analysis:  a_lm = sum_j w_j lambda_{l,m,s}(theta_j) sum_k x_jk exp(sigma i m phi_k)
             (..., n, n, S, C) -> (..., L, 2L - 1, S, C)
  synthesis: x_jk = w_j sum_m exp(sigma i m phi_k) sum_l lambda_{l,m,s}(theta_j) a_lm
             (..., L, 2L - 1, S, C) -> (..., n, n, S, C)

with lambda_{l,m,s}(theta) = (-1)^s sqrt((2l + 1)/(4 pi)) d^l_{m,-s}(theta).
For the same (w, sigma) each is the transpose of the other (JAX's linear
transpose: no conjugation). The forward transform is analysis(w = q_j / n,
sigma = -1), the inverse is synthesis(w = 1, sigma = +1); their transposes give
the gradients. Analysis also takes real maps (spin 0): the transpose then keeps
the real part.

Parameters of both: plan (geometry and constants), sign, weighted, and the
options backend ('auto' is resolved per platform at lowering), precision,
layout and mode; see :mod:`sphcnn_kernels.lowering`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from sphcnn_kernels import lowering

# Platforms with a lowering rule of their own; every other platform gets the
# generic rule (registered for platform None).
PLATFORMS = ("cpu", "cuda")


@functools.lru_cache(maxsize=None)
def _compiled(primitive: Primitive, params: tuple) -> Callable:
    return jax.jit(lambda v: primitive.bind(v, **dict(params)))


def linear_primitive(name: str, *, abstract_eval: Callable, batch_axes: Callable[[dict], tuple[int, int]],
                     lowerings: Mapping[str | None, Callable]) -> Primitive:
    """A primitive for a linear operator of one operand.

    Its transpose is set by :func:`transposes`.

    Args:
        name: the primitive's name.
        abstract_eval: (aval, **params) -> the output aval.
        batch_axes: params -> (axis of the operand, axis of the result) along
            which the operator maps a leading batch (the batching rule moves the
            vmapped axis there).
        lowerings: platform (None: every platform without a rule of its own) ->
            fn(operand, **params), a traceable function of jax operations.

    Returns:
        The primitive, evaluated eagerly by jitting itself.
    """
    primitive = Primitive(name)
    primitive.def_impl(lambda operand, **params: _compiled(primitive, tuple(sorted(params.items())))(operand))
    primitive.def_abstract_eval(abstract_eval)

    def batch(args, dims, **params):
        (operand,), (dim,) = args, dims
        into, out = batch_axes(params)
        return primitive.bind(jnp.moveaxis(operand, dim, into), **params), out

    batching.primitive_batchers[primitive] = batch
    for platform, fn in lowerings.items():
        mlir.register_lowering(primitive, mlir.lower_fun(fn, multiple_results=False), platform=platform)
    return primitive


def transposes(first: Primitive, second: Primitive) -> None:
    """Make each of two linear primitives with the same parameters the transpose
    of the other. A real operand gets the real part of the transposed cotangent
    (the transpose of the promotion to complex).

    Args:
        first, second: the two primitives (from :func:`linear_primitive`).

    Returns:
        None: the transpose rules are registered with JAX.
    """

    def rule_to(other):
        def rule(cotangent, operand, **params):
            assert ad.is_undefined_primal(operand)
            if type(cotangent) is ad.Zero:
                return [ad.Zero(operand.aval)]
            out = other.bind(cotangent, **params)
            if not jnp.iscomplexobj(operand.aval) and jnp.iscomplexobj(out):
                out = jnp.real(out)
            return [out]

        return rule

    ad.deflinear2(first, rule_to(second))
    ad.deflinear2(second, rule_to(first))


def _analysis_abstract(x, *, plan, layout, **_):
    return x.update(shape=plan.spectral_shape(x.shape[:-4], *x.shape[-2:], layout), dtype=jnp.dtype(plan.dtype))


def _synthesis_abstract(a, *, plan, layout, **_):
    shape = plan.spectral_batch(a.shape, layout) + plan.spatial_core_shape + a.shape[-2:]
    return a.update(shape=shape, dtype=jnp.dtype(plan.dtype))


def _spectral_axis(params: dict) -> int:
    """Where the leading batch axis of coefficients sits: degree-major ones start with the degree."""
    return 1 if params["layout"] == "degree_major" else 0


analysis_p = linear_primitive(
    "sphcnn_analysis",
    abstract_eval=_analysis_abstract,
    batch_axes=lambda params: (0, _spectral_axis(params)),
    lowerings={p: lowering.rule("analysis", p) for p in PLATFORMS + (None,)},
)
synthesis_p = linear_primitive(
    "sphcnn_synthesis",
    abstract_eval=_synthesis_abstract,
    batch_axes=lambda params: (_spectral_axis(params), 0),
    lowerings={p: lowering.rule("synthesis", p) for p in PLATFORMS + (None,)},
)
transposes(analysis_p, synthesis_p)
