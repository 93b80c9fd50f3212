"""One specification per kernel op, and the one function that registers it.

An :class:`Op` says everything about an operation that has a hand-written
kernel: its name, its abstract evaluation, its jnp reference (what it computes,
and what runs wherever no kernel does), its FFI target on each platform, its
batching rule, and its transpose (linear ops) or VJP. :func:`register` builds
from it the JAX primitive, one lowering per platform and the differentiable
function the layers call. Whether a kernel runs is decided here, at lowering,
for every op alike: the op's transform backend (``'auto'`` resolved from the
measured table of :mod:`sphcnn_kernels.auto`) must be ``'ffi'`` on that
platform, the platform must have a target, and the target must take the
geometry (``applies``); otherwise the reference runs.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from sphcnn_kernels.auto import choose_backend
from sphcnn_kernels.backends import available_backends
from sphcnn_kernels.ops.sharding import batch_partitioned, needs_devices, over_batch, partitioned

# Platforms that may have a target; every other platform runs the reference.
PLATFORMS = ("cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class Target:
    """The FFI kernel of an op on one platform.

    Args:
        name: the FFI target (registered by the platform's extension module).
        call: fn(*operands, platform=..., **params) -> the op's outputs, one
            custom call of `name`.
        applies: optional fn(*operands, **params) -> bool: whether the kernel
            takes this geometry (else the reference runs).
    """

    name: str
    call: Callable
    applies: Callable | None = None


@dataclasses.dataclass(frozen=True)
class Op:
    """The specification of one kernel op.

    Args:
        name: the primitive's name.
        abstract_eval: (*avals, **params) -> the output aval(s).
        reference: fn(*operands, **params) -> outputs: the jnp composition the
            kernels are tested against and that runs where no kernel does.
        targets: platform -> :class:`Target`.
        direction: 'analysis' or 'synthesis': the transform whose backend choice
            decides whether the kernel runs.
        setting: params -> (backend option, grid size n) of that transform.
        batch: optional batching rule (primitive, args, dims, **params) ->
            (outputs, out_dims); default: the reference, vmapped.
        others: other backends than ffi and xla that run the op (backend name
            -> fn(*operands, platform=..., **params)).
        multiple_results: whether the op returns a tuple.
        transpose: for a linear op of one operand, the name of the op whose
            primitive is its transpose with the same parameters (the real part
            of the cotangent is kept for a real operand).
        vjp: for a differentiable op, (forward, backward): forward(bind,
            *operands, **params) -> (outputs, residuals), with bind the
            primitive's bind; backward(residuals, cotangents, **params) -> the
            operands' cotangents.
        batch_axes: for an op of one operand and one result that maps its
            batch axes independently, fn(params, operand rank, result rank) ->
            (the operand's batch axes, the result's): under jit with sharded
            inputs, a batch sharded over devices stays sharded (each device
            runs the op on its shard; :mod:`sphcnn_kernels.ops.sharding`).
    """

    name: str
    abstract_eval: Callable
    reference: Callable
    targets: Mapping[str, Target]
    direction: str
    setting: Callable[[dict], tuple[str, int]]
    batch: Callable | None = None
    others: Mapping[str, Callable] = dataclasses.field(default_factory=dict)
    multiple_results: bool = False
    transpose: str | None = None
    vjp: tuple[Callable, Callable] | None = None
    batch_axes: Callable[[dict, int, int], tuple[tuple[int, ...], tuple[int, ...]]] | None = None


def transform_setting(params: dict) -> tuple[str, int]:
    """(backend option, grid size) of the transform parameter of an op whose parameters hold one (the fused ops)."""
    return params["transform"].backend, params["transform"].n


def resolve_backend(backend: str, platform: str, direction: str, n: int) -> str:
    """The backend a transform of grid size n runs on `platform`.

    Args:
        backend: the backend option ('auto', 'xla', 'ffi', 'triton').
        platform: 'cpu', 'cuda', ...
        direction: 'analysis' or 'synthesis'.
        n: the grid size.

    Returns:
        The backend name; 'auto' resolved from the measured table.

    Raises:
        ValueError: the backend cannot run on the platform, naming both and the
            available backends.
    """
    if backend == "auto":
        return choose_backend(platform, direction, n)
    available = available_backends(platform)
    if backend not in available:
        raise ValueError(
            f"sphcnn_kernels: backend {backend!r} is not available on platform {platform!r}; available: {available}"
            + (" (the C++/CUDA extension was not built or cannot be imported)" if backend == "ffi" else "")
            + (" (install the 'triton' extra on a CUDA machine)" if backend == "triton" else "")
        )
    return backend


def implementation(op: Op, platform: str | None, operands: tuple, params: dict) -> Callable:
    """What computes `op` for these operands on `platform` (None: a platform
    without targets): the target's call, another backend, or the reference."""
    if platform is None or not (op.targets or op.others):
        return op.reference
    backend_option, n = op.setting(params)
    backend = resolve_backend(backend_option, platform, op.direction, n)
    target = op.targets.get(platform)
    if backend == "ffi" and target is not None and (target.applies is None or target.applies(*operands, **params)):
        return functools.partial(target.call, platform=platform)
    if backend in op.others:
        return functools.partial(op.others[backend], platform=platform)
    return op.reference


@functools.lru_cache(maxsize=None)
def _compiled(primitive: Primitive, params: tuple) -> Callable:
    return jax.jit(lambda *operands: primitive.bind(*operands, **dict(params)))


def _vmapped_reference(op: Op):
    def rule(primitive, args, dims, **params):
        outs = jax.vmap(functools.partial(op.reference, **params), in_axes=dims)(*args)
        return outs, ((0,) * len(outs) if op.multiple_results else 0)

    return rule


def _linear_transpose(op: Op) -> Callable:
    def rule(cotangent, operand, **params):
        assert ad.is_undefined_primal(operand)
        if type(cotangent) is ad.Zero:
            return [ad.Zero(operand.aval)]
        out = PRIMITIVES[op.transpose].bind(cotangent, **params)
        if not jnp.iscomplexobj(operand.aval) and jnp.iscomplexobj(out):
            out = jnp.real(out)
        return [out]

    return rule


def reference_transpose_vjp(reference: Callable, operand_shape: Callable[[tuple, dict], tuple],
                            batch_rank: Callable[[int, dict], int]) -> tuple[Callable, Callable]:
    """Op.vjp of a linear op of one operand without a transpose op of its own:
    the backward is the linear transpose of its reference, partitioned over the
    batch as the op's lowering is (:func:`sharding.over_batch`).

    Args:
        reference: the op's reference, fn(operand, **params), linear in operand.
        operand_shape: fn(cotangent shape, params) -> the operand's shape.
        batch_rank: fn(cotangent rank, params) -> the number of leading batch
            axes of the cotangent (and of the operand).

    Returns:
        (forward, backward) for :class:`Op`'s ``vjp``; the residual is a scalar
        of the operand's dtype.
    """

    def forward(bind, operand, **params):
        return bind(operand, **params), jnp.zeros((), operand.dtype)

    def backward(like, cotangent, **params):
        run = functools.partial(reference, **params)

        def transpose(ct):  # traced inside the partitioned function (its constants: the tables) and per shard
            operand = jax.ShapeDtypeStruct(operand_shape(ct.shape, params), like.dtype)
            return jax.linear_transpose(run, operand)(ct)[0]

        axes = tuple(range(batch_rank(cotangent.ndim, params)))
        return (over_batch(transpose, cotangent, axes, axes),)

    return forward, backward


def _differentiable(primitive: Primitive, vjp: tuple[Callable, Callable]) -> Callable:
    forward, backward = vjp

    @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
    def apply(key, *operands):
        return forward(primitive.bind, *operands, **dict(key))[0]

    def apply_forward(key, *operands):
        return forward(primitive.bind, *operands, **dict(key))

    def apply_backward(key, residuals, cotangents):
        return tuple(backward(residuals, cotangents, **dict(key)))

    apply.defvjp(apply_forward, apply_backward)
    return lambda *operands, **params: apply(tuple(sorted(params.items())), *operands)


# Every registered op's primitive, by name.
PRIMITIVES: dict[str, Primitive] = {}


def register(op: Op) -> Callable:
    """Builds the primitive of `op`, its lowering per platform, its batching and
    its transpose or VJP.

    Args:
        op: the specification.

    Returns:
        fn(*operands, **params): the op as the layers call it (params static and
        hashable): differentiable through op.vjp when given, else the
        primitive's bind (linear ops: transposed by op.transpose).
    """
    primitive = Primitive(op.name)
    primitive.multiple_results = op.multiple_results
    primitive.def_abstract_eval(op.abstract_eval)
    primitive.def_impl(lambda *operands, **params: _compiled(primitive, tuple(sorted(params.items())))(*operands))
    for platform in PLATFORMS + (None,):
        def lower(*operands, _platform=platform, **params):
            run = functools.partial(implementation(op, _platform, operands, params), **params)
            if op.batch_axes is not None and partitioned(operands[0]):
                rank = len(op.abstract_eval(*(o.aval for o in operands), **params).shape)
                run = batch_partitioned(run, operands[0].aval, *op.batch_axes(params, operands[0].ndim, rank))
            return run(*operands)

        mlir.register_lowering(primitive, mlir.lower_fun(lower, multiple_results=op.multiple_results),
                               platform=platform)
    batch = op.batch or _vmapped_reference(op)
    batching.primitive_batchers[primitive] = functools.partial(batch, primitive)
    PRIMITIVES[op.name] = primitive
    if op.batch_axes is not None:
        needs_devices(primitive)
    if op.transpose is not None:
        ad.deflinear2(primitive, _linear_transpose(op))
    if op.vjp is not None:
        return _differentiable(primitive, op.vjp)
    return primitive.bind


def backend_module(name: str):
    """The module of a transform backend ('xla', 'ffi', 'triton')."""
    return importlib.import_module(f"sphcnn_kernels.backends.{name}_backend")
