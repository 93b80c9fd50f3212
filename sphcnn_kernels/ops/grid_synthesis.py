"""sphcnn_grid_synthesis: on a quadrature latitude-longitude grid, for a band
limit L - 1 = ell_max, spins, a ring scale w_j and a sign sigma = +-1,

    x_jk = w_j sum_m exp(sigma i m phi_k) sum_l lambda_{l,m,s}(theta_j) a_lm
    (..., L, 2L - 1, S, C) -> (..., nlat, nlon, S, C)

(grid, lambda and phi_k as in :mod:`sphcnn_kernels.ops.grid_analysis`; entries
with l < max(|m|, |s|) are ignored). The inverse transform is synthesis(w = 1,
sigma = +1). Linear; its transpose is sphcnn_grid_analysis with the same
parameters.

Parameters: those of sphcnn_grid_analysis. Targets: sphcnn_grid_synthesis on
CPUs and CUDA GPUs where nlon >= 2 ell_max + 1 (as sphcnn_grid_analysis);
elsewhere the reference (:func:`sphcnn_kernels.grid_transforms.ring_synthesis`).
"""

from __future__ import annotations

import jax.numpy as jnp

from sphcnn_kernels import grid_transforms
from sphcnn_kernels.backends import ffi_backend
from sphcnn_kernels.ops.spec import PRIMITIVES, Op, Target, register
from sphcnn_kernels.ops.transform_stage import (check_grid_operand, grid_setting, leading_batch,
                                                leading_batch_axes, orders_apart)


def _abstract(a, *, grid, ell_max, spins, dtype, **_):
    check_grid_operand("sphcnn_grid_synthesis", "a", a.shape, grid=grid, ell_max=ell_max, spins=spins,
                       coefficients=True)
    return a.update(shape=a.shape[:-4] + grid.shape + a.shape[-2:], dtype=jnp.dtype(dtype))


def _reference(a, *, backend, **params):
    return grid_transforms.ring_synthesis(a, **params)


OP = Op(
    name="sphcnn_grid_synthesis",
    abstract_eval=_abstract,
    reference=_reference,
    targets={platform: Target("sphcnn_grid_synthesis", ffi_backend.grid_synthesis, applies=orders_apart)
             for platform in ("cpu", "cuda")},
    direction="synthesis",
    setting=grid_setting,
    batch=leading_batch(lambda params: 0, lambda params: 0),
    batch_axes=leading_batch_axes,
    transpose="sphcnn_grid_analysis",
)
register(OP)
grid_synthesis_p = PRIMITIVES[OP.name]
