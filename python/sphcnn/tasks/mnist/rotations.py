"""Uniformly random rotations (Haar measure on SO(3)) for rotated spherical MNIST.

A unit quaternion q = g / |g| with g a standard normal 4-vector is uniform on
the 3-sphere (the normal density is isotropic; Muller, Comm. ACM 2(4), 1959),
and the map from unit quaternions to rotations is a 2:1 cover that carries the
uniform measure on S^3 to the Haar measure on SO(3) (Shoemake, "Uniform random
rotations", Graphics Gems III, 1992). The rotation matrix of
q = (w, x, y, z) is the standard

    [[1 - 2(y^2 + z^2), 2(xy - zw),       2(xz + yw)],
     [2(xy + zw),       1 - 2(x^2 + z^2), 2(yz - xw)],
     [2(xz - yw),       2(yz + xw),       1 - 2(x^2 + y^2)]].

Output: float64 (count, 3, 3), proper rotations (R^T R = I, det R = +1).
"""

from __future__ import annotations

import numpy as np

from sphcnn_kernels import validation as checks


def quaternion_matrices(quaternions: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of quaternions (..., 4) = (w, x, y, z), normalized first."""
    q = np.asarray(quaternions, dtype=np.float64)
    if q.ndim < 1 or q.shape[-1] != 4:
        raise ValueError(f"quaternion_matrices: argument 'quaternions' has shape {q.shape}; expected (..., 4)")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if not np.all(np.isfinite(norm)) or np.any(norm == 0):
        raise ValueError("quaternion_matrices: argument 'quaternions' must be finite and nonzero")
    w, x, y, z = np.moveaxis(q / norm, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def random_rotations(rng: np.random.Generator, count: int, rotation_chunk: int = 1) -> np.ndarray:
    """Haar-random rotations for ``count`` images, float64 (count, 3, 3).

    One rotation is drawn per ``rotation_chunk`` consecutive images (1: one per
    image; the original rotated spherical MNIST uses 500), i.e. ceil(count / k)
    rotations, each repeated k times (the last chunk may be shorter). The result
    depends only on the generator's state, count and k.
    """
    func = "random_rotations"
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{func}: argument 'rng' must be a numpy.random.Generator, got {type(rng).__name__}")
    count = checks.integer(func, "count", count, minimum=0)
    rotation_chunk = checks.integer(func, "rotation_chunk", rotation_chunk, minimum=1)
    distinct = -(-count // rotation_chunk)
    matrices = quaternion_matrices(rng.standard_normal((distinct, 4)))
    return np.repeat(matrices, rotation_chunk, axis=0)[:count]
