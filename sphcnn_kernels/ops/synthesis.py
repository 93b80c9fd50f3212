"""sphcnn_synthesis: for a plan (grid n, band limit L - 1 = ell_max, spins), a
ring scale w_j and a sign sigma = +-1,

    x_jk = w_j sum_m exp(sigma i m phi_k) sum_l lambda_{l,m,s}(theta_j) a_lm
    (..., L, 2L - 1, S, C) -> (..., n, n, S, C)

(lambda as in :mod:`sphcnn_kernels.ops.analysis`). The inverse transform is
synthesis(w = 1, sigma = +1). Linear; its transpose is sphcnn_analysis with
the same parameters.

Parameters: those of sphcnn_analysis. Targets: sphcnn_synthesis on CPUs and
CUDA GPUs; the xla backend is the reference; the triton backend on CUDA GPUs.
"""

from __future__ import annotations

import jax.numpy as jnp

from sphcnn_kernels.ops.spec import PRIMITIVES, Op, Target, register
from sphcnn_kernels.ops.transform_stage import batch_axis, coefficient_batch, leading_batch, stage


def _abstract(a, *, plan, layout, **_):
    shape = plan.spectral_batch(a.shape, layout) + plan.spatial_core_shape + a.shape[-2:]
    return a.update(shape=shape, dtype=jnp.dtype(plan.dtype))


OP = Op(
    name="sphcnn_synthesis",
    abstract_eval=_abstract,
    reference=stage("xla", "synthesis"),
    targets={platform: Target("sphcnn_synthesis", stage("ffi", "synthesis")) for platform in ("cpu", "cuda")},
    direction="synthesis",
    setting=lambda params: (params["backend"], params["plan"].n),
    batch=leading_batch(lambda params: batch_axis(params["layout"]), lambda params: 0),
    others={"xla": stage("xla", "synthesis"), "triton": stage("triton", "synthesis")},
    batch_axes=lambda params, operand_rank, result_rank: (coefficient_batch(params, operand_rank),
                                                           tuple(range(result_rank - 4))),
    transpose="sphcnn_analysis",
)
register(OP)
synthesis_p = PRIMITIVES[OP.name]
