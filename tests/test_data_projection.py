"""Projection of planar images onto the sphere (Cohen et al. 2018) and random
rotations: geometry from the formulas, an independent NumPy/SciPy reference, and
the spectral rotation of sphcnn_kernels."""

import numpy as np
import pytest
from scipy import ndimage

import sphcnn_kernels as sk
from sphcnn.tasks.mnist.projection import grid_points, project, sample
from sphcnn.tasks.mnist.rotations import random_rotations
from sphcnn.tasks.mnist.rotations import quaternion_matrices

EYE = np.array([0.0, 0.0, 1.0 + 1e-3])


def rz(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def ry(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def reference(images, points):
    """Independent float64 reference: projection from EYE onto z = -1, then
    scipy's bilinear interpolation with zeros outside (mode 'grid-constant'),
    zero on the northern hemisphere. images (N, 28, 28), points (N, M, 3)."""
    t = (-1.0 - EYE[2]) / (points[..., 2] - EYE[2])
    x, y = t * points[..., 0], t * points[..., 1]
    col = (x + 1.5) * 28 / 3 - 0.5
    row = (1.5 - y) * 28 / 3 - 0.5
    out = np.stack(
        [
            ndimage.map_coordinates(image.astype(np.float64), [r, c], order=1, mode="grid-constant", cval=0.0)
            for image, r, c in zip(images, row, col)
        ]
    )
    return np.where(points[..., 2] <= 0, out, 0.0)


def reference_s2cnn(images, points):
    """Independent float64 reference of the "s2cnn" sampler before its rescaling:
    four times the bilinear interpolation on the lattice of pixels two apart,
    {i - 1, i + 1} x {j - 1, j + 1} around (u, v), i = trunc(u), j = trunc(v),
    with u = (x + 1.5) 28 / 3 along the image rows and v likewise from y along
    the columns; pixels outside the image read 0. images (N, 28, 28), points (N, M, 3)."""
    t = (-1.0 - EYE[2]) / (points[..., 2] - EYE[2])
    u, v = (t * points[..., 0] + 1.5) * 28 / 3, (t * points[..., 1] + 1.5) * 28 / 3
    i, j = np.trunc(u).astype(int), np.trunc(v).astype(int)
    a, b = (u - (i - 1)) / 2, (v - (j - 1)) / 2  # position between the lattice points, in [0.5, 1)
    padded = np.pad(images.astype(np.float64), ((0, 0), (2, 2), (2, 2)))  # zeros outside, index + 2

    def pixel(rows, cols):
        inside = (rows >= -2) & (rows < 30) & (cols >= -2) & (cols < 30)
        return np.where(inside, padded[np.arange(len(images))[:, None], np.clip(rows + 2, 0, 31),
                                       np.clip(cols + 2, 0, 31)], 0.0)

    value = 4 * ((1 - a) * (1 - b) * pixel(i - 1, j - 1) + a * (1 - b) * pixel(i + 1, j - 1)
                 + (1 - a) * b * pixel(i - 1, j + 1) + a * b * pixel(i + 1, j + 1))
    return np.where(points[..., 2] <= 0, value, 0.0)


def rescaled_s2cnn(values):
    """The s2cnn sampler's per-image rescaling to 0..255 and truncation."""
    low, high = values.min(axis=1, keepdims=True), values.max(axis=1, keepdims=True)
    return np.floor((values - low) / (high - low) * 255)


def blob(row, col, sigma, size=28):
    r, c = np.mgrid[0:size, 0:size]
    return np.rint(255 * np.exp(-((r - row) ** 2 + (c - col) ** 2) / (2 * sigma**2))).astype(np.uint8)


def test_grid_points_follow_sphcnn_grid():
    n = 8
    points = grid_points(n)
    theta, phi = sk.equiangular_grid(n)
    np.testing.assert_allclose(np.linalg.norm(points, axis=-1), 1.0, atol=1e-15)
    np.testing.assert_allclose(
        np.arccos(np.clip(points[..., 2], -1, 1)), np.broadcast_to(theta[:, None], (n, n)), atol=1e-7
    )
    np.testing.assert_allclose(
        points[3, :, :2] / np.sin(theta[3]), np.stack([np.cos(phi), np.sin(phi)], -1), atol=1e-15
    )


def test_centred_block_lands_on_south_pole_and_north_is_empty():
    n = 32
    image = np.zeros((28, 28), np.uint8)
    image[13:15, 13:15] = 255  # the 2 x 2 pixels around the image centre (x, y) = (0, 0)
    noise = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    out = project(np.concatenate([image[None], noise]), n)
    theta = sk.equiangular_grid(n)[0]
    assert out.dtype == np.uint8 and out.shape == (4, n, n)
    assert np.all(out[:, theta < np.pi / 2] == 0)  # nothing on the northern hemisphere, even for noise
    assert np.all(out[0, -1] == 255)  # the south pole ring (theta = pi) is the image centre
    # centred: the value-weighted mean direction is the south pole, and the pattern has the
    # block's symmetry under rotations by pi/2 about z (a shift of n/4 in longitude)
    mean = np.einsum("jk,jkc->c", out[0].astype(float), grid_points(n))
    np.testing.assert_allclose(mean / np.linalg.norm(mean), [0.0, 0.0, -1.0], atol=1e-6)
    assert np.abs(out[0].astype(int) - np.roll(out[0], n // 4, axis=1)).max() <= 1


def test_image_centre_maps_to_theta_pi():
    images = np.random.default_rng(1).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    values = sample(images, np.tile([[[0.0, 0.0, -1.0]]], (5, 1, 1)))
    np.testing.assert_allclose(values[:, 0], images[:, 13:15, 13:15].mean(axis=(1, 2)), atol=1e-4)


def test_off_centre_pixel_lands_at_expected_angles():
    row, col = 5, 20
    x, y = -1.5 + 3 * (col + 0.5) / 28, 1.5 - 3 * (row + 0.5) / 28  # x > 0, y > 0: first quadrant
    # The sphere point on the ray from EYE through (x, y, -1): |EYE + s d| = 1, the far root.
    d = np.array([x, y, -1.0]) - EYE
    a, b, c = d @ d, 2 * EYE @ d, EYE @ EYE - 1
    p = EYE + (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a) * d
    theta_expected, phi_expected = np.arccos(p[2]), np.arctan2(y, x)
    assert p[2] < 0 and 0 < phi_expected < np.pi / 2
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, row, col] = 255
    assert sample(image, p[None, None])[0, 0] == pytest.approx(255, abs=1e-3)
    n = 64
    out = project(image, n)[0]
    j, k = np.unravel_index(np.argmax(out), out.shape)
    theta, phi = sk.equiangular_grid(n)
    assert out[j, k] > 0
    assert abs(theta[j] - theta_expected) <= np.pi / (n - 1)
    assert abs(phi[k] - phi_expected) <= 2 * np.pi / n


def test_canonical_matches_independent_reference():
    n = 48
    images = np.random.default_rng(2).integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    expected = np.rint(reference(images, np.broadcast_to(grid_points(n).reshape(1, -1, 3), (6, n * n, 3))))
    got = project(images, n).reshape(6, -1)
    # float32 geometry: values differ from the float64 reference by < 1e-3, so rounding
    # can differ by 1 where the reference is within 1e-3 of a half-integer (rare)
    difference = np.abs(got - expected)
    assert difference.max() <= 1 and np.mean(difference > 0) < 1e-3


def test_rotated_samples_equal_canonical_function_at_inverse_rotated_points():
    n = 48
    rng = np.random.default_rng(3)
    images = np.stack([blob(10.0, 16.0, 3.0), blob(18.0, 9.0, 2.0)] + list(rng.integers(0, 256, (2, 28, 28))))
    images = images.astype(np.uint8)
    rotations = random_rotations(rng, len(images))
    points = np.einsum("mi,bij->bmj", grid_points(n).reshape(-1, 3), rotations)  # R_b^T p_m
    expected = np.rint(reference(images, points))
    got = project(images, n, rotations).reshape(len(images), -1)
    difference = np.abs(got - expected)  # rounding ties only, as in the canonical test
    assert difference.max() <= 1 and np.mean(difference > 0) < 1e-3
    # the identity rotation reproduces the canonical projection (up to the same ties)
    identity = project(images, n, np.broadcast_to(np.eye(3), (len(images), 3, 3)))
    assert np.abs(identity.astype(int) - project(images, n)).max() <= 1


@pytest.mark.parametrize("seed", [0, 1])
def test_rotated_projection_matches_spectral_rotation(seed):
    # f: the canonical projection of a smooth off-centre blob; g: its rotated-mode
    # projection by R = R_z(alpha) R_y(beta) R_z(gamma). sk.rotate of the coefficients of
    # f gives f(R^-1 x) for the band-limited part of f (ell_max = n/2 - 1 = 31), so the
    # difference to g is the part of f and g above the band limit (bilinear kinks, the
    # uint8 rounding; ~0.6 % here). Tolerance: 1.5 x the measured out-of-band
    # residuals e_f + e_g; a rotation in the wrong direction gives 0.3 to 1.4.
    n = 64
    rng = np.random.default_rng(seed)
    alpha, beta, gamma = rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
    rotation = rz(alpha) @ ry(beta) @ rz(gamma)
    image = blob(11.0, 16.0, 3.0)[None]
    f = project(image, n)[0].astype(np.float64)[..., None, None]
    g = project(image, n, rotation[None])[0].astype(np.float64)[..., None, None]
    weights = sk.quadrature_weights(n)[:, None, None, None]

    def norm(x):
        return np.sqrt(np.sum(weights * np.abs(x) ** 2))

    def band_limited(x):
        return np.asarray(sk.inverse(sk.forward(x, (0,)), (0,))).real

    rotated = np.asarray(sk.inverse(sk.rotate(sk.forward(f, (0,)), alpha, beta, gamma, (0,)), (0,))).real
    e_f, e_g = norm(f - band_limited(f)) / norm(f), norm(g - band_limited(g)) / norm(g)
    error = norm(g - rotated) / norm(g)
    assert e_f + e_g < 0.02
    assert error < 1.5 * (e_f + e_g), (error, e_f, e_g)


@pytest.mark.parametrize("rotated", [False, True])
def test_s2cnn_sampler_matches_independent_reference(rotated):
    n = 48
    rng = np.random.default_rng(4)
    images = np.concatenate([blob(12.0, 17.0, 2.5)[None], rng.integers(0, 256, (3, 28, 28))]).astype(np.uint8)
    rotations = random_rotations(rng, len(images)) if rotated else np.broadcast_to(np.eye(3), (4, 3, 3))
    points = np.einsum("mi,bij->bmj", grid_points(n).reshape(-1, 3), rotations)  # R_b^T p_m
    raw = reference_s2cnn(images, points)
    # the sampler jumps where u or v is an integer (its taps move by one pixel there), e.g. at the
    # south pole (u = v = 14); float32 and float64 may fall on either side, so those points are
    # left out of the comparison
    t = (-1.0 - EYE[2]) / (points[..., 2] - EYE[2])
    u, v = (t * points[..., 0] + 1.5) * 28 / 3, (t * points[..., 1] + 1.5) * 28 / 3
    smooth = (np.abs(u - np.rint(u)) > 1e-3) & (np.abs(v - np.rint(v)) > 1e-3)
    assert smooth.mean() > 0.8  # the rest: the pole, the meridians phi = k pi / 2 of the canonical grid
    got_raw = sample(images, points, sampling="s2cnn")
    np.testing.assert_allclose(got_raw[smooth], raw[smooth], rtol=2e-4, atol=0.1)
    got = project(images, n, rotations if rotated else None, sampling="s2cnn").reshape(len(images), -1)
    # the stored values are the raw ones rescaled per image and truncated; float32 rounding can
    # move a value across an integer (a difference of 1, rarely)
    difference = np.abs(got - rescaled_s2cnn(got_raw.astype(np.float64)))
    assert difference.max() <= 1 and np.mean(difference > 0) < 2e-3
    assert np.all(got.max(axis=1) == 255) and np.all(got.min(axis=1) == 0)
    theta = sk.equiangular_grid(n)[0]
    if not rotated:
        assert np.all(got.reshape(-1, n, n)[:, theta < np.pi / 2] == 0)  # nothing on the northern hemisphere


def test_s2cnn_sampler_transposes_the_digit_and_never_reads_the_nearest_row():
    # the plane point (x, y) has image coordinates u = (x + 1.5) 28 / 3 along the rows and v along
    # the columns; at u = a + 1/2, v = b + 1/2 the taps are rows a -/+ 1 with weights 1/2, 3/2 (and
    # the same for the columns): pixel (a, b) itself is not read
    a, b = 20, 6
    x, y = 3 * (a + 0.5) / 28 - 1.5, 3 * (b + 0.5) / 28 - 1.5
    d = np.array([x, y, -1.0]) - EYE
    qa, qb, qc = d @ d, 2 * EYE @ d, EYE @ EYE - 1
    p = EYE + (-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa) * d  # sphere point whose projection is (x, y)
    cases = [((a, b), 0.0), ((a + 1, b + 1), 1.5 * 1.5), ((a - 1, b + 1), 0.5 * 1.5), ((a - 1, b - 1), 0.25),
             ((b, a), 0.0)]
    for (row, col), weight in cases:
        image = np.zeros((1, 28, 28), np.uint8)
        image[0, row, col] = 100
        assert sample(image, p[None, None], sampling="s2cnn")[0, 0] == pytest.approx(100 * weight, abs=0.05)
    # the digit lands transposed with respect to the bilinear sampler (rows along +x)
    n = 64
    out = project(blob(a, b, 1.5)[None], n, sampling="s2cnn")[0]
    j, k = np.unravel_index(np.argmax(out), out.shape)
    theta, phi = sk.equiangular_grid(n)
    assert abs(theta[j] - np.arccos(p[2])) <= 2 * np.pi / (n - 1)
    assert abs(phi[k] - np.arctan2(y, x) % (2 * np.pi)) <= 3 * 2 * np.pi / n


def test_project_argument_errors():
    images = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(ValueError, match=r"'images' has shape \(28, 28\); expected \(N, 28, 28\)"):
        project(images[0], 8)
    with pytest.raises(ValueError, match="'images' must be uint8"):
        project(images.astype(np.float32), 8)
    with pytest.raises(ValueError, match="'n' must be an even integer >= 4"):
        project(images, 7)
    with pytest.raises(ValueError, match=r"'rotations' has shape \(3, 3, 3\)"):
        project(images, 8, np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="'rotations' must hold proper rotation matrices"):
        project(images, 8, np.stack([np.eye(3), -np.eye(3)]))
    with pytest.raises(ValueError, match=r"'points' has shape \(2, 3\)"):
        sample(images, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="'sampling' must be one of 'bilinear', 's2cnn', got 'nearest'"):
        project(images, 8, sampling="nearest")
    with pytest.raises(ValueError, match="'sampling' must be one of 'bilinear', 's2cnn', got 'nearest'"):
        sample(images, np.tile([[[0.0, 0.0, -1.0]]], (2, 1, 1)), sampling="nearest")
    assert project(images[:0], 8).shape == (0, 8, 8)


def test_random_rotations_are_proper_deterministic_and_chunked():
    rotations = random_rotations(np.random.default_rng(7), 10, rotation_chunk=3)
    np.testing.assert_allclose(
        np.einsum("bji,bjk->bik", rotations, rotations), np.broadcast_to(np.eye(3), (10, 3, 3)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)
    np.testing.assert_array_equal(rotations, random_rotations(np.random.default_rng(7), 10, rotation_chunk=3))
    for start in (0, 3, 6):
        assert np.all(rotations[start : start + 3] == rotations[start])
    assert len({rotations[i].tobytes() for i in (0, 3, 6, 9)}) == 4
    one_each = random_rotations(np.random.default_rng(7), 4)
    np.testing.assert_array_equal(one_each, rotations[[0, 3, 6, 9]])  # the same stream, one draw per chunk
    assert random_rotations(np.random.default_rng(7), 0).shape == (0, 3, 3)


def test_random_rotations_are_haar_distributed():
    # Haar moments: E[R] = 0, E[tr R] = 0, E[(tr R)^2] = 1 (the character of the
    # 3-d representation has norm 1), R_zz = cos(beta) uniform on [-1, 1] (variance 1/3).
    # 20,000 samples: standard errors <= 0.01; tolerances are ~4 standard errors.
    rotations = random_rotations(np.random.default_rng(11), 20_000)
    trace = np.trace(rotations, axis1=1, axis2=2)
    assert np.abs(rotations.mean(axis=0)).max() < 0.02
    assert abs(trace.mean()) < 0.03 and abs((trace**2).mean() - 1) < 0.05
    assert abs(rotations[:, 2, 2].var() - 1 / 3) < 0.01


def test_quaternion_matrices_rotate_about_z():
    angle = 0.7
    quaternion = np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])
    np.testing.assert_allclose(quaternion_matrices(quaternion), rz(angle), atol=1e-15)
    np.testing.assert_allclose(quaternion_matrices(3 * quaternion), rz(angle), atol=1e-15)  # normalized first
    with pytest.raises(ValueError, match="'quaternions' must be finite and nonzero"):
        quaternion_matrices(np.zeros(4))


def test_random_rotations_argument_errors():
    with pytest.raises(ValueError, match="'rng' must be a numpy.random.Generator"):
        random_rotations(0, 5)
    with pytest.raises(ValueError, match="'rotation_chunk' must be >= 1"):
        random_rotations(np.random.default_rng(0), 5, rotation_chunk=0)
    with pytest.raises(ValueError, match="'count' must be an integer"):
        random_rotations(np.random.default_rng(0), 5.0)
