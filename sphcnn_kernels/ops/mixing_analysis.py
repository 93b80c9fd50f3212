"""sphcnn_mixing_analysis: a convolution's mixing and the batch norm's partial
sums as the epilogue of the forward transform's Legendre stage.

mixing_analysis(transform, x, filters, activation, pool) returns
(b, (b_00, energy)):

    a      = activated_analysis(transform, x, activation, pool)
    b      = mixing(a, filters)                 (L, batch..., 2L - 1, S_out, C_out), degree-major
    energy = sum over (l, m) of |b|^2           (batch..., S_out, C_out)

energy is the second moment of the spectral batch norm's statistics (times
4 pi): the batch norm that follows takes it instead of reading b again. On
CUDA GPUs with the ffi backend and the lambda table it is one custom call: the
ring DFT of the analysis (with the activation prologue), then the Legendre
stage ending with the mixing and the energy shares of its tile
(csrc/cuda/mixing_stage.h), then a fixed-order sum of the shares. On CPUs
(whose mixing kernel already skips |m| > l), with the other backends and
platforms it is the composition above, the reference.

The VJP is written out the same way: the moments' cotangents join b's
(2 ct_energy conj(b), and ct_constant at b_00: one elementwise expression),
the weight gradient comes from the kept a (the mixing's weight-gradient
kernel on CPUs, a matmul elsewhere; the custom call writes a for it), and the
transposed mixing and the transposed activated analysis are one custom call
on CUDA GPUs, sphcnn_mixing_gradient: the Legendre stage of the synthesis
starts with the transposed mixing of its tile, the ring DFT differentiates
the activation as it stores (csrc/cuda/mixing_stage.h, activation_gradient.h).
Elsewhere: the transposed mixing, then the activated gradient.

Operands: x, bias (S, C) real (zeros without an activation), filters (L, S,
S_out, C, C_out). Parameters: transform (degree-major), leaky_spin, pool,
activate (whether the activation applies).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from sphcnn_kernels.backends import ffi_backend
from sphcnn_kernels.ops.activated_analysis import (activated_analysis, activated_call, activated_gradient,
                                                   check_input)
from sphcnn_kernels.ops.device_varying import sum_like
from sphcnn_kernels.ops.magnitude import Activation
from sphcnn_kernels.ops.mixing import mixing
from sphcnn_kernels.ops.pooling import spatial_pool
from sphcnn_kernels.ops.placement import constant_coefficient
from sphcnn_kernels.ops.spec import PRIMITIVES, Op, Target, register, transform_setting


def _activation(bias, leaky_spin, activate) -> Activation | None:
    return Activation(bias, leaky_spin) if activate else None


def _energy(b):
    """sum over degrees (axis 0) and orders (axis -3) of |b|^2."""
    return jnp.sum(jnp.real(b * jnp.conj(b)), axis=(0, b.ndim - 3))


def _reference(x, bias, filters, *, transform, leaky_spin, pool, activate):
    a = activated_analysis(transform, x, _activation(bias, leaky_spin, activate), pool)
    b = mixing(a, filters, transform.backend, transform.n)
    return b, a, _energy(b)


def analysis_scratch(transform, batch: int, channels: int, out_spins: int, out_channels: int) -> int | None:
    """Bytes of the scratch result of sphcnn_mixing_analysis (CUDA) for this
    geometry, or None where the target does not apply (lambda on the fly, more
    spins than one launch of the Legendre stage takes)."""
    plan = transform.plan
    module = ffi_backend.extension("cuda")
    source = ffi_backend.lambda_source(plan, transform.mode, "cuda")
    return module.mixing_analysis_scratch_bytes(plan.n, plan.ell_max, len(plan.spins), batch, channels, out_spins,
                                                out_channels, plan.real_dtype == np.float64,
                                                ffi_backend.LAMBDA_SOURCES[source])


def _applies(x, bias, filters, *, transform, **_) -> bool:
    return analysis_scratch(transform, int(np.prod(x.shape[:-4])), x.shape[-1], filters.shape[2],
                            filters.shape[4]) is not None


def _kernel(x, bias, filters, *, transform, leaky_spin, pool, activate, platform):
    """(b, a, energy) in one call of sphcnn_mixing_analysis (CUDA)."""
    plan = transform.plan
    batch_shape = x.shape[:-4]
    out_spins, out_channels = filters.shape[2], filters.shape[4]
    a_shape = plan.spectral_shape(batch_shape, *x.shape[-2:], transform.layout)
    results = (jax.ShapeDtypeStruct(a_shape[:-2] + (out_spins, out_channels), plan.dtype),
               jax.ShapeDtypeStruct(a_shape, plan.dtype),
               jax.ShapeDtypeStruct(batch_shape + (out_spins, out_channels), plan.real_dtype))
    b, a, energy = activated_call(
        "sphcnn_mixing_analysis", (x,), (filters.astype(plan.dtype),), results, transform=transform,
        bias=bias if activate else jnp.zeros((0,), transform.real_dtype), leaky_spin=leaky_spin, pool=pool,
        platform=platform, activate=bool(activate),
        scratch=lambda module, source: analysis_scratch(transform, int(np.prod(batch_shape)), x.shape[-1],
                                                        out_spins, out_channels))
    return b, a, energy


def _abstract(x, bias, filters, *, transform, leaky_spin, pool, activate):
    batch = x.shape[:-4]
    widths = (filters.shape[2], filters.shape[4])
    a = transform.spectral_shape(batch, x.shape[-1])
    # update() keeps x's type otherwise: inside shard_map, the mesh axes it varies over
    return (x.update(shape=a[:-2] + widths, dtype=transform.dtype), x.update(shape=a, dtype=transform.dtype),
            x.update(shape=batch + widths, dtype=transform.real_dtype))


def _transposed(filters):
    """The filters of the transposed mixing: (L, S_out, S, C_out, C)."""
    return jnp.transpose(filters, (0, 2, 1, 4, 3))


def _gradient_reference(ct_b, filters, x, bias, *, transform, leaky_spin, pool):
    ct_a = mixing(ct_b, _transposed(filters), transform.backend, transform.n)
    return activated_gradient(ct_a, x, bias, transform, leaky_spin, pool)


def gradient_scratch(transform, batch: int, channels: int, pool: bool) -> int | None:
    """Bytes of the scratch result of sphcnn_mixing_gradient (CUDA), or None where
    the target does not apply (as analysis_scratch)."""
    plan = transform.plan
    module = ffi_backend.extension("cuda")
    source = ffi_backend.lambda_source(plan, transform.mode, "cuda")
    return module.mixing_gradient_scratch_bytes(plan.n, plan.ell_max, len(plan.spins), batch, channels,
                                                plan.real_dtype == np.float64, ffi_backend.LAMBDA_SOURCES[source],
                                                pool)


def _gradient_applies(ct_b, filters, x, bias, *, transform, pool, **_) -> bool:
    return gradient_scratch(transform, int(np.prod(x.shape[:-4])), x.shape[-1], pool) is not None


def _gradient_kernel(ct_b, filters, x, bias, *, transform, leaky_spin, pool, platform):
    """(ct_x, ct_bias) in one call of sphcnn_mixing_gradient (CUDA): the
    activated gradient for the cotangent ct_a[l, m, i, c] = sum_{o, d}
    ct_b[l, m, o, d] filters[l, i, o, c, d] of the analysis's coefficients (the
    transposed mixing is the prologue of the Legendre stage of the synthesis)."""
    plan = transform.plan
    results = (jax.ShapeDtypeStruct(x.shape, x.dtype), jax.ShapeDtypeStruct(bias.shape, plan.real_dtype))
    ct_x, ct_bias = activated_call(
        "sphcnn_mixing_gradient", (ct_b, filters.astype(plan.dtype), x), (), results, transform=transform, bias=bias,
        leaky_spin=leaky_spin, pool=pool, platform=platform,
        scratch=lambda module, source: gradient_scratch(transform, int(np.prod(x.shape[:-4])), x.shape[-1], pool))
    return ct_x, ct_bias.astype(bias.dtype)


def _gradient_abstract(ct_b, filters, x, bias, **_):
    # the bias cotangent is a sum over this device's data: it varies as x does
    return x.update(), x.update(shape=bias.shape, dtype=bias.dtype)


GRADIENT = Op(
    name="sphcnn_mixing_gradient",
    abstract_eval=_gradient_abstract,
    reference=_gradient_reference,
    targets={"cuda": Target("sphcnn_mixing_gradient", _gradient_kernel, applies=_gradient_applies)},
    direction="synthesis",
    setting=transform_setting,
    multiple_results=True,
)
register(GRADIENT)


def _constant(b):
    """b_00 (batch..., S_out, C_out): degree 0 (axis 0), order 0 (axis -3)."""
    top = jax.lax.index_in_dim(b, 0, 0, keepdims=False)
    return jax.lax.index_in_dim(top, (b.shape[-3] - 1) // 2, top.ndim - 3, keepdims=False)


def _forward(bind, x, bias, filters, **params):
    b, a, energy = bind(x, bias, filters, **params)
    return (b, (_constant(b), energy)), (x, bias, filters, a, b)


def _backward(residuals, cotangents, *, transform, leaky_spin, pool, activate):
    x, bias, filters, a, b = residuals
    ct_b, (ct_constant, ct_energy) = cotangents
    # written out as one elementwise expression (as the batch norm's moments'
    # gradient): |b|^2 pulls back to 2 ct conj(b), b_00 to ct at b_00
    axes = (0, b.ndim - 3)
    at_constant = constant_coefficient(b.shape[0] - 1, None, 1, b.ndim, 0, b.real.dtype) / math.sqrt(4 * math.pi)
    ct_b = (ct_b + 2 * jnp.expand_dims(ct_energy, axes).astype(b.dtype) * jnp.conj(b)
            + at_constant * jnp.expand_dims(ct_constant, axes).astype(b.dtype))
    # the weight gradient from the kept a (the pullback's unused forward is dead code)
    _, weight_pullback = jax.vjp(lambda w: mixing(a, w, transform.backend, transform.n), filters)
    (ct_filters,) = weight_pullback(ct_b)
    if activate:
        ct_x, ct_bias = PRIMITIVES[GRADIENT.name].bind(ct_b, filters, x, bias, transform=transform,
                                                       leaky_spin=leaky_spin, pool=pool)
    else:
        ct_a = mixing(ct_b, _transposed(filters), transform.backend, transform.n)
        _, analysis_pullback = jax.vjp(transform.forward, x)
        (ct_x,) = analysis_pullback(ct_a)
        ct_bias = jnp.zeros_like(bias)
    return ct_x, sum_like(ct_bias, bias), sum_like(ct_filters, filters)


OP = Op(
    name="sphcnn_mixing_analysis",
    abstract_eval=_abstract,
    reference=_reference,
    targets={"cuda": Target("sphcnn_mixing_analysis", _kernel, applies=_applies)},
    direction="analysis",
    setting=transform_setting,
    multiple_results=True,
    vjp=(_forward, _backward),
)
_mixing_analysis = register(OP)


def mixing_analysis(transform, x: jax.Array, filters: jax.Array, activation_in: Activation | None = None,
                    pool: bool = False) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """A convolution's output coefficients and its batch norm's moments, with one
    custom call on CUDA GPUs (see the module docstring).

    Args:
        transform: the convolution's input transform, degree-major.
        x: its input maps (batch..., p n, p n, S, C), p = 2 with pool: in the
            transform's dtype with an activation, else what transform.forward
            takes.
        filters: (L, S, S_out, C, C_out) in the transform's dtype.
        activation_in: the previous block's magnitude nonlinearity, applied to x
            first, or None.
        pool: pool the (activated) maps onto the transform's grid first.

    Returns:
        (b, (constant, energy)): b (L, batch..., 2L - 1, S_out, C_out), and per
        example (batch..., S_out, C_out) b_00 and the sum over (l, m) of |b|^2.

    Raises:
        ValueError: an argument does not fit the transform.
    """
    name = "mixing_analysis"
    if transform.layout != "degree_major":
        raise ValueError(f"{name}: argument 'transform' must have layout 'degree_major', got {transform.layout!r}")
    spins = len(transform.spins)
    shape = (transform.ell_max + 1, spins, filters.shape[2] if filters.ndim == 5 else -1, x.shape[-1],
             filters.shape[4] if filters.ndim == 5 else -1)
    if filters.ndim != 5 or tuple(filters.shape) != shape:
        raise ValueError(f"{name}: argument 'filters' has shape {tuple(filters.shape)}; expected (L, S, S_out, C, "
                         f"C_out) = ({transform.ell_max + 1}, {spins}, S_out, {x.shape[-1]}, C_out)")
    if filters.dtype != transform.dtype:
        raise ValueError(f"{name}: argument 'filters' has dtype {filters.dtype}; expected {transform.dtype.name}")
    check_input(name, transform, x, activation_in, pool, label="x")
    if activation_in is None:
        if pool:
            x = spatial_pool(x)
        bias, leaky_spin = jnp.zeros((spins, x.shape[-1]), jnp.float32), None
    else:
        bias, leaky_spin = activation_in.bias, activation_in.leaky_spin
    return _mixing_analysis(x, bias, filters, transform=transform, leaky_spin=leaky_spin,
                            pool=bool(pool) and activation_in is not None, activate=activation_in is not None)
