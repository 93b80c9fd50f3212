"""Projection of 28 x 28 planar images onto the sphere, as in Cohen, Geiger,
Koehler & Welling, "Spherical CNNs" (ICLR 2018).

Geometry (lengths in units of the sphere radius):

- the unit sphere is centred at the origin; the image lies on the plane z = -1,
  tangent to the sphere at the south pole, and covers the square
  [-1.5, 1.5]^2 of that plane;
- orientation on the plane: the column index grows with +x and the row index
  with -y, so pixel (r, c) has its centre at x = -1.5 + 3 (c + 0.5) / 28,
  y = 1.5 - 3 (r + 0.5) / 28 (the image reads upright when the plane is seen
  from above, i.e. from inside the sphere, with +y up and +x right);
- a sphere point p is projected onto the plane along the ray from the eye
  P = (0, 0, 1 + 1e-3), just above the north pole: q = P + t (p - P) with
  t = (-1 - P_z) / (p_z - P_z), i.e. (x, y) = t (p_x, p_y);
- the value at p is the bilinear interpolation of the pixels at q, with zero
  outside the image, on the southern hemisphere (p_z <= 0) only; the northern
  hemisphere is 0.

Two samplers (``sampling``) turn the point q = (x, y) into a value:

- "bilinear" (default): the bilinear interpolation described above, rounded
  to the nearest integer (ties to even);
- "s2cnn": the sampler of the script that generated the published spherical
  MNIST (Cohen et al.'s s2cnn repository, examples/mnist/gendata.py, used by
  Esteves et al. for the spin-weighted CNN experiments). Its image axes are
  row <-> +x and column <-> +y with pixel a at coordinate u = a, u = (x + 1.5)
  28 / 3 (and v likewise from y), i.e. the digit is the transpose of the
  bilinear one, shifted by half a pixel. Its taps are the pixels two apart
  around u: with i = floor(u), rows i - 1 and i + 1 get weights i + 1 - u and
  u - i + 1 (the same for columns), so the sum of the four weights is 4 and
  pixel row i itself is never read: a smoother, wider kernel than bilinear
  interpolation. Each image is then rescaled to its own range,
  (v - min) / (max - min) 255 over the grid samples, and truncated to uint8.
  Measured effect (one epoch on rotated data, same model and recipe, 5,000 test
  images): 95.6% test accuracy against 92.2% with "bilinear".

The canonical image is this function sampled on sphcnn's n x n equiangular grid
(theta_j = pi j / (n - 1), phi_k = 2 pi k / n, p = (sin theta cos phi,
sin theta sin phi, cos theta)); the image rotated by R is the same function
sampled at R^-1 p = R^T p. Values are rounded to the nearest integer (ties to
even) and stored as uint8 (N, n, n), [i, j, k] at (theta_j, phi_k).

Implementation: for every sample point the four bilinear taps (flat pixel index
and weight) are computed in float32 and the image is gathered at them, in one
jax.jit-compiled function over chunks of images. For the canonical mode the
taps are computed once and shared by all images; for the rotated mode each
image's points R_i^T p are computed inside the compiled function. All 70,000
MNIST images at n = 64 take about 2.5 s (canonical) and 6 s (rotated) on two
CPU cores.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import sphcnn_kernels
from sphcnn_kernels import validation as checks

IMAGE_SIZE = 28
HALF_WIDTH = 1.5  # the image covers [-HALF_WIDTH, HALF_WIDTH]^2 of the plane z = -1
PLANE_Z = -1.0
EYE_Z = 1.0 + 1e-3  # the projection centre P = (0, 0, EYE_Z)
CHUNK = 512  # images per compiled call
SAMPLINGS = ("bilinear", "s2cnn")
# The direction on the sphere of a canonical digit's up (towards its image's row 0) at its centre, the
# south pole, seen from inside with the digit reading the right way round: +y for "bilinear" (row r at
# y = 1.5 - 3 (r + 0.5) / 28), -x for "s2cnn" (row r at x = 3 r / 28 - 1.5: its digits are the bilinear
# ones turned by a quarter turn). A digit rotated by R has R times this as its up.
DIGIT_UP = {"bilinear": (0.0, 1.0, 0.0), "s2cnn": (-1.0, 0.0, 0.0)}


def grid_points(n: int) -> np.ndarray:
    """Unit vectors of the n x n equiangular grid, float64 (n, n, 3), [j, k] at (theta_j, phi_k)."""
    theta, phi = sphcnn_kernels.equiangular_grid(checks.grid_size("grid_points", "n", n))
    t, p = np.meshgrid(theta, phi, indexing="ij")
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)


def _plane_point(points: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The projection (x, y) on the plane z = -1 of points (..., 3), float32."""
    points = points.astype(jnp.float32)
    t = (PLANE_Z - EYE_Z) / (points[..., 2] - EYE_Z)
    return t * points[..., 0], t * points[..., 1]


def _taps(points: jax.Array, sampling: str) -> tuple[jax.Array, jax.Array]:
    """Flat pixel indices int32 (..., 4) and weights float32 (..., 4) of points (..., 3).

    Taps outside the image or of points on the northern hemisphere get weight 0
    (and index 0)."""
    x, y = _plane_point(points)
    scale = IMAGE_SIZE / (2 * HALF_WIDTH)
    if sampling == "bilinear":
        row = (HALF_WIDTH - y) * scale - 0.5
        col = (x + HALF_WIDTH) * scale - 0.5
        row0, col0 = jnp.floor(row), jnp.floor(col)
        fr, fc = row - row0, col - col0
        rows = (row0, row0 + 1, (1 - fr), fr)
        cols = (col0, col0 + 1, (1 - fc), fc)
    else:
        row = (x + HALF_WIDTH) * scale
        col = (y + HALF_WIDTH) * scale
        row0, col0 = jnp.trunc(row), jnp.trunc(col)  # the script's int() truncation
        rows = (row0 - 1, row0 + 1, row0 + 1 - row, row - row0 + 1)
        cols = (col0 - 1, col0 + 1, col0 + 1 - col, col - col0 + 1)
    south = points[..., 2] <= 0
    indices, weights = [], []
    for r, wr in ((rows[0], rows[2]), (rows[1], rows[3])):
        for c, wc in ((cols[0], cols[2]), (cols[1], cols[3])):
            r_i, c_i = r.astype(jnp.int32), c.astype(jnp.int32)
            inside = south & (r_i >= 0) & (r_i < IMAGE_SIZE) & (c_i >= 0) & (c_i < IMAGE_SIZE)
            indices.append(jnp.where(inside, r_i * IMAGE_SIZE + c_i, 0))
            weights.append(jnp.where(inside, wr * wc, 0.0).astype(jnp.float32))
    return jnp.stack(indices, axis=-1), jnp.stack(weights, axis=-1)


def _to_pixels(values: np.ndarray, sampling: str) -> np.ndarray:
    """values: float32 (B, M), one image per row -> uint8 (B, M) as the sampler stores them
    (on the host, in float64, so that an image's maximum maps to exactly 255)."""
    if sampling == "bilinear":
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    values = values.astype(np.float64)
    low = values.min(axis=1, keepdims=True)
    span = values.max(axis=1, keepdims=True) - low
    scaled = (values - low) / np.where(span > 0, span, 1.0) * 255
    return np.clip(np.floor(scaled), 0, 255).astype(np.uint8)


def _gather(flat: jax.Array, indices: jax.Array, weights: jax.Array) -> jax.Array:
    """flat: (B, 784); indices, weights: (B, M, 4) -> float32 (B, M), the weighted sum of the taps."""
    taps = jnp.take_along_axis(flat.astype(jnp.float32)[:, None, :], indices, axis=2)
    return jnp.sum(taps * weights, axis=-1)


@functools.partial(jax.jit, static_argnames="sampling")
def _sample_at(flat: jax.Array, points: jax.Array, sampling: str) -> jax.Array:
    """flat: (B, 784); points: (B, M, 3) -> float32 (B, M)."""
    return _gather(flat, *_taps(points, sampling))


@jax.jit
def _project_fixed(flat: jax.Array, indices: jax.Array, weights: jax.Array) -> jax.Array:
    """flat: (B, 784); indices, weights: (M, 4), the same for every image -> float32 (B, M)."""
    taps = jnp.take(flat.astype(jnp.float32), indices, axis=1)  # (B, M, 4)
    return jnp.sum(taps * weights, axis=-1)


@functools.partial(jax.jit, static_argnames="sampling")
def _project_rotated(flat: jax.Array, rotations: jax.Array, grid: jax.Array, sampling: str) -> jax.Array:
    """flat: (B, 784); rotations: (B, 3, 3); grid: (M, 3) -> float32 (B, M) sampled at R_b^T p_m."""
    points = jnp.einsum("mi,bij->bmj", grid, rotations)
    return _gather(flat, *_taps(points, sampling))


@functools.lru_cache(maxsize=8)
def _grid32(n: int) -> np.ndarray:
    """The grid points as float32 (n * n, 3)."""
    return grid_points(n).reshape(n * n, 3).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _canonical_taps(n: int, sampling: str) -> tuple[jax.Array, jax.Array]:
    """Taps of the grid points, int32 and float32 (n * n, 4), computed once per (n, sampling)."""
    return jax.jit(_taps, static_argnames="sampling")(_grid32(n), sampling)


def _check_images(func: str, images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{func}: argument 'images' has shape {images.shape}; expected (N, 28, 28)")
    if images.dtype != np.uint8:
        raise ValueError(f"{func}: argument 'images' must be uint8 (pixel values 0..255), got dtype {images.dtype}")
    return images


def sample(images, points, sampling: str = "bilinear") -> np.ndarray:
    """The projected function of each image at arbitrary points of the unit sphere.

    images: uint8 (N, 28, 28); points: float (N, M, 3), unit vectors, the points
    of image i in points[i]; sampling: "bilinear" or "s2cnn" (module docstring).
    Returns float32 (N, M): the sampler's weighted sum of the pixels at the
    points' projections (0 on the northern hemisphere), before rounding and, for
    "s2cnn", before the per-image rescaling.
    """
    images = _check_images("sample", images)
    sampling = checks.choice("sample", "sampling", sampling, SAMPLINGS)
    points = np.asarray(points)
    if points.ndim != 3 or points.shape[0] != images.shape[0] or points.shape[2] != 3:
        raise ValueError(f"sample: argument 'points' has shape {points.shape}; expected ({images.shape[0]}, M, 3)")
    if not np.issubdtype(points.dtype, np.floating) or not np.allclose(np.linalg.norm(points, axis=-1), 1.0, atol=1e-6):
        raise ValueError(f"sample: argument 'points' must hold unit vectors (floats), got dtype {points.dtype}")
    flat = images.reshape(len(images), -1)
    return np.asarray(_sample_at(flat, points.astype(np.float32), sampling))


def project(images, n: int, rotations=None, sampling: str = "bilinear") -> np.ndarray:
    """Project MNIST images onto the n x n equiangular grid.

    images: uint8 (N, 28, 28); n: even grid size >= 4; rotations: None for the
    canonical projection, or float (N, 3, 3) rotation matrices, image i then
    being rotated by rotations[i] (sampled at rotations[i]^T p); sampling:
    "bilinear" or "s2cnn" (module docstring).
    Returns uint8 (N, n, n), [i, j, k] at (theta_j, phi_k).
    """
    func = "project"
    images = _check_images(func, images)
    sampling = checks.choice(func, "sampling", sampling, SAMPLINGS)
    n = checks.grid_size(func, "n", n)
    count = len(images)
    if rotations is not None:
        rotations = np.asarray(rotations)
        if rotations.shape != (count, 3, 3) or not np.issubdtype(rotations.dtype, np.floating):
            raise ValueError(
                f"{func}: argument 'rotations' has shape {rotations.shape} and dtype {rotations.dtype}; expected "
                f"float ({count}, 3, 3) or None"
            )
        identity = np.einsum("bji,bjk->bik", rotations, rotations)
        if not np.allclose(identity, np.eye(3), atol=1e-6) or not np.allclose(np.linalg.det(rotations), 1.0, atol=1e-6):
            raise ValueError(f"{func}: argument 'rotations' must hold proper rotation matrices (R^T R = I, det R = 1)")
    out = np.empty((count, n * n), dtype=np.uint8)
    if count == 0:
        return out.reshape(0, n, n)
    # Fixed chunk shapes (a power of two up to CHUNK, the last chunk padded) bound the number of compilations.
    size = min(CHUNK, 1 << (count - 1).bit_length())
    flat = images.reshape(count, -1)
    for start in range(0, count, size):
        stop = min(start + size, count)
        chunk = np.zeros((size, IMAGE_SIZE * IMAGE_SIZE), np.uint8)
        chunk[: stop - start] = flat[start:stop]
        if rotations is None:
            values = _project_fixed(chunk, *_canonical_taps(n, sampling))
        else:
            padded = np.broadcast_to(np.eye(3, dtype=np.float32), (size, 3, 3)).copy()
            padded[: stop - start] = rotations[start:stop]
            values = _project_rotated(chunk, padded, _grid32(n), sampling)
        out[start:stop] = _to_pixels(np.asarray(values)[: stop - start], sampling)
    return out.reshape(count, n, n)
