"""sphcnn_affine_synthesis: a spectral batch norm's apply inside the inverse
transform that follows it.

affine_synthesis(transform, a, factor, offset) equals

    transform.inverse(scale_and_shift(a, factor, offset))

with scale_and_shift(a) = a * factor + sqrt(4 pi) offset at a_00, factor and
offset (S, C) complex. Where the transform runs on the ffi backend (CPUs, CUDA
GPUs) it is one custom call: the synthesis is linear and the factor one number
per (spin, channel), so the factor scales the order rings of each (spin,
channel) as they are turned into maps and the offset enters the m = 0 ring of
spin 0. Elsewhere it is the composition, the reference.

The VJP is the transposed synthesis (an analysis) with the batch norm's
gradient of the affine map as its epilogue: on CUDA GPUs one custom call,
sphcnn_affine_gradient (the Legendre stage scales each cotangent coefficient
as it stores it and adds its share of the factor's gradient as per-tile sums
in a fixed order, csrc/cuda/affine_stage.h); elsewhere the composition.

Operands: a (coefficients in the transform's layout and dtype), factor,
offset. Parameter: transform.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.backends import ffi_backend
from sphcnn_kernels.ops.device_varying import sum_like
from sphcnn_kernels.ops.placement import constant_coefficient
from sphcnn_kernels.ops.spec import PRIMITIVES, Op, Target, register, transform_setting


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def scale_and_shift(a: jax.Array, factor: jax.Array, offset: jax.Array, degree_axis: int) -> jax.Array:
    """a * factor + offset as a constant function: a_00 += sqrt(4 pi) offset, for
    coefficients a (degree axis `degree_axis`, orders on axis -3) and factor,
    offset (S, C). Backward written out: ct_a = ct factor (elementwise),
    ct_factor = sum of ct a (one reduction), ct_offset = sqrt(4 pi) times the sum
    of ct at a_00 (a slice), where automatic differentiation would reduce the
    whole of ct times the a_00 mask for the offset."""
    constant = constant_coefficient(a.shape[degree_axis] - 1, None, a.shape[-2], a.ndim, degree_axis,
                                    a.real.dtype)
    return a * factor + constant * offset


def _scale_and_shift_forward(a, factor, offset, degree_axis):
    return scale_and_shift(a, factor, offset, degree_axis), (a, factor, offset)


def _scale_and_shift_backward(degree_axis, residuals, ct):
    a, factor, offset = residuals
    ell_max = a.shape[degree_axis] - 1
    at_constant = jax.lax.index_in_dim(jax.lax.index_in_dim(ct, 0, degree_axis, keepdims=False), ell_max, 1,
                                       keepdims=False)
    ct_offset = math.sqrt(4 * math.pi) * jnp.sum(at_constant, axis=0)
    ct_factor = jnp.sum(ct * a, axis=tuple(range(a.ndim - 2)))
    return ct * factor, sum_like(ct_factor, factor), sum_like(ct_offset.astype(ct_factor.dtype), offset)


scale_and_shift.defvjp(_scale_and_shift_forward, _scale_and_shift_backward)


def _degree_axis(transform) -> int:
    """The degree axis of the transform's coefficients with one leading batch axis."""
    return 0 if transform.layout == "degree_major" else 1


def _reference(a, factor, offset, *, transform):
    return transform.inverse(scale_and_shift(a, factor, offset, _degree_axis(transform)))


def _kernel(a, factor, offset, *, transform, platform):
    plan = transform.plan
    module = ffi_backend.extension(platform)
    source = ffi_backend.lambda_source(plan, transform.mode, platform)
    leading = plan.spectral_batch(a.shape, transform.layout)
    scratch = ffi_backend.scratch_bytes(module, plan, source, int(np.prod(leading)), a.shape[-1], False)
    result = jax.ShapeDtypeStruct(leading + plan.spatial_core_shape + a.shape[-2:], plan.dtype)
    (out,) = ffi_backend.contract_call("sphcnn_affine_synthesis",
                                       (a, factor.astype(plan.dtype), offset.astype(plan.dtype)), (result,), scratch,
                                       plan=plan, sign=1, weighted=False, layout=transform.layout, source=source)
    return out


def _abstract(a, factor, offset, *, transform):
    leading = transform.plan.spectral_batch(a.shape, transform.layout)
    return a.update(shape=leading + transform.plan.spatial_core_shape + a.shape[-2:], dtype=transform.dtype)


def _batch(primitive, args, dims, *, transform):
    """vmap: a mapped coefficient array alone is one more batch axis; anything
    else maps the reference."""
    a, factor, offset = args
    a_dim, factor_dim, offset_dim = dims
    if factor_dim is None and offset_dim is None:
        into = 1 if transform.layout == "degree_major" else 0
        return primitive.bind(jnp.moveaxis(a, a_dim, into), factor, offset, transform=transform), 0
    return jax.vmap(functools.partial(_reference, transform=transform), in_axes=dims)(*args), 0


def _gradient_reference(ct, a, factor, *, transform):
    """(ct_a, products, constant): the transposed synthesis u of ct (typed like a
    inside shard_map; the pullback's unused forward is dead code), factor u, and
    per example the sums over (l, m) of u a and u at a_00."""
    _, pullback = jax.vjp(transform.inverse, a)
    (u,) = pullback(ct)
    degree_axis = 0 if transform.layout == "degree_major" else u.ndim - 4
    order_axis = u.ndim - 3
    constant = jax.lax.index_in_dim(u, 0, degree_axis, keepdims=False)
    constant = jax.lax.index_in_dim(constant, (u.shape[order_axis] - 1) // 2, order_axis - 1, keepdims=False)
    return u * factor, jnp.sum(u * a, axis=(degree_axis, order_axis)), constant


def gradient_scratch(transform, batch: int, channels: int) -> int | None:
    """Bytes of the scratch result of sphcnn_affine_gradient (CUDA), or None where
    the target does not apply (lambda on the fly)."""
    plan = transform.plan
    module = ffi_backend.extension("cuda")
    source = ffi_backend.lambda_source(plan, transform.mode, "cuda")
    return module.affine_gradient_scratch_bytes(plan.n, plan.ell_max, len(plan.spins), batch, channels,
                                                plan.real_dtype == np.float64, ffi_backend.LAMBDA_SOURCES[source])


def _gradient_applies(ct, a, factor, *, transform):
    return gradient_scratch(transform, int(np.prod(ct.shape[:-4])), ct.shape[-1]) is not None


def _gradient_kernel(ct, a, factor, *, transform, platform):
    """(ct_a, products, constant) in one call: u the analysis of the maps'
    cotangent ct (sign -1, unweighted: the affine synthesis's transpose), ct_a =
    factor u, products = sum over (l, m) of u a and constant = u at l = 0, m = 0,
    both (batch..., S, C)."""
    plan = transform.plan
    ffi_backend.extension(platform)
    batch_shape = ct.shape[:-4]
    source = ffi_backend.lambda_source(plan, transform.mode, platform)
    scratch = gradient_scratch(transform, int(np.prod(batch_shape)), ct.shape[-1])
    moments = jax.ShapeDtypeStruct(batch_shape + ct.shape[-2:], plan.dtype)
    results = (jax.ShapeDtypeStruct(a.shape, plan.dtype), moments, moments)
    ct_a, products, constant = ffi_backend.contract_call("sphcnn_affine_gradient", (ct, a, factor.astype(plan.dtype)),
                                                         results, scratch, plan=plan, sign=-1, weighted=False,
                                                         layout=transform.layout, source=source)
    return ct_a, products, constant


def _gradient_abstract(ct, a, factor, *, transform):
    moments = ct.update(shape=ct.shape[:-4] + ct.shape[-2:], dtype=a.dtype)
    return a.update(), moments, moments


GRADIENT = Op(
    name="sphcnn_affine_gradient",
    abstract_eval=_gradient_abstract,
    reference=_gradient_reference,
    targets={"cuda": Target("sphcnn_affine_gradient", _gradient_kernel, applies=_gradient_applies)},
    direction="analysis",
    setting=transform_setting,
    multiple_results=True,
)
register(GRADIENT)


def _forward(bind, a, factor, offset, **params):
    return bind(a, factor, offset, **params), (a, factor, offset)


def _backward(residuals, ct, *, transform):
    a, factor, offset = residuals
    ct_a, products, constant = PRIMITIVES[GRADIENT.name].bind(ct, a, factor, transform=transform)
    batch_axes = tuple(range(products.ndim - 2))
    ct_factor = jnp.sum(products, axis=batch_axes)
    ct_offset = math.sqrt(4 * math.pi) * jnp.sum(constant, axis=batch_axes)
    return ct_a, sum_like(ct_factor, factor), sum_like(ct_offset, offset)


OP = Op(
    name="sphcnn_affine_synthesis",
    abstract_eval=_abstract,
    reference=_reference,
    targets={platform: Target("sphcnn_affine_synthesis", _kernel) for platform in ("cpu", "cuda")},
    direction="synthesis",
    setting=transform_setting,
    batch=_batch,
    vjp=(_forward, _backward),
)
_affine = register(OP)


def affine_synthesis(transform, a: jax.Array, factor: jax.Array, offset: jax.Array) -> jax.Array:
    """transform.inverse(a * factor + sqrt(4 pi) offset at a_00), fused where the
    transform runs on the ffi backend (see the module docstring).

    Args:
        transform: a :class:`sphcnn_kernels.SphericalTransform`.
        a: coefficients in the transform's layout and dtype.
        factor: (S, C) complex.
        offset: (S, C) complex.

    Returns:
        The maps (batch..., n, n, S, C) in the transform's dtype.

    Raises:
        ValueError: an argument does not fit the transform.
    """
    name = "affine_synthesis"
    degrees, orders = transform.plan.spectral_core_shape
    degree_axis = _degree_axis(transform) if transform.layout == "degree_major" else a.ndim - 4
    if a.ndim < 4 or a.shape[degree_axis] != degrees or tuple(a.shape[-3:-1]) != (orders, len(transform.spins)):
        raise ValueError(f"{name}: argument 'a' has shape {tuple(a.shape)}; expected {transform.layout} "
                         f"coefficients with {degrees} degrees, {orders} orders and {len(transform.spins)} spins")
    shape = (len(transform.spins), a.shape[-1])
    for label, value in (("factor", factor), ("offset", offset)):
        if tuple(value.shape) != shape:
            raise ValueError(f"{name}: argument '{label}' has shape {tuple(value.shape)}; expected {shape}")
    if a.dtype != transform.dtype:
        raise ValueError(f"{name}: argument 'a' has dtype {a.dtype}; expected {transform.dtype.name}")
    return _affine(a, factor.astype(a.dtype), offset.astype(a.dtype), transform=transform)
