"""A spin-weighted convolution's product and the batch norm's partial sums as
the epilogue of the forward transform's Legendre stage.

convolved_forward(transform, x, filters, activation, pool) returns (b, (b_00, energy)):

    a      = activated_forward(transform, x, bias, leaky_spin, pool)   (activation = (bias, leaky_spin))
           or transform.forward(x)                                       (activation None, no pooling)
    b      = degree_mixing(a, filters)          (L, batch..., 2L - 1, S_out, C_out), degree-major
    energy = sum over (l, m) of |b|^2            (batch..., S_out, C_out)

energy is the second moment of sphcnn.nn.batch_norm.coefficient_moments (times
4 pi): the batch norm that follows takes it instead of reading b again. On
CUDA GPUs with the ffi backend and the lambda table it is one custom call,
sphcnn_mixing_analysis: the ring DFT of the analysis (with the activation prologue), then
the Legendre stage ending with the mixing and the energy shares of its tile
(csrc/cuda/mixing_stage.h), then a fixed-order sum of the shares. On CPUs
(whose mixing kernel, sphcnn_degree_mixing, already skips |m| > l), with the
other backends and platforms it is the composition above.

The gradient is written out the same way: the moments' cotangents join b's
(2 ct_energy conj(b), and ct_constant at b_00: one elementwise expression), the
weight gradient comes from the kept a (sphcnn.nn.mixing's weight-gradient
kernel on CPUs, a matmul elsewhere; the custom call writes a for it), and the
transposed product and the transposed activated analysis are one custom call
on CUDA GPUs, sphcnn_mixing_gradient: the Legendre stage of the synthesis starts with the
transposed product of its tile (its cotangent ct_a never goes through HBM in
a separate pass), the ring DFT differentiates the activation as it stores
(csrc/cuda/mixing_stage.h, activation_gradient.h). Elsewhere: the transposed
product (sphcnn.nn.mixing.degree_mixing with transposed filters), then the
activated gradient (sphcnn.nn.fused).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.interpreters import batching

import sphcnn_kernels as sk
from sphcnn.nn.collectives import sum_like
from sphcnn.nn.fused import (activated_forward, activated_gradient, activation_options, check_activated_input,
                             lowerings, pooling_taps)
from sphcnn.nn.kernel_primitives import kernel_primitive
from sphcnn.nn.mixing import degree_mixing
from sphcnn.nn.placement import constant_coefficient


def _analysis(x, bias, *, transform, leaky_spin, pool, activate):
    if activate:
        return activated_forward(transform, x, bias, leaky_spin, pool)
    return transform.forward(x)


def _energy(b):
    """sum over degrees (axis 0) and orders (axis -3) of |b|^2."""
    return jnp.sum(jnp.real(b * jnp.conj(b)), axis=(0, b.ndim - 3))


def _reference(x, bias, filters, *, transform, leaky_spin, pool, activate):
    a = _analysis(x, bias, transform=transform, leaky_spin=leaky_spin, pool=pool, activate=activate)
    b = degree_mixing(a, filters, transform.backend, transform.n)
    return b, a, _energy(b)


def _applies(x, bias, filters, *, transform, **_) -> bool:
    """Whether sphcnn_mixing_analysis takes this geometry (its launch plan's support)."""
    from sphcnn_kernels.backends import ffi_backend

    batch = int(np.prod(x.shape[:-4]))
    return ffi_backend.mixing_analysis_scratch(transform.plan, transform.mode, batch, x.shape[-1],
                                               filters.shape[2], filters.shape[4]) is not None


def _kernel(x, bias, filters, *, transform, leaky_spin, pool, activate, platform):
    from sphcnn_kernels.backends import ffi_backend

    bias = bias if activate else jnp.zeros((0,), transform.real_dtype)
    return ffi_backend.mixing_analysis(x, bias, pooling_taps(transform, pool), filters, activate=activate,
                                       **activation_options(transform, leaky_spin, pool, platform))


def _abstract(x, bias, filters, *, transform, leaky_spin, pool, activate):
    batch = x.shape[:-4]
    widths = (filters.shape[2], filters.shape[4])
    a = transform.spectral_shape(batch, x.shape[-1])
    # update() keeps x's type otherwise: inside shard_map, the mesh axes it varies over
    return (x.update(shape=a[:-2] + widths, dtype=transform.dtype), x.update(shape=a, dtype=transform.dtype),
            x.update(shape=batch + widths, dtype=transform.real_dtype))


_mixing_analysis_p = kernel_primitive(
    "sphcnn_mixing_analysis", _abstract,
    lowerings("analysis", _kernel, _reference, platforms=("cuda",), applies=_applies), multiple_results=True)


def _batch(args, dims, **params):
    """vmap: the composition, mapped."""
    outs = jax.vmap(functools.partial(_reference, **params), in_axes=dims)(*args)
    return outs, (0, 0, 0)


batching.primitive_batchers[_mixing_analysis_p] = _batch


def _constant(b):
    """b_00 (batch..., S_out, C_out): degree 0 (axis 0), order 0 (axis -3)."""
    top = jax.lax.index_in_dim(b, 0, 0, keepdims=False)
    return jax.lax.index_in_dim(top, (b.shape[-3] - 1) // 2, top.ndim - 3, keepdims=False)


def _outputs(transform, x, bias, filters, leaky_spin, pool, activate):
    b, a, energy = _mixing_analysis_p.bind(x, bias, filters, transform=transform, leaky_spin=leaky_spin, pool=pool,
                                           activate=activate)
    return (b, (_constant(b), energy)), a


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 4, 5, 6))
def _convolved(transform, x, bias, filters, leaky_spin, pool, activate):
    return _outputs(transform, x, bias, filters, leaky_spin, pool, activate)[0]


def _forward(transform, x, bias, filters, leaky_spin, pool, activate):
    outputs, a = _outputs(transform, x, bias, filters, leaky_spin, pool, activate)
    return outputs, (x, bias, filters, a, outputs[0])


def _transposed(filters):
    """The filters of the transposed product: (L, S_out, S, C_out, C)."""
    return jnp.transpose(filters, (0, 2, 1, 4, 3))


def _gradient_reference(ct_b, filters, x, bias, *, transform, leaky_spin, pool):
    ct_a = degree_mixing(ct_b, _transposed(filters), transform.backend, transform.n)
    return activated_gradient(ct_a, x, bias, transform, leaky_spin, pool)


def _gradient_applies(ct_b, filters, x, bias, *, transform, pool, **_) -> bool:
    """Whether sphcnn_mixing_gradient takes this geometry."""
    from sphcnn_kernels.backends import ffi_backend

    batch = int(np.prod(x.shape[:-4]))
    return ffi_backend.mixing_gradient_scratch(transform.plan, transform.mode, batch, x.shape[-1], pool) is not None


def _gradient_kernel(ct_b, filters, x, bias, *, transform, leaky_spin, pool, platform):
    from sphcnn_kernels.backends import ffi_backend

    ct_x, ct_bias = ffi_backend.mixing_gradient(ct_b, filters, x, bias, pooling_taps(transform, pool),
                                                **activation_options(transform, leaky_spin, pool, platform))
    return ct_x, ct_bias.astype(bias.dtype)


def _gradient_abstract(ct_b, filters, x, bias, **_):
    # the bias cotangent is a sum over this device's data: it varies as x does
    return x.update(), x.update(shape=bias.shape, dtype=bias.dtype)


_mixing_gradient_p = kernel_primitive(
    "sphcnn_mixing_gradient", _gradient_abstract,
    lowerings("synthesis", _gradient_kernel, _gradient_reference, platforms=("cuda",), applies=_gradient_applies),
    multiple_results=True)


def _gradient_batch(args, dims, **params):
    """vmap: the composition, mapped (each mapped item keeps its own bias sum)."""
    return jax.vmap(functools.partial(_gradient_reference, **params), in_axes=dims)(*args), (0, 0)


batching.primitive_batchers[_mixing_gradient_p] = _gradient_batch


def _backward(transform, leaky_spin, pool, activate, residuals, cotangents):
    x, bias, filters, a, b = residuals
    ct_b, (ct_constant, ct_energy) = cotangents
    # written out as one elementwise expression (as coefficient_moments' gradient):
    # |b|^2 pulls back to 2 ct conj(b), b_00 to ct at b_00
    axes = (0, b.ndim - 3)
    at_constant = constant_coefficient(b.shape[0] - 1, None, 1, b.ndim, 0, b.real.dtype) / math.sqrt(4 * math.pi)
    ct_b = (ct_b + 2 * jnp.expand_dims(ct_energy, axes).astype(b.dtype) * jnp.conj(b)
            + at_constant * jnp.expand_dims(ct_constant, axes).astype(b.dtype))
    # the weight gradient from the kept a (the pullback's unused forward is dead code)
    _, weight_pullback = jax.vjp(lambda w: degree_mixing(a, w, transform.backend, transform.n), filters)
    (ct_filters,) = weight_pullback(ct_b)
    if activate:
        ct_x, ct_bias = _mixing_gradient_p.bind(ct_b, filters, x, bias, transform=transform, leaky_spin=leaky_spin,
                                                pool=pool)
    else:
        ct_a = degree_mixing(ct_b, _transposed(filters), transform.backend, transform.n)
        _, analysis_pullback = jax.vjp(transform.forward, x)
        (ct_x,) = analysis_pullback(ct_a)
        ct_bias = jnp.zeros_like(bias)
    return ct_x, sum_like(ct_bias, bias), sum_like(ct_filters, filters)


_convolved.defvjp(_forward, _backward)


def convolved_forward(transform: sk.SphericalTransform, x: jax.Array, filters: jax.Array,
                      activation: tuple[jax.Array, int | None] | None = None,
                      pool: bool = False) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """(b, (constant, energy)): the convolution's output coefficients b (L,
    batch..., 2L - 1, S_out, C_out), and per example (batch..., S_out, C_out) the
    moments of sphcnn.nn.batch_norm.coefficient_moments: constant = b_00 and
    energy = sum over (l, m) of |b|^2; with one custom call on CUDA GPUs (see
    the module docstring).

    transform: the convolution's input transform (degree-major); x its input maps
    (batch..., p n, p n, S, C) in the transform's dtype (p = 2 with pool), or,
    without activation, what transform.forward takes; filters (L, S, S_out, C,
    C_out) in the transform's dtype; activation: (bias (S, C) float32,
    leaky_spin) of the previous block's magnitude nonlinearity, applied to x
    first (sphcnn.nn.fused.activated_forward), or None; pool: the spatial
    pooling after the activation (needs one)."""
    name = "convolved_forward"
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
    if activation is None:
        if pool:
            raise ValueError(f"{name}: argument 'pool' needs an activation (the pooling follows it)")
        bias, leaky_spin = jnp.zeros((spins, x.shape[-1]), jnp.float32), None
        activate = False
    else:
        bias, leaky_spin = activation
        activate = True
        check_activated_input(name, transform, x, bias, leaky_spin, pool, label="x")
    return _convolved(transform, x, bias, filters, leaky_spin, bool(pool), activate)
