"""sphcnn_mixing: the mixing, the per-degree product of a spin-weighted
spherical convolution, as a kernel that skips the orders that hold no
coefficient.

mixing(a, filters, backend, n) equals

    b[l, ..., m, o, d] = sum_{i, c} a[l, ..., m, i, c] filters[l, i, o, c, d]

for degree-major coefficients a (L, batch..., 2L - 1, S_in, C_in) whose entries
with |m| > l are zero, as every forward transform writes them (then so are
b's). On CPUs with the ffi backend it is one custom call, sphcnn_mixing,
that computes only the rows |m| <= l (about half of the dense rows), writes
zeros in the others, and needs no transposition of a; its VJP is the same
kernel with the transposed filters for a, and
sphcnn_mixing_weight_gradient (the sum over the rows |m| <= l of a^T ct)
for the filters. Elsewhere it is the dense einsum, the reference. The rows
|m| > l of a's cotangent are zero from the kernel where the einsum would fill
them; every transform ignores them.

Operands: x (L, batch..., 2L - 1, K_in), w (L, K_in, K_out) (spins and channels
flattened). Parameters: backend (the transforms' backend option) and n (the
grid the coefficients came from, for 'auto').
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sphcnn_kernels.backends import ffi_backend
from sphcnn_kernels.ops.device_varying import sum_like
from sphcnn_kernels.ops.spec import PRIMITIVES, Op, Target, register
from sphcnn_kernels.precision import matmul_precision


def _dense(x, w, *, backend, n):
    return jnp.einsum("l...mi,lio->l...mo", x, w, precision=matmul_precision())


def _dense_weight_gradient(x, ct, *, backend, n):
    return jnp.einsum("l...mi,l...mo->lio", x, ct, precision=matmul_precision())


def _call(target: str, out_shape, x, other):
    ffi_backend.extension("cpu")
    return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(out_shape, x.dtype))(x, other)


def _kernel(x, w, *, backend, n, platform):
    return _call("sphcnn_mixing", x.shape[:-1] + w.shape[-1:], x, w)


def _weight_gradient_kernel(x, ct, *, backend, n, platform):
    return _call("sphcnn_mixing_weight_gradient", (x.shape[0], x.shape[-1], ct.shape[-1]), x, ct)


def _batch(primitive, args, dims, **params):
    """vmap: a mapped x alone becomes one more batch axis (axis 1); anything else
    maps the dense composition."""
    (x, w), (x_dim, w_dim) = args, dims
    if w_dim is None:
        return primitive.bind(jnp.moveaxis(x, x_dim, 1), w, **params), 1
    return jax.vmap(functools.partial(_dense, **params), in_axes=dims)(x, w), 0


def _setting(params: dict) -> tuple[str, int]:
    return params["backend"], params["n"]


WEIGHT_GRADIENT = Op(
    name="sphcnn_mixing_weight_gradient",
    # update() keeps x's type otherwise: inside shard_map, the mesh axes it varies over
    abstract_eval=lambda x, ct, **_: x.update(shape=(x.shape[0], x.shape[-1], ct.shape[-1])),
    reference=_dense_weight_gradient,
    targets={"cpu": Target("sphcnn_mixing_weight_gradient", _weight_gradient_kernel)},
    direction="analysis",
    setting=_setting,
)
register(WEIGHT_GRADIENT)


def _forward(bind, x, w, **params):
    return bind(x, w, **params), (x, w)


def _backward(residuals, ct, **params):
    x, w = residuals
    ct_x = PRIMITIVES[OP.name].bind(ct, jnp.swapaxes(w, 1, 2), **params)
    ct_w = PRIMITIVES[WEIGHT_GRADIENT.name].bind(x, ct, **params)
    return ct_x, sum_like(ct_w, w)


OP = Op(
    name="sphcnn_mixing",
    abstract_eval=lambda x, w, **_: x.update(shape=x.shape[:-1] + w.shape[-1:]),
    reference=_dense,
    targets={"cpu": Target("sphcnn_mixing", _kernel)},
    direction="analysis",
    setting=_setting,
    batch=_batch,
    vjp=(_forward, _backward),
)
_mix = register(OP)


def mixing(a: jax.Array, filters: jax.Array, backend: str, n: int) -> jax.Array:
    """The mixing of a convolution (see the module docstring).

    Args:
        a: degree-major coefficients (L, batch..., 2L - 1, S_in, C_in), zero at
            |m| > l.
        filters: (L, S_in, S_out, C_in, C_out), a's dtype.
        backend: the transforms' backend option ('ffi', and 'auto' where it
            resolves to it, use the kernel on CPUs).
        n: the grid the coefficients came from (for 'auto').

    Returns:
        (L, batch..., 2L - 1, S_out, C_out) in a's dtype.

    Raises:
        ValueError: a and filters do not fit.
    """
    L, s_in, s_out, c_in, c_out = filters.shape
    if a.ndim < 4 or a.shape[0] != L or tuple(a.shape[-3:]) != (2 * L - 1, s_in, c_in):
        raise ValueError(f"mixing: argument 'a' has shape {tuple(a.shape)}; expected ({L}, batch..., "
                         f"{2 * L - 1}, {s_in}, {c_in}) for filters of shape {tuple(filters.shape)}")
    if a.dtype != filters.dtype:
        raise ValueError(f"mixing: a has dtype {a.dtype} and filters {filters.dtype}; expected the same")
    x = a.reshape(a.shape[:-2] + (s_in * c_in,))
    w = jnp.transpose(filters, (0, 1, 3, 2, 4)).reshape(L, s_in * c_in, s_out * c_out)
    return _mix(x, w, backend=backend, n=n).reshape(a.shape[:-2] + (s_out, c_out))
