"""The matmul precision policy of sphcnn, for the transforms and the model layer.

precision='highest' asks for full fp32 products: on GPUs XLA's DEFAULT precision
may use TF32 (10-bit mantissas), so HIGHEST is requested there; on CPUs DEFAULT
already multiplies in full fp32 (same error as HIGHEST, measured 1.9e-7 on a
complex64 contraction) while HIGHEST selects a slower code path (3x slower on
the convolution's contraction), so DEFAULT is used. precision='fast' leaves
XLA's default (TF32 on recent NVIDIA GPUs).
"""

from __future__ import annotations

import jax


def matmul_precision(precision: str = "highest", platform: str | None = None) -> jax.lax.Precision:
    """The `precision` argument of einsum/matmul for a precision option on
    `platform` (default: the platform of JAX's default backend)."""
    platform = platform or jax.default_backend()
    if precision == "highest" and platform != "cpu":
        return jax.lax.Precision.HIGHEST
    return jax.lax.Precision.DEFAULT
