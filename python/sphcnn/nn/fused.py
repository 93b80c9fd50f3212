"""Fused block boundary: a block's magnitude nonlinearity and the next block's
spatial pooling done inside the next block's forward transform.

activated_forward(transform, y, bias, leaky_spin, pool) equals

    transform.forward(spatial_pool?(activation(y, bias, leaky_spin)))

(sphcnn.nn.nonlinearities.activation, sphcnn.nn.pooling.spatial_pool), y
(batch..., p n, p n, S, C) complex64 with p = 2 when pooling, n = transform.n.
On CPUs and CUDA GPUs with the ffi backend it is one custom call,
sphcnn_activated_analysis, whose ring DFT reads the pre-activation maps and
applies the nonlinearity and the pooling to each ring as it loads it
(csrc/include/sphcnn/activation.h; on CUDA the prologue of the ring DFT,
csrc/cuda/ring_dft.h): the activated and pooled maps are never written.
Everywhere else (other platforms, other backends) it lowers to the composition
above, the reference.

The gradient is written out and fused the same way: the transposed forward
transform (a synthesis), the transposed pooling and the nonlinearity's gradient
(nonlinearities.activation_cotangents) are one custom call on CPUs and CUDA
GPUs, sphcnn_activated_gradient. On CPUs it differentiates each ring of the
synthesis while it is in cache (with pooling: after unpooling it from the
pooled maps' cotangent); on CUDA the ring DFT of the synthesis differentiates
each value as it stores it, or, with pooling, writes the pooled cotangent to
scratch for one kernel that unpools and differentiates; either way the bias
partials are then added in two fixed-order levels
(csrc/cuda/activation_gradient.h); elsewhere the composition. It keeps y and the bias only, as the unfused layers do.

affine_inverse (below) puts the spectral batch norm's apply into the inverse
transform that follows it, the same way; its gradient, the transposed
synthesis, takes the batch norm's gradient of the affine map as the epilogue of
its Legendre stage on CUDA GPUs (sphcnn_affine_gradient,
csrc/cuda/affine_stage.h: the cotangent scaled by the factor as it is stored,
the factor's gradient as per-tile shares summed in a fixed order).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.interpreters import batching

import sphcnn_kernels as sk
from sphcnn.nn import nonlinearities, pooling
from sphcnn.nn.collectives import sum_like
from sphcnn.nn.kernel_primitives import kernel_primitive
from sphcnn_kernels.lowering import resolve_backend


def _reference(y, bias, *, transform, leaky_spin, pool):
    z = nonlinearities.activation(y, bias, leaky_spin)
    return transform.forward(pooling.spatial_pool(z) if pool else z)


def pooling_taps(transform, pool: bool) -> np.ndarray:
    """The (n, 4) ring taps of the pooling onto the transform's grid; empty without pooling."""
    return pooling.ring_taps(2 * transform.n) if pool else np.zeros((0,))


def activation_options(transform, leaky_spin, pool, platform: str) -> dict:
    """The kernels' parameters: the forward transform's (analysis, weighted, sign -1)
    and the nonlinearity's."""
    return dict(plan=transform.plan, sign=-1, weighted=True, layout=transform.layout, mode=transform.mode,
                platform=platform, leaky_spin=-1 if leaky_spin is None else leaky_spin, pool=pool,
                epsilon=nonlinearities.EPSILON, slope=nonlinearities.LEAKY_SLOPE)


def lowerings(direction: str, kernel, reference, platforms=("cpu", "cuda"), applies=None) -> dict:
    """The lowerings of a fused primitive: on `platforms` kernel(*operands,
    platform=..., **params) where the transform (params['transform']) runs on the
    ffi backend for `direction` and, when given, applies(*operands, **params) holds
    (a geometry the kernel takes), else the reference; on every other platform the
    reference."""
    def on(platform: str):
        def rule(*operands, transform, **params):
            if resolve_backend(transform.backend, platform, direction, transform.n) != "ffi" or (
                    applies is not None and not applies(*operands, transform=transform, **params)):
                return reference(*operands, transform=transform, **params)
            return kernel(*operands, transform=transform, platform=platform, **params)

        return rule

    return {**{platform: on(platform) for platform in platforms}, None: reference}


def _kernel(y, bias, *, transform, leaky_spin, pool, platform):
    from sphcnn_kernels.backends import ffi_backend

    return ffi_backend.activated_analysis(y, bias, pooling_taps(transform, pool),
                                          **activation_options(transform, leaky_spin, pool, platform))


def _abstract(y, bias, *, transform, leaky_spin, pool):
    # update() keeps y's type otherwise: inside shard_map, the mesh axes it varies over
    return y.update(shape=transform.spectral_shape(y.shape[:-4], y.shape[-1]), dtype=transform.dtype)


_activated_analysis_p = kernel_primitive(
    "sphcnn_activated_analysis", _abstract, lowerings("analysis", _kernel, _reference))


def _batch(args, dims, *, transform, leaky_spin, pool):
    y, bias = args
    y_dim, bias_dim = dims
    params = dict(transform=transform, leaky_spin=leaky_spin, pool=pool)
    if bias_dim is not None:
        return jax.vmap(functools.partial(_reference, **params), in_axes=(y_dim, bias_dim))(y, bias), 0
    out = _activated_analysis_p.bind(jnp.moveaxis(y, y_dim, 0), bias, **params)
    return out, 1 if transform.layout == "degree_major" else 0


batching.primitive_batchers[_activated_analysis_p] = _batch


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3, 4))
def _activated_forward(transform, y, bias, leaky_spin, pool):
    return _activated_analysis_p.bind(y, bias, transform=transform, leaky_spin=leaky_spin, pool=pool)


def _forward(transform, y, bias, leaky_spin, pool):
    return _activated_forward(transform, y, bias, leaky_spin, pool), (y, bias)


def _reference_gradient(ct, y, bias, *, transform, leaky_spin, pool):
    """(ct_y, ct_bias): the transposed forward transform, the transposed pooling,
    the nonlinearity's gradient; ct_bias summed over this device's data only."""
    # pullbacks of the linear maps at y (typed like y inside shard_map; the
    # unused forward values are dead code)
    pooled, pool_pullback = jax.vjp(pooling.spatial_pool, y) if pool else (y, None)
    _, transform_pullback = jax.vjp(transform.forward, pooled)
    (ct_maps,) = transform_pullback(ct)
    if pool:
        (ct_maps,) = pool_pullback(ct_maps)
    return nonlinearities.activation_cotangents(leaky_spin, y, bias, ct_maps)


def _gradient_kernel(ct, y, bias, *, transform, leaky_spin, pool, platform):
    from sphcnn_kernels.backends import ffi_backend

    ct_y, ct_bias = ffi_backend.activated_gradient(ct, y, bias, pooling_taps(transform, pool),
                                                   **activation_options(transform, leaky_spin, pool, platform))
    return ct_y, ct_bias.astype(bias.dtype)


def _gradient_abstract(ct, y, bias, **_):
    # the bias cotangent is a sum over this device's data: it varies as y does
    return y.update(), y.update(shape=bias.shape, dtype=bias.dtype)


_activated_gradient_p = kernel_primitive(
    "sphcnn_activated_gradient", _gradient_abstract, lowerings("synthesis", _gradient_kernel, _reference_gradient),
    multiple_results=True)


def _gradient_batch(args, dims, **params):
    """vmap of the gradient: the composition, mapped (the kernel sums the bias
    cotangent over every leading axis, and a mapped one must stay apart)."""
    rule = functools.partial(_reference_gradient, **params)
    return jax.vmap(rule, in_axes=dims)(*args), (0, 0)


batching.primitive_batchers[_activated_gradient_p] = _gradient_batch


def activated_gradient(ct: jax.Array, y: jax.Array, bias: jax.Array, transform: sk.SphericalTransform,
                       leaky_spin: int | None, pool: bool) -> tuple[jax.Array, jax.Array]:
    """(ct_y, ct_bias): the pullback of activated_forward at (y, bias) for the
    cotangent ct of its coefficients, ct_bias summed over this device's data
    only (one custom call where the forward is one)."""
    return _activated_gradient_p.bind(ct, y, bias, transform=transform, leaky_spin=leaky_spin, pool=pool)


def _backward(transform, leaky_spin, pool, residuals, ct):
    y, bias = residuals
    ct_y, ct_bias = activated_gradient(ct, y, bias, transform, leaky_spin, pool)
    return ct_y, sum_like(ct_bias, bias)


_activated_forward.defvjp(_forward, _backward)


def check_activated_input(name: str, transform: sk.SphericalTransform, y: jax.Array, bias: jax.Array,
                          leaky_spin: int | None, pool: bool, label: str = "y") -> None:
    """The arguments of activated_forward (the errors name `name`, and the maps
    argument `label`)."""
    p = 2 if pool else 1
    spins = len(transform.spins)
    if y.ndim < 5 or tuple(y.shape[-4:-1]) != (p * transform.n, p * transform.n, spins):
        raise ValueError(f"{name}: argument '{label}' has shape {tuple(y.shape)}; expected (batch..., {p * transform.n}, "
                         f"{p * transform.n}, {spins}, C) for a transform of n = {transform.n}"
                         + (" after pooling" if pool else ""))
    if y.dtype != transform.dtype:
        raise ValueError(f"{name}: argument '{label}' has dtype {y.dtype}; expected {transform.dtype.name}")
    if tuple(bias.shape) != (spins, y.shape[-1]):
        raise ValueError(f"{name}: argument 'bias' has shape {tuple(bias.shape)}; expected ({spins}, {y.shape[-1]})")
    if leaky_spin is not None and not 0 <= leaky_spin < spins:
        raise ValueError(f"{name}: argument 'leaky_spin' must be None or a spin index below {spins}, got {leaky_spin}")
    if pool and transform.n % 2:
        raise ValueError(f"{name}: pooling needs an even coarse grid, got n = {transform.n}")


def activated_forward(transform: sk.SphericalTransform, y: jax.Array, bias: jax.Array, leaky_spin: int | None,
                      pool: bool) -> jax.Array:
    """transform.forward(spatial_pool?(activation(y, bias, leaky_spin))), fused on CPUs
    (see the module docstring). y (batch..., p n, p n, S, C) complex64, p = 2 with
    pool; bias (S, C) float32 (its row leaky_spin unused); returns the coefficients
    in the transform's layout."""
    check_activated_input("activated_forward", transform, y, bias, leaky_spin, pool)
    return _activated_forward(transform, y, bias, leaky_spin, bool(pool))


# The batch norm's apply inside the synthesis that follows it.


def _degree_axis(transform) -> int:
    """The degree axis of the transform's coefficients with one leading batch axis."""
    return 0 if transform.layout == "degree_major" else 1


def _affine_reference(a, factor, offset, *, transform):
    from sphcnn.nn.batch_norm import scale_and_shift

    return transform.inverse(scale_and_shift(a, factor, offset, _degree_axis(transform)))


def _affine_kernel(a, factor, offset, *, transform, platform):
    from sphcnn_kernels.backends import ffi_backend

    return ffi_backend.affine_synthesis(a, factor, offset, plan=transform.plan, sign=1, weighted=False,
                                        layout=transform.layout, mode=transform.mode, platform=platform)


def _affine_abstract(a, factor, offset, *, transform):
    leading = transform.plan.spectral_batch(a.shape, transform.layout)
    return a.update(shape=leading + transform.plan.spatial_core_shape + a.shape[-2:], dtype=transform.dtype)


_affine_synthesis_p = kernel_primitive(
    "sphcnn_affine_synthesis", _affine_abstract, lowerings("synthesis", _affine_kernel, _affine_reference))


def _affine_batch(args, dims, *, transform):
    """vmap: a mapped coefficient array alone is one more batch axis; anything
    else maps the reference."""
    a, factor, offset = args
    a_dim, factor_dim, offset_dim = dims
    if factor_dim is None and offset_dim is None:
        into = 1 if transform.layout == "degree_major" else 0
        return _affine_synthesis_p.bind(jnp.moveaxis(a, a_dim, into), factor, offset, transform=transform), 0
    return jax.vmap(functools.partial(_affine_reference, transform=transform), in_axes=dims)(*args), 0


batching.primitive_batchers[_affine_synthesis_p] = _affine_batch


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _affine_inverse(transform, a, factor, offset):
    return _affine_synthesis_p.bind(a, factor, offset, transform=transform)


def _affine_forward(transform, a, factor, offset):
    return _affine_inverse(transform, a, factor, offset), (a, factor, offset)


def _affine_gradient_reference(ct, a, factor, *, transform):
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


def _affine_gradient_applies(ct, a, factor, *, transform):
    from sphcnn_kernels.backends import ffi_backend

    batch = int(np.prod(ct.shape[:-4]))
    return ffi_backend.affine_gradient_scratch(transform.plan, transform.mode, batch, ct.shape[-1]) is not None


def _affine_gradient_kernel(ct, a, factor, *, transform, platform):
    from sphcnn_kernels.backends import ffi_backend

    return ffi_backend.affine_gradient(ct, a, factor, plan=transform.plan, sign=-1, weighted=False,
                                       layout=transform.layout, mode=transform.mode, platform=platform)


def _affine_gradient_abstract(ct, a, factor, *, transform):
    moments = ct.update(shape=ct.shape[:-4] + ct.shape[-2:], dtype=a.dtype)
    return a.update(), moments, moments


_affine_gradient_p = kernel_primitive(
    "sphcnn_affine_gradient", _affine_gradient_abstract,
    lowerings("analysis", _affine_gradient_kernel, _affine_gradient_reference, platforms=("cuda",),
              applies=_affine_gradient_applies),
    multiple_results=True)


def _affine_gradient_batch(args, dims, *, transform):
    """vmap: the composition, mapped."""
    rule = functools.partial(_affine_gradient_reference, transform=transform)
    return jax.vmap(rule, in_axes=dims)(*args), (0, 0, 0)


batching.primitive_batchers[_affine_gradient_p] = _affine_gradient_batch


def _affine_backward(transform, residuals, ct):
    """The transposed synthesis (an analysis) with the batch norm's gradient of
    the affine map as its epilogue: on CUDA GPUs one custom call,
    sphcnn_affine_gradient (the Legendre stage scales each cotangent coefficient as it stores it
    and adds its share of the factor's gradient), elsewhere the composition."""
    a, factor, offset = residuals
    ct_a, products, constant = _affine_gradient_p.bind(ct, a, factor, transform=transform)
    batch_axes = tuple(range(products.ndim - 2))
    ct_factor = jnp.sum(products, axis=batch_axes)
    ct_offset = math.sqrt(4 * math.pi) * jnp.sum(constant, axis=batch_axes)
    return ct_a, sum_like(ct_factor, factor), sum_like(ct_offset, offset)


_affine_inverse.defvjp(_affine_forward, _affine_backward)


def affine_inverse(transform: sk.SphericalTransform, a: jax.Array, factor: jax.Array,
                   offset: jax.Array) -> jax.Array:
    """transform.inverse(a * factor + sqrt(4 pi) offset at a_00), the spectral batch
    norm's apply (sphcnn.nn.batch_norm.scale_and_shift) inside the synthesis: one
    custom call on CPUs and CUDA GPUs with the ffi backend, sphcnn_affine_synthesis
    (the factor scales the order rings of each (spin, channel) as they are turned
    into maps, the offset enters the m = 0 ring of spin 0), the composition
    elsewhere. a: coefficients in the transform's layout and dtype; factor, offset
    (S, C) complex. The gradient is the transposed synthesis and the batch norm's
    written-out gradient of the affine map, as unfused."""
    name = "affine_inverse"
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
    return _affine_inverse(transform, a, factor.astype(a.dtype), offset.astype(a.dtype))
