"""Round-trip error of precision="highest" and of TF32 matmuls (what
precision="fast" lets the xla and triton backends use on NVIDIA GPUs).

    python -m benchmarks.precision

On a CUDA GPU it measures both settings of the xla backend for real. Without
one, "fast" changes nothing (CPUs have no TF32), so the TF32 figure is emulated
exactly: both operands of the Legendre-stage matmul rounded to TF32's 10-bit
mantissa (round to nearest even), products exact and sums in float32, which is
how TF32 tensor cores compute. One JSON line per (n, setting):
roundtrip_err = max |forward(inverse(a)) - a| / max |a| for random band-limited a.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import sphcnn_kernels as sk
from benchmarks.measure import device_description, emit
from sphcnn_kernels.backends.fourier import forward_rings, rings_to_grid


def round_to_tf32(x: jax.Array) -> jax.Array:
    """float32 -> float32 values representable in TF32 (1 + 10 + 8 bits)."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    bits = (bits + jnp.uint32(0x0FFF) + ((bits >> 13) & jnp.uint32(1))) & jnp.uint32(0xFFFFE000)
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


def _tf32_product(spec: str, table: np.ndarray, z: jax.Array) -> jax.Array:
    pair = round_to_tf32(jnp.stack([z.real, z.imag], axis=-1))
    out = jnp.einsum(spec, pair, round_to_tf32(jnp.asarray(table, jnp.float32)), precision=jax.lax.Precision.HIGHEST)
    return jax.lax.complex(out[..., 0], out[..., 1])


def emulated_round_trip(a: jax.Array, plan) -> jax.Array:
    """forward(inverse(a)) with TF32 Legendre matmuls (FFTs in float32), as the
    xla backend computes it (plan.dense_table is already in float32)."""
    g = _tf32_product("...lmscr,smlj->...jmscr", plan.dense_table, a)
    x = rings_to_grid(g, 1, plan.n)
    x = x * jnp.asarray(plan.ring_scale(True), jnp.float32)[:, None, None, None]
    return _tf32_product("...jmscr,smlj->...lmscr", plan.dense_table, forward_rings(x, -1, plan.ell_max))


def _band_limited(rng: np.random.Generator, ell_max: int, spins: tuple[int, ...]) -> jax.Array:
    """Random complex64 coefficients (2, L, 2L - 1, S, 4), zero where l < max(|m|, |s|)."""
    shape = (2, ell_max + 1, 2 * ell_max + 1, len(spins), 4)
    ell = np.arange(ell_max + 1)[:, None, None]
    m = np.arange(-ell_max, ell_max + 1)[None, :, None]
    keep = (ell >= np.abs(m)) & (ell >= np.abs(np.asarray(spins)[None, None, :]))
    a = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * keep[None, ..., None]
    return jnp.asarray(a.astype(np.complex64))


def _error(back: jax.Array, a: jax.Array) -> float:
    return float(jnp.max(jnp.abs(back - a)) / jnp.max(jnp.abs(a)))


def main() -> None:
    platform, device = device_description()
    rng = np.random.default_rng(0)
    spins = (0, 1)
    for n in (64, 128, 256):
        a = _band_limited(rng, n // 2 - 1, spins)
        for setting in ("highest", "fast"):
            t = sk.SphericalTransform(n, spins, backend="xla", precision=setting)
            label = setting if platform == "gpu" or setting == "highest" else "fast (no TF32 on CPU: same as highest)"
            emit({"name": "precision", "platform": platform, "device": device, "n": n, "precision": label,
                  "roundtrip_err": _error(t.forward(t.inverse(a)), a)})
        if platform != "gpu":
            plan = sk.get_plan(n, n // 2 - 1, spins, "complex64")
            emit({"name": "precision", "platform": platform, "device": device, "n": n,
                  "precision": "fast (TF32 emulated)", "roundtrip_err": _error(emulated_round_trip(a, plan), a)})


if __name__ == "__main__":
    main()
