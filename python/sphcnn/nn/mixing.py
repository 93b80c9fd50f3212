"""The per-degree product of a spin-weighted spherical convolution as a kernel
that skips the orders that hold no coefficient.

degree_mixing(a, filters, backend) equals the convolution's product

    b[l, ..., m, o, d] = sum_{i, c} a[l, ..., m, i, c] filters[l, i, o, c, d]

for degree-major coefficients a (L, batch..., 2L - 1, S_in, C_in) whose entries
with |m| > l are zero, as every forward transform writes them (then so are b's).
On CPUs with the ffi backend it is one custom call, sphcnn_degree_mixing, that
computes only the rows |m| <= l (about half of the dense rows), writes zeros in
the others, and needs no transposition of a; its gradient is the same kernel
with the transposed filters for a, and sphcnn_degree_mixing_weight_gradient
(sum over the rows |m| <= l of a^T ct) for the filters. Elsewhere, and with the
other backends, it is the dense einsum of SpinSphericalConvolution. The rows
|m| > l of a's cotangent are zero from the kernel where the einsum would fill
them; every transform ignores them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.interpreters import batching

from sphcnn.nn.collectives import sum_like
from sphcnn.nn.kernel_primitives import kernel_primitive
from sphcnn_kernels.lowering import resolve_backend
from sphcnn_kernels.precision import matmul_precision


def _dense(x, w, *, backend, n):
    return jnp.einsum("l...mi,lio->l...mo", x, w, precision=matmul_precision())


def _dense_weight_gradient(x, ct, *, backend, n):
    return jnp.einsum("l...mi,l...mo->lio", x, ct, precision=matmul_precision())


def _uses_kernel(backend: str, n: int) -> bool:
    return resolve_backend(backend, "cpu", "analysis", n) == "ffi"


def _kernel_call(target: str, out_shape, x, other):
    from sphcnn_kernels.backends import ffi_backend

    ffi_backend.extension("cpu")
    return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(out_shape, x.dtype))(x, other)


def _cpu(x, w, *, backend, n):
    if not _uses_kernel(backend, n):
        return _dense(x, w, backend=backend, n=n)
    return _kernel_call("sphcnn_degree_mixing", x.shape[:-1] + w.shape[-1:], x, w)


def _cpu_weight_gradient(x, ct, *, backend, n):
    if not _uses_kernel(backend, n):
        return _dense_weight_gradient(x, ct, backend=backend, n=n)
    return _kernel_call("sphcnn_degree_mixing_weight_gradient", (x.shape[0], x.shape[-1], ct.shape[-1]), x, ct)


# update() keeps x's type otherwise: inside shard_map, the mesh axes it varies over
_mixing_p = kernel_primitive("sphcnn_degree_mixing", lambda x, w, **_: x.update(shape=x.shape[:-1] + w.shape[-1:]),
                             {"cpu": _cpu, None: _dense})
_weight_gradient_p = kernel_primitive(
    "sphcnn_degree_mixing_weight_gradient",
    lambda x, ct, **_: x.update(shape=(x.shape[0], x.shape[-1], ct.shape[-1])),
    {"cpu": _cpu_weight_gradient, None: _dense_weight_gradient})


def _batch_mixing(args, dims, **params):
    """vmap: a mapped x alone becomes one more batch axis (axis 1); anything else
    maps the dense composition."""
    (x, w), (x_dim, w_dim) = args, dims
    if w_dim is None:
        return _mixing_p.bind(jnp.moveaxis(x, x_dim, 1), w, **params), 1
    return jax.vmap(functools.partial(_dense, **params), in_axes=dims)(x, w), 0


def _batch_weight_gradient(args, dims, **params):
    """vmap: the dense composition, mapped (each mapped item has its own sum)."""
    return jax.vmap(functools.partial(_dense_weight_gradient, **params), in_axes=dims)(*args), 0


batching.primitive_batchers[_mixing_p] = _batch_mixing
batching.primitive_batchers[_weight_gradient_p] = _batch_weight_gradient


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _mix(x, w, backend, n):
    return _mixing_p.bind(x, w, backend=backend, n=n)


def _mix_forward(x, w, backend, n):
    return _mix(x, w, backend, n), (x, w)


def _mix_backward(backend, n, residuals, ct):
    x, w = residuals
    ct_x = _mixing_p.bind(ct, jnp.swapaxes(w, 1, 2), backend=backend, n=n)
    ct_w = _weight_gradient_p.bind(x, ct, backend=backend, n=n)
    return ct_x, sum_like(ct_w, w)


_mix.defvjp(_mix_forward, _mix_backward)


def degree_mixing(a: jax.Array, filters: jax.Array, backend: str, n: int) -> jax.Array:
    """The convolution's product (see the module docstring): a (L, batch..., 2L - 1,
    S_in, C_in), filters (L, S_in, S_out, C_in, C_out), both complex64 ->
    (L, batch..., 2L - 1, S_out, C_out). backend: the transforms' backend option
    ('ffi' and 'auto' resolving to it use the kernel on CPUs); n: the grid the
    coefficients came from (for 'auto')."""
    L, s_in, s_out, c_in, c_out = filters.shape
    if a.ndim < 4 or a.shape[0] != L or tuple(a.shape[-3:]) != (2 * L - 1, s_in, c_in):
        raise ValueError(f"degree_mixing: argument 'a' has shape {tuple(a.shape)}; expected ({L}, batch..., "
                         f"{2 * L - 1}, {s_in}, {c_in}) for filters of shape {tuple(filters.shape)}")
    if a.dtype != filters.dtype:
        raise ValueError(f"degree_mixing: a has dtype {a.dtype} and filters {filters.dtype}; expected the same")
    x = a.reshape(a.shape[:-2] + (s_in * c_in,))
    w = jnp.transpose(filters, (0, 1, 3, 2, 4)).reshape(L, s_in * c_in, s_out * c_out)
    return _mix(x, w, backend, n).reshape(a.shape[:-2] + (s_out, c_out))
