"""One helper for the primitives of the fused block kernels (sphcnn.nn.fused,
sphcnn.nn.mixing): a primitive evaluated by jitting itself, with an abstract
evaluation and one lowering per platform (None: every other platform), each a
traceable function of jax operations (the kernel's custom call, or the
reference composition)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
from jax.extend.core import Primitive
from jax.interpreters import mlir


def kernel_primitive(name: str, abstract_eval: Callable, lowerings: Mapping[str | None, Callable],
                     multiple_results: bool = False) -> Primitive:
    """The primitive `name`; lowerings: platform -> fn(*operands, **params)."""
    primitive = Primitive(name)
    primitive.multiple_results = multiple_results
    primitive.def_abstract_eval(abstract_eval)
    primitive.def_impl(lambda *args, **params: jax.jit(functools.partial(primitive.bind, **params))(*args))
    for platform, fn in lowerings.items():
        mlir.register_lowering(primitive, mlir.lower_fun(fn, multiple_results=multiple_results), platform=platform)
    return primitive
