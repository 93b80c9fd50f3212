"""The two linear primitives every transform is made of.

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
the gradients. Being linear primitives with transpose, batching and per-backend
lowering rules, they work under jit, vmap, grad, jvp and any composition.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from sphcnn_kernels.backends import implementation
from sphcnn_kernels.plan import Plan

analysis_p = Primitive("sphcnn_analysis")
synthesis_p = Primitive("sphcnn_synthesis")


def analysis(x: jax.Array, plan: Plan, sign: int, weighted: bool) -> jax.Array:
    """Bind the analysis primitive; x must already have the plan's dtype and shape."""
    return analysis_p.bind(x, plan=plan, sign=sign, weighted=weighted)


def synthesis(a: jax.Array, plan: Plan, sign: int, weighted: bool) -> jax.Array:
    """Bind the synthesis primitive; a must already have the plan's dtype and shape."""
    return synthesis_p.bind(a, plan=plan, sign=sign, weighted=weighted)


def _analysis_abstract(x, *, plan, sign, weighted):
    del sign, weighted
    return x.update(shape=plan.spectral_shape(x.shape[:-4], *x.shape[-2:]))


def _synthesis_abstract(a, *, plan, sign, weighted):
    del sign, weighted
    return a.update(shape=plan.spectral_batch(a.shape) + plan.spatial_core_shape + a.shape[-2:])


def _batch_axis(plan: Plan, spectral: bool) -> int:
    """Where the leading batch axis sits: spatial arrays and batch-major
    coefficients start with it, degree-major coefficients with the degree."""
    return 1 if spectral and plan.layout == "degree_major" else 0


def _transpose_to(other):
    def rule(cotangent, operand, *, plan, sign, weighted):
        assert ad.is_undefined_primal(operand)
        if type(cotangent) is ad.Zero:
            return [ad.Zero(operand.aval)]
        return [other.bind(cotangent, plan=plan, sign=sign, weighted=weighted)]

    return rule


def _batching_rule(primitive, spectral_in: bool):
    def rule(args, dims, *, plan, sign, weighted):
        (operand,), (dim,) = args, dims
        operand = jax.numpy.moveaxis(operand, dim, _batch_axis(plan, spectral_in))
        out = primitive.bind(operand, plan=plan, sign=sign, weighted=weighted)
        return out, _batch_axis(plan, not spectral_in)

    return rule


def _lowering(direction):
    def rule(ctx, operand, *, plan, sign, weighted):
        platform = ctx.module_context.platforms[0]
        module = implementation(plan.backend, platform)
        impl = getattr(module, direction)
        native = plan.layout == "batch_major" or platform in getattr(module, "DEGREE_MAJOR_PLATFORMS", ())
        inner = plan if native else dataclasses.replace(plan, layout="batch_major")

        def fn(value):
            # Backends without a native degree-major layout get batch-major
            # coefficients, moved into place around them.
            if not native and direction == "synthesis":
                value = jax.numpy.moveaxis(value, 0, -4)
            out = impl(value, plan=inner, sign=sign, weighted=weighted, platform=platform)
            if not native and direction == "analysis":
                out = jax.numpy.moveaxis(out, -4, 0)
            return out

        return mlir.lower_fun(fn, multiple_results=False)(ctx, operand)

    return rule


@functools.lru_cache(maxsize=None)
def _compiled(primitive, plan, sign, weighted):
    return jax.jit(lambda v: primitive.bind(v, plan=plan, sign=sign, weighted=weighted))


def _eager(primitive):
    def impl(operand, *, plan, sign, weighted):
        return _compiled(primitive, plan, sign, weighted)(operand)

    return impl


for _prim, _other, _direction, _abstract in (
    (analysis_p, synthesis_p, "analysis", _analysis_abstract),
    (synthesis_p, analysis_p, "synthesis", _synthesis_abstract),
):
    _prim.def_impl(_eager(_prim))
    _prim.def_abstract_eval(_abstract)
    ad.deflinear2(_prim, _transpose_to(_other))
    batching.primitive_batchers[_prim] = _batching_rule(_prim, spectral_in=_prim is synthesis_p)
    mlir.register_lowering(_prim, _lowering(_direction))
