"""sphcnn_analysis: for a plan (grid n, band limit L - 1 = ell_max, spins), a
ring scale w_j and a sign sigma = +-1,

    a_lm = sum_j w_j lambda_{l,m,s}(theta_j) sum_k x_jk exp(sigma i m phi_k)
    (..., n, n, S, C) -> (..., L, 2L - 1, S, C)

with lambda_{l,m,s}(theta) = (-1)^s sqrt((2l + 1)/(4 pi)) d^l_{m,-s}(theta).
The forward transform is analysis(w = q_j / n, sigma = -1). Linear; its
transpose is sphcnn_synthesis with the same parameters (JAX's linear
transpose: no conjugation), and a real operand (spin 0) gets the real part of
the transposed cotangent.

Parameters: plan, sign, weighted (w = q_j / n, else 1), and the options
backend, precision, layout and mode of :class:`sphcnn_kernels.SphericalTransform`.
Targets: sphcnn_analysis on CPUs and CUDA GPUs; the xla backend is the
reference; the triton backend on CUDA GPUs.
"""

from __future__ import annotations

import jax.numpy as jnp

from sphcnn_kernels.ops.spec import PRIMITIVES, Op, Target, register
from sphcnn_kernels.ops.transform_stage import batch_axis, coefficient_batch, leading_batch, stage


def _abstract(x, *, plan, layout, **_):
    return x.update(shape=plan.spectral_shape(x.shape[:-4], *x.shape[-2:], layout), dtype=jnp.dtype(plan.dtype))


OP = Op(
    name="sphcnn_analysis",
    abstract_eval=_abstract,
    reference=stage("xla", "analysis"),
    targets={platform: Target("sphcnn_analysis", stage("ffi", "analysis")) for platform in ("cpu", "cuda")},
    direction="analysis",
    setting=lambda params: (params["backend"], params["plan"].n),
    batch=leading_batch(lambda params: 0, lambda params: batch_axis(params["layout"])),
    others={"xla": stage("xla", "analysis"), "triton": stage("triton", "analysis")},
    batch_axes=lambda params, operand_rank, result_rank: (tuple(range(operand_rank - 4)),
                                                           coefficient_batch(params, result_rank)),
    transpose="sphcnn_synthesis",
)
register(OP)
analysis_p = PRIMITIVES[OP.name]
