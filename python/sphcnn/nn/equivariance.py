"""Measuring how far layers and models are from rotation equivariance on the grid.

Protocol (used for every level quoted in the docstrings and the README, and
asserted by tests/test_equivariance.py): inputs f = inverse(a) with random
complex coefficients a, flat spectrum, nonzero up to degree n/4 - 1 (half the
grid's band limit); R a uniformly random rotation.

rotation_error(layer): || forward(N(R f)) - rotate(forward(N(f))) || / || forward(N(f)) ||
    over all coefficients up to the band limit of N's output grid, the largest
    over a few rotations: how far N is from commuting with rotations once its
    output is projected back to band-limited functions. Exactly equivariant
    layers give float rounding.
logit_rotation_error(model): mean |l(R x) - l(x)| / mean |l(x_i) - l(x_j)|, how
    much the logits move under rotations of the input relative to how far apart
    the logits of different inputs are (0 for an invariant classifier).
approximately_equivariant_layers(): the pointwise layers and the pooling whose
    levels are quoted, configured as measured (magnitude biases -0.5: with zero
    bias those nonlinearities are the identity).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

import sphcnn_kernels as sk


def approximately_equivariant_layers(spins: tuple[int, ...] = (0, 1), channels: int = 4) -> dict:
    """{name: layer} for spins containing 0 and one nonzero spin: the magnitude
    nonlinearities with bias -0.5, phase collapse (seed 0) and spatial pooling."""
    from sphcnn.nn.nonlinearities import MagnitudeNonlinearity, MagnitudeNonlinearityLeakyRelu, PhaseCollapse
    from sphcnn.nn.pooling import spatial_pool

    magnitude = MagnitudeNonlinearity(spins, channels)
    magnitude.bias[...] = jnp.full((len(spins), channels), -0.5)
    leaky = MagnitudeNonlinearityLeakyRelu(spins, channels)
    leaky.bias[...] = jnp.full((len(spins) - 1, channels), -0.5)
    return {
        "MagnitudeNonlinearity": magnitude,
        "MagnitudeNonlinearityLeakyRelu": leaky,
        "PhaseCollapse": PhaseCollapse(spins, channels, rngs=nnx.Rngs(0)),
        "spatial_pool": spatial_pool,
    }


def random_rotation(rng: np.random.Generator) -> tuple[float, float, float]:
    """z-y-z Euler angles of a uniformly random rotation."""
    return float(rng.uniform(0, 2 * np.pi)), float(np.arccos(rng.uniform(-1, 1))), float(rng.uniform(0, 2 * np.pi))


def band_limited_input(rng: np.random.Generator, n: int, spins, channels: int, batch: int = 2) -> np.ndarray:
    """Coefficients (batch, n/2, n - 1, S, C) complex64, random and flat up to
    degree n/4 - 1, exact zeros elsewhere (including l < max(|m|, |s|))."""
    ell_max = n // 2 - 1
    shape = (batch, ell_max + 1, 2 * ell_max + 1, len(spins), channels)
    a = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    ell = np.arange(ell_max + 1)[:, None, None]
    m = np.arange(-ell_max, ell_max + 1)[None, :, None]
    keep = (ell >= np.abs(m)) & (ell >= np.abs(np.asarray(spins))[None, None, :]) & (ell < n // 4)
    return (a * keep[None, ..., None]).astype(np.complex64)


def rotation_error(layer, rng: np.random.Generator, n: int, spins_in, channels_in: int, spins_out,
                   rotations: int = 3) -> float:
    """Largest relative equivariance error of a spatial layer (see module docstring)."""
    a = jnp.asarray(band_limited_input(rng, n, spins_in, channels_in))
    base = sk.forward(layer(sk.inverse(a, spins_in)), spins_out)
    worst = 0.0
    for _ in range(rotations):
        angles = random_rotation(rng)
        got = sk.forward(layer(sk.inverse(sk.rotate(a, *angles, spins_in), spins_in)), spins_out)
        want = sk.rotate(base, *angles, spins_out)
        worst = max(worst, float(jnp.linalg.norm(got - want) / jnp.linalg.norm(base)))
    return worst


def logit_rotation_error(model, rng: np.random.Generator, n: int = 64, inputs: int = 4, rotations: int = 2) -> float:
    """Relative movement of a classifier's logits under input rotations (see
    module docstring); inputs are real, spin 0, one channel."""
    a = jnp.asarray(band_limited_input(rng, n, (0,), 1, batch=inputs))
    logits = np.asarray(model(jnp.real(sk.inverse(a, (0,)))))
    spread = np.mean([np.linalg.norm(logits[i] - logits[j]) for i in range(inputs) for j in range(i)])
    moved = []
    for _ in range(rotations):
        rotated = jnp.real(sk.inverse(sk.rotate(a, *random_rotation(rng), (0,)), (0,)))
        moved.append(np.mean(np.linalg.norm(np.asarray(model(rotated)) - logits, axis=-1)))
    return float(np.mean(moved) / spread)
