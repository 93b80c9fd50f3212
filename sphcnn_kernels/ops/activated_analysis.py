"""sphcnn_activated_analysis: a block's magnitude nonlinearity and the next
block's spatial pooling inside the next block's forward transform.

activated_analysis(transform, y, activation, pool) equals

    transform.forward(spatial_pool?(activation(y)))

(:class:`~sphcnn_kernels.ops.magnitude.Activation`,
:func:`~sphcnn_kernels.ops.pooling.spatial_pool`), y (batch..., p n, p n, S, C)
complex with p = 2 when pooling, n = transform.n. Where the transform runs on
the ffi backend (CPUs, CUDA GPUs) it is one custom call whose ring DFT reads
the pre-activation maps and applies the nonlinearity and the pooling to each
ring as it loads it (csrc/include/sphcnn/activation.h; on CUDA the prologue of
the ring DFT, csrc/cuda/ring_dft.h): the activated and pooled maps are never
written. Elsewhere it is the composition above, the reference.

The VJP is fused the same way, sphcnn_activated_gradient: the transposed
forward transform (a synthesis), the transposed pooling and the nonlinearity's
gradient (magnitude.activation_cotangents) in one custom call. On CPUs it
differentiates each ring of the synthesis while it is in cache (with pooling:
after unpooling it from the pooled maps' cotangent); on CUDA the ring DFT of
the synthesis differentiates each value as it stores it, or, with pooling,
writes the pooled cotangent to scratch for one kernel that unpools and
differentiates; either way the bias partials are then added in two fixed-order
levels (csrc/cuda/activation_gradient.h). It keeps y and the bias only.

Operands: y, bias (S, C) real (its row leaky_spin unused). Parameters:
transform (a :class:`sphcnn_kernels.SphericalTransform`), leaky_spin (int or
None), pool (bool).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.backends import ffi_backend
from sphcnn_kernels.ops.device_varying import sum_like
from sphcnn_kernels.ops.magnitude import EPSILON, LEAKY_SLOPE, Activation, activation, activation_cotangents
from sphcnn_kernels.ops.pooling import ring_taps, spatial_pool
from sphcnn_kernels.ops.spec import PRIMITIVES, Op, Target, register, transform_setting


def pooling_taps(transform, pool: bool) -> np.ndarray:
    """The (n, 4) ring taps of the pooling onto the transform's grid; empty without pooling."""
    return ring_taps(2 * transform.n) if pool else np.zeros((0,))


def activated_call(target: str, leading: tuple, trailing: tuple, results: tuple, *, transform, bias,
                   leaky_spin: int | None, pool: bool, platform: str, scratch: Callable[[object, str], int],
                   **attributes) -> list[jax.Array]:
    """One call of a fused target whose ring DFT carries the nonlinearity (and the
    pooling) of sphcnn/activation.h, or its gradient, with the forward
    transform's parameters (analysis, weighted, sign -1).

    Args:
        target: the FFI target.
        leading: the operands before the activation's (bias, taps).
        trailing: the operands after them, before ring_scale and the table.
        results: the results before the scratch (ShapeDtypeStructs).
        transform: the forward transform (a :class:`sphcnn_kernels.SphericalTransform`).
        bias: (S, C), the nonlinearity's bias (empty without one).
        leaky_spin: the spin index of the leaky ReLU, or None.
        pool: whether the maps are pooled onto the transform's grid.
        platform: 'cpu' or 'cuda'.
        scratch: fn(the platform's module, the lambda source) -> the scratch bytes.
        attributes: the target's further attributes.

    Returns:
        The results without the scratch.
    """
    plan = transform.plan
    module = ffi_backend.extension(platform)
    source = ffi_backend.lambda_source(plan, transform.mode, platform)
    extra, activation_attributes = ffi_backend.activation_attributes(
        plan, bias, pooling_taps(transform, pool), -1 if leaky_spin is None else leaky_spin, pool, EPSILON,
        LEAKY_SLOPE)
    return ffi_backend.contract_call(target, (*leading, *extra, *trailing), results, scratch(module, source),
                                     plan=plan, sign=-1, weighted=True, layout=transform.layout, source=source,
                                     **activation_attributes, **attributes)


def _reference(y, bias, *, transform, leaky_spin, pool):
    z = activation(y, bias, leaky_spin)
    return transform.forward(spatial_pool(z) if pool else z)


def _kernel(y, bias, *, transform, leaky_spin, pool, platform):
    plan = transform.plan
    out_shape = plan.spectral_shape(y.shape[:-4], *y.shape[-2:], transform.layout)

    def scratch(module, source):
        return ffi_backend.scratch_bytes(module, plan, source, int(np.prod(y.shape[:-4])), y.shape[-1], True)

    (out,) = activated_call("sphcnn_activated_analysis", (y,), (), (jax.ShapeDtypeStruct(out_shape, plan.dtype),),
                            transform=transform, bias=bias, leaky_spin=leaky_spin, pool=pool, platform=platform,
                            scratch=scratch)
    return out


def _abstract(y, bias, *, transform, leaky_spin, pool):
    # update() keeps y's type otherwise: inside shard_map, the mesh axes it varies over
    return y.update(shape=transform.spectral_shape(y.shape[:-4], y.shape[-1]), dtype=transform.dtype)


def _batch(primitive, args, dims, *, transform, leaky_spin, pool):
    """vmap: a mapped y alone is one more batch axis; a mapped bias maps the reference."""
    y, bias = args
    y_dim, bias_dim = dims
    params = dict(transform=transform, leaky_spin=leaky_spin, pool=pool)
    if bias_dim is not None:
        return jax.vmap(functools.partial(_reference, **params), in_axes=(y_dim, bias_dim))(y, bias), 0
    out = primitive.bind(jnp.moveaxis(y, y_dim, 0), bias, **params)
    return out, 1 if transform.layout == "degree_major" else 0


def gradient_reference(ct, y, bias, *, transform, leaky_spin, pool):
    """(ct_y, ct_bias): the transposed forward transform, the transposed pooling,
    the nonlinearity's gradient; ct_bias summed over this device's data only."""
    # pullbacks of the linear maps at y (typed like y inside shard_map; the
    # unused forward values are dead code)
    pooled, pool_pullback = jax.vjp(spatial_pool, y) if pool else (y, None)
    _, transform_pullback = jax.vjp(transform.forward, pooled)
    (ct_maps,) = transform_pullback(ct)
    if pool:
        (ct_maps,) = pool_pullback(ct_maps)
    return activation_cotangents(leaky_spin, y, bias, ct_maps)


def _gradient_kernel(ct, y, bias, *, transform, leaky_spin, pool, platform):
    plan = transform.plan

    def scratch(module, source):
        return module.activated_gradient_scratch_bytes(plan.n, plan.ell_max, len(plan.spins),
                                                       int(np.prod(y.shape[:-4])), y.shape[-1],
                                                       plan.real_dtype == np.float64,
                                                       ffi_backend.LAMBDA_SOURCES[source], pool)

    results = (jax.ShapeDtypeStruct(y.shape, y.dtype), jax.ShapeDtypeStruct(bias.shape, plan.real_dtype))
    ct_y, ct_bias = activated_call("sphcnn_activated_gradient", (ct, y), (), results, transform=transform, bias=bias,
                                   leaky_spin=leaky_spin, pool=pool, platform=platform, scratch=scratch)
    return ct_y, ct_bias.astype(bias.dtype)


def _gradient_abstract(ct, y, bias, **_):
    # the bias cotangent is a sum over this device's data: it varies as y does
    return y.update(), y.update(shape=bias.shape, dtype=bias.dtype)


GRADIENT = Op(
    name="sphcnn_activated_gradient",
    abstract_eval=_gradient_abstract,
    reference=gradient_reference,
    targets={platform: Target("sphcnn_activated_gradient", _gradient_kernel) for platform in ("cpu", "cuda")},
    direction="synthesis",
    setting=transform_setting,
    multiple_results=True,
)
register(GRADIENT)


def activated_gradient(ct: jax.Array, y: jax.Array, bias: jax.Array, transform, leaky_spin: int | None,
                       pool: bool) -> tuple[jax.Array, jax.Array]:
    """The pullback of the activated analysis at (y, bias).

    Args:
        ct: the cotangent of its coefficients, in the transform's layout.
        y: its maps (batch..., p n, p n, S, C).
        bias: (S, C) real.
        transform: its transform.
        leaky_spin: its leaky spin index, or None.
        pool: whether it pools.

    Returns:
        (ct_y, ct_bias): ct_bias summed over this device's data only (one custom
        call where the analysis is one).
    """
    return PRIMITIVES[GRADIENT.name].bind(ct, y, bias, transform=transform, leaky_spin=leaky_spin, pool=pool)


def _forward(bind, y, bias, **params):
    return bind(y, bias, **params), (y, bias)


def _backward(residuals, ct, *, transform, leaky_spin, pool):
    y, bias = residuals
    ct_y, ct_bias = activated_gradient(ct, y, bias, transform, leaky_spin, pool)
    return ct_y, sum_like(ct_bias, bias)


OP = Op(
    name="sphcnn_activated_analysis",
    abstract_eval=_abstract,
    reference=_reference,
    targets={platform: Target("sphcnn_activated_analysis", _kernel) for platform in ("cpu", "cuda")},
    direction="analysis",
    setting=transform_setting,
    batch=_batch,
    vjp=(_forward, _backward),
)
_activated = register(OP)


def check_input(name: str, transform, y: jax.Array, activation_in: Activation | None, pool: bool,
                label: str = "y") -> None:
    """Checks the maps and the incoming activation of an activated analysis.

    Args:
        name: the function the errors name.
        transform: the analysis's transform.
        y: the maps.
        activation_in: the activation to apply first, or None.
        pool: whether the maps are pooled (after the activation).
        label: the maps argument's name in the errors.

    Raises:
        ValueError: naming the argument, its value and what was expected.
    """
    p = 2 if pool else 1
    spins = len(transform.spins)
    if y.ndim < 5 or tuple(y.shape[-4:-1]) != (p * transform.n, p * transform.n, spins):
        raise ValueError(f"{name}: argument '{label}' has shape {tuple(y.shape)}; expected (batch..., {p * transform.n}, "
                         f"{p * transform.n}, {spins}, C) for a transform of n = {transform.n}"
                         + (" after pooling" if pool else ""))
    if pool and transform.n % 2:
        raise ValueError(f"{name}: pooling needs an even coarse grid, got n = {transform.n}")
    if activation_in is None:
        return
    if y.dtype != transform.dtype:
        raise ValueError(f"{name}: argument '{label}' has dtype {y.dtype}; expected {transform.dtype.name}")
    bias, leaky_spin = activation_in.bias, activation_in.leaky_spin
    if tuple(bias.shape) != (spins, y.shape[-1]):
        raise ValueError(f"{name}: argument 'activation' has a bias of shape {tuple(bias.shape)}; expected "
                         f"({spins}, {y.shape[-1]})")
    if leaky_spin is not None and not 0 <= leaky_spin < spins:
        raise ValueError(f"{name}: argument 'activation' has leaky_spin {leaky_spin}; expected None or a spin index "
                         f"below {spins}")


def activated_analysis(transform, y: jax.Array, activation_in: Activation | None = None,
                       pool: bool = False) -> jax.Array:
    """transform.forward(spatial_pool?(activation_in(y))), fused where the
    transform runs on the ffi backend (see the module docstring).

    Args:
        transform: a :class:`sphcnn_kernels.SphericalTransform` of grid n.
        y: maps (batch..., p n, p n, S, C), p = 2 with pool: in the transform's
            dtype with an activation, else what transform.forward takes.
        activation_in: the magnitude nonlinearity to apply first, or None.
        pool: pool the (activated) maps onto the n grid first.

    Returns:
        The coefficients in the transform's layout and dtype.

    Raises:
        ValueError: y or the activation does not fit the transform.
    """
    check_input("activated_analysis", transform, y, activation_in, pool)
    if activation_in is None:
        return transform.forward(spatial_pool(y) if pool else y)
    return _activated(y, activation_in.bias, transform=transform, leaky_spin=activation_in.leaky_spin,
                      pool=bool(pool))
