"""The kernel ops of sphcnn: one specification per op, one op per file.

Each op is an :class:`~sphcnn_kernels.ops.spec.Op` (name, abstract evaluation,
jnp reference, FFI target per platform, batching, transpose or VJP) registered
by :func:`~sphcnn_kernels.ops.spec.register`, which builds its primitive and
its lowerings. At lowering, an op runs its platform's target where the
transform backend it follows resolves to ``'ffi'`` there and the target takes
the geometry; everywhere else its reference (:mod:`sphcnn_kernels.ops.spec`).

Targets per platform (csrc/cpu, csrc/cuda; ``-``: the reference runs):

====================================  ======================================  ======================================
op (file)                             CPU target                              CUDA target
====================================  ======================================  ======================================
analysis (analysis.py)                sphcnn_analysis                         sphcnn_analysis
synthesis (synthesis.py)              sphcnn_synthesis                        sphcnn_synthesis
grid analysis (grid_analysis.py)      sphcnn_grid_analysis                    sphcnn_grid_analysis
grid synthesis (grid_synthesis.py)    sphcnn_grid_synthesis                   sphcnn_grid_synthesis
grid forward (grid_forward.py)        -                                       -
grid inverse (grid_inverse.py)        -                                       -
activated analysis                    sphcnn_activated_analysis               sphcnn_activated_analysis
  its VJP (activated_analysis.py)     sphcnn_activated_gradient               sphcnn_activated_gradient
affine synthesis                      sphcnn_affine_synthesis                 sphcnn_affine_synthesis
  its VJP (affine_synthesis.py)       -                                       sphcnn_affine_gradient
mixing                                sphcnn_mixing                           -
  its weight gradient (mixing.py)     sphcnn_mixing_weight_gradient           -
mixing analysis                       -                                       sphcnn_mixing_analysis
  its VJP (mixing_analysis.py)        -                                       sphcnn_mixing_gradient
spatial pool / unpool (pooling.py)    -                                       -
====================================  ======================================  ======================================

The grid ops are the transforms on the other quadrature latitude-longitude
grids (equiangular nlat x nlon, Gauss-Legendre, Driscoll-Healy), their kernels
where every order has a longitude bin of its own (nlon >= 2 ell_max + 1); grid
forward and grid inverse are the whole transforms on MW, MWSS and HEALPix. The
transforms also run on the xla backend (their reference) and, on CUDA, the
square grid's on the triton backend; with several devices a batch sharded over
them stays sharded through both (:mod:`sphcnn_kernels.ops.sharding`). Public
functions: :func:`activated_analysis`, :func:`activated_gradient`,
:func:`affine_synthesis`, :func:`mixing`, :func:`mixing_analysis`,
:func:`spatial_pool`, :func:`spatial_unpool`, :func:`ring_taps`,
:func:`grid_forward`, :func:`grid_inverse`,
:func:`scale_and_shift`, :func:`activation`, :func:`activation_cotangents` and
:class:`Activation` (the magnitude nonlinearity), the transform primitives
``analysis_p``, ``synthesis_p``, ``grid_analysis_p`` and ``grid_synthesis_p``,
and the helpers :func:`constant_coefficient`, :func:`spin_rows`,
:func:`spin_mask` (static placement), :func:`sum_like` and
:func:`varying_axes` (device-varying values under shard_map).
"""

from sphcnn_kernels.ops.activated_analysis import activated_analysis, activated_gradient
from sphcnn_kernels.ops.affine_synthesis import affine_synthesis, scale_and_shift
from sphcnn_kernels.ops.analysis import analysis_p
from sphcnn_kernels.ops.device_varying import sum_like, varying_axes
from sphcnn_kernels.ops.grid_analysis import grid_analysis_p
from sphcnn_kernels.ops.grid_forward import grid_forward
from sphcnn_kernels.ops.grid_inverse import grid_inverse
from sphcnn_kernels.ops.grid_synthesis import grid_synthesis_p
from sphcnn_kernels.ops.magnitude import EPSILON, LEAKY_SLOPE, Activation, activation, activation_cotangents
from sphcnn_kernels.ops.mixing import mixing
from sphcnn_kernels.ops.mixing_analysis import mixing_analysis
from sphcnn_kernels.ops.placement import constant_coefficient, spin_mask, spin_rows
from sphcnn_kernels.ops.pooling import ring_taps, spatial_pool, spatial_unpool
from sphcnn_kernels.ops.spec import Op, Target, register, resolve_backend
from sphcnn_kernels.ops.synthesis import synthesis_p

__all__ = [
    "EPSILON",
    "LEAKY_SLOPE",
    "Activation",
    "Op",
    "Target",
    "activated_analysis",
    "activated_gradient",
    "activation",
    "activation_cotangents",
    "affine_synthesis",
    "analysis_p",
    "constant_coefficient",
    "grid_analysis_p",
    "grid_forward",
    "grid_inverse",
    "grid_synthesis_p",
    "mixing",
    "mixing_analysis",
    "register",
    "resolve_backend",
    "ring_taps",
    "scale_and_shift",
    "spatial_pool",
    "spatial_unpool",
    "spin_mask",
    "spin_rows",
    "sum_like",
    "synthesis_p",
    "varying_axes",
]
