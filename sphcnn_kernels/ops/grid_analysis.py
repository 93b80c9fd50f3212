"""sphcnn_grid_analysis: on a quadrature latitude-longitude grid (equiangular,
gauss_legendre or driscoll_healy of :mod:`sphcnn_kernels.grids`, nlat rings
at theta_j of nlon points phi_k = 2 pi k / nlon), a band limit L - 1 =
ell_max, spins, a ring scale w_j and a sign sigma = +-1,

    a_lm = sum_j w_j lambda_{l,m,s}(theta_j) sum_k x_jk exp(sigma i m phi_k)
    (..., nlat, nlon, S, C) -> (..., L, 2L - 1, S, C)

with lambda_{l,m,s}(theta) = sY_lm(theta, 0) and zeros where l < max(|m|, |s|).
The forward transform is analysis(w = grid.weights / nlon, sigma = -1). Linear;
its transpose is sphcnn_grid_synthesis with the same parameters (no
conjugation), and a real operand (spin 0) gets the real part of the
transposed cotangent.

Parameters (static): grid, ell_max, spins, dtype ('complex64' or
'complex128'), sign, weighted (w = grid.weights / nlon, else 1) and backend
(the transform's option; 'auto' resolved for nlat rings). Coefficients are
batch-major. Targets: sphcnn_grid_analysis on CPUs and CUDA GPUs where
nlon >= 2 ell_max + 1 (on CUDA with backend 'ffi' only: 'auto' resolves to
xla there until a GPU has measured the kernels); elsewhere the reference
(:func:`sphcnn_kernels.grid_transforms.ring_analysis`).
"""

from __future__ import annotations

import jax.numpy as jnp

from sphcnn_kernels import grid_transforms
from sphcnn_kernels.backends import ffi_backend
from sphcnn_kernels.ops.spec import PRIMITIVES, Op, Target, register
from sphcnn_kernels.ops.transform_stage import (check_grid_operand, grid_setting, leading_batch,
                                                leading_batch_axes, orders_apart)


def _abstract(x, *, grid, ell_max, spins, dtype, **_):
    check_grid_operand("sphcnn_grid_analysis", "x", x.shape, grid=grid, ell_max=ell_max, spins=spins,
                       coefficients=False)
    return x.update(shape=x.shape[:-4] + (ell_max + 1, 2 * ell_max + 1) + x.shape[-2:], dtype=jnp.dtype(dtype))


def _reference(x, *, backend, **params):
    return grid_transforms.ring_analysis(x, **params)


OP = Op(
    name="sphcnn_grid_analysis",
    abstract_eval=_abstract,
    reference=_reference,
    targets={platform: Target("sphcnn_grid_analysis", ffi_backend.grid_analysis, applies=orders_apart)
             for platform in ("cpu", "cuda")},
    direction="analysis",
    setting=grid_setting,
    batch=leading_batch(lambda params: 0, lambda params: 0),
    batch_axes=leading_batch_axes,
    transpose="sphcnn_grid_synthesis",
)
register(OP)
grid_analysis_p = PRIMITIVES[OP.name]
