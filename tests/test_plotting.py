"""Plots of input spheres: centre of mass, the orthographic sampler and plot_spheres.

References are computed here independently: grid points and bumps from their
analytic formulas, the orthographic frame from rotation matrices, values of
analytic functions at the sphere points of the pixels.
"""

import numpy as np
import pytest

from sphcnn.tasks.mnist import plotting

N = 64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def grid_vectors(n):
    theta = np.pi * np.arange(n) / (n - 1)
    phi = 2 * np.pi * np.arange(n) / n
    t, p = np.meshgrid(theta, phi, indexing="ij")
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)


def unit(theta, phi):
    return np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])


def direction(lat, lon):
    return np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def angle(u, v):
    return float(np.arctan2(np.linalg.norm(np.cross(u, v)), np.dot(u, v)))


def rotation_frame(lat, lon):
    """(c, east, north): the images of x, y, z under Rz(lon) Ry(-lat)."""
    rz = np.array([[np.cos(lon), -np.sin(lon), 0], [np.sin(lon), np.cos(lon), 0], [0, 0, 1]])
    ry = np.array([[np.cos(-lat), 0, np.sin(-lat)], [0, 1, 0], [-np.sin(-lat), 0, np.cos(-lat)]])
    r = rz @ ry
    return r[:, 0], r[:, 1], r[:, 2]


# ---------------------------------------------------------------- center_of_mass


@pytest.mark.parametrize("j, k", [(1, 0), (10, 5), (31, 40), (50, 63), (62, 17)])
def test_center_of_mass_of_one_grid_point_is_that_point(j, k):
    image = np.zeros((N, N), np.uint8)
    image[j, k] = 200
    lat, lon = plotting.center_of_mass(image)
    assert angle(direction(lat, lon), grid_vectors(N)[j, k]) < 1e-12
    assert -np.pi / 2 <= lat <= np.pi / 2 and -np.pi < lon <= np.pi


@pytest.mark.parametrize("theta, phi", [(0.9, 0.3), (2.8, 4.0), (1.7, 6.2), (0.2, 2.5)])
def test_center_of_mass_of_a_band_limited_bump_is_exact(theta, phi):
    # ((1 + u.d) / 2)^20 is symmetric about d and of degree 20: with u it has degree 21 <= n - 2, so the
    # quadrature integrates f(u) u exactly and the direction is d up to rounding. Unweighted sums would not.
    d = unit(theta, phi)
    image = ((1 + grid_vectors(N) @ d) / 2) ** 20
    lat, lon = plotting.center_of_mass(image)
    assert angle(direction(lat, lon), d) < 1e-10


@pytest.mark.parametrize("theta, phi", [(0.9, 0.3), (2.8, 4.0), (1.2, 5.5)])
def test_center_of_mass_of_a_narrow_bump_is_within_its_width(theta, phi):
    # A bump of width ~1 / sqrt(kappa) = 0.06 rad (about one grid spacing, pi / 63 = 0.05): not band-limited,
    # so the quadrature is approximate; the centre must still lie well within the bump.
    kappa = 300.0
    d = unit(theta, phi)
    image = np.exp(kappa * (grid_vectors(N) @ d - 1))
    lat, lon = plotting.center_of_mass(image)
    assert angle(direction(lat, lon), d) < 0.1 / np.sqrt(kappa)


def test_center_of_mass_of_a_rotation_symmetric_image_is_a_pole():
    theta = np.pi * np.arange(N) / (N - 1)
    south_cap = np.where(theta > 2.6, 255, 0)[:, None] * np.ones(N)
    north_band = np.where((theta > 0.3) & (theta < 0.7), 1.0, 0.0)[:, None] * np.ones(N)
    lopsided = (2 + np.cos(theta) + np.cos(theta) ** 2)[:, None] * np.ones(N)  # more mass north
    for image, sign in ((south_cap, -1), (north_band, 1), (lopsided, 1)):
        lat, lon = plotting.center_of_mass(image)
        assert lat == pytest.approx(sign * np.pi / 2, abs=1e-12)
        assert lon == 0.0


def test_center_of_mass_of_zeros_and_constants():
    assert plotting.center_of_mass(np.zeros((N, N), np.uint8)) == (0.0, 0.0)
    assert plotting.center_of_mass(np.full((N, N), 7.0)) == (0.0, 0.0)


def test_center_of_mass_rejects_bad_images():
    with pytest.raises(ValueError, match="'image'.*non-negative"):
        plotting.center_of_mass(-np.ones((N, N)))
    with pytest.raises(ValueError, match="'image'.*shape"):
        plotting.center_of_mass(np.ones((N, N + 1)))
    with pytest.raises(ValueError, match="'image'.*finite"):
        plotting.center_of_mass(np.full((N, N), np.nan))


# ---------------------------------------------------------------- orthographic sampler


def test_sample_grid_reproduces_grid_values_and_wraps_in_phi():
    image = np.random.default_rng(0).random((N, N))
    points = grid_vectors(N)
    np.testing.assert_allclose(plotting.sample_grid(image, points[1:-1]), image[1:-1], rtol=0, atol=1e-12)
    # Halfway between the last and the first longitude of ring 20: the mean of the two.
    midway = unit(np.pi * 20 / (N - 1), 2 * np.pi * (N - 0.5) / N)
    assert plotting.sample_grid(image, midway) == pytest.approx((image[20, -1] + image[20, 0]) / 2, abs=1e-12)
    # At a pole the longitude of the point itself picks the value of the pole ring (all equal for real data).
    assert plotting.sample_grid(image, unit(np.pi, 2 * np.pi * 3 / N)) == pytest.approx(image[-1, 3], abs=1e-12)


@pytest.mark.parametrize("lat, lon", [(0.0, 0.0), (0.4, 2.0), (-1.2, -2.5), (np.pi / 2, 0.7), (-np.pi / 2, 0.0)])
def test_orthographic_shows_the_function_at_each_pixels_sphere_point(lat, lon):
    # f(u) = u.a, sampled on the grid; bilinear interpolation in (theta, phi) of this smooth function errs by at
    # most (h_theta^2 |f_theta theta| + h_phi^2 |f_phi phi|) / 8 <= (h_theta^2 + h_phi^2) |a| / 8, about 1.5e-3.
    a = np.array([0.3, -0.5, 0.8])
    a /= np.linalg.norm(a)
    image = grid_vectors(N) @ a
    tolerance = ((np.pi / (N - 1)) ** 2 + (2 * np.pi / N) ** 2) / 8
    resolution = 101
    view = plotting.orthographic(image, (lat, lon), resolution)
    assert view.shape == (resolution, resolution) and view.dtype == np.float64

    coordinate = -1 + (2 * np.arange(resolution) + 1) / resolution
    x = coordinate[None, :]  # column: west to east
    y = coordinate[::-1, None]  # row 0 on top: north
    outside = x**2 + y**2 > 1
    assert np.all(np.isnan(view[np.broadcast_to(outside, view.shape)]))
    assert np.all(np.isfinite(view[~outside]))

    c, east, north = rotation_frame(lat, lon)
    z = np.sqrt(np.clip(1 - x**2 - y**2, 0, None))
    points = x[..., None] * east + y[..., None] * north + z[..., None] * c
    expected = points @ a
    error = np.abs(view - expected)[~outside]
    assert error.max() < tolerance
    middle = resolution // 2
    assert view[middle, middle] == pytest.approx(c @ a, abs=tolerance)


def test_orthographic_defaults_to_the_centre_of_mass_and_4n_pixels():
    d = unit(2.5, 1.0)
    image = ((1 + grid_vectors(N) @ d) / 2) ** 8 * 255
    view = plotting.orthographic(image)
    assert view.shape == (4 * N, 4 * N)
    np.testing.assert_array_equal(view, plotting.orthographic(image, plotting.center_of_mass(image), 4 * N))
    # Centred on the bump: the brightest pixels are in the middle of the disc.
    row, column = np.unravel_index(np.nanargmax(view), view.shape)
    assert abs(row - 2 * N) <= 2 and abs(column - 2 * N) <= 2


def test_orthographic_rejects_bad_centres():
    image = np.ones((N, N))
    for center in [(2.0, 0.0), (0.1,), "north", (np.nan, 0.0)]:
        with pytest.raises(ValueError, match="'center'"):
            plotting.orthographic(image, center, 16)


# ---------------------------------------------------------------- plot_spheres


@pytest.fixture
def images():
    rng = np.random.default_rng(1)
    out = np.zeros((3, N, N), np.uint8)
    for i in range(3):
        d = unit(rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi))
        out[i] = np.round(255 * ((1 + grid_vectors(N) @ d) / 2) ** 30)
    return out


@pytest.mark.parametrize("projection, centers", [
    ("orthographic", None),
    ("orthographic", (-1.0, 0.5)),
    ("orthographic", [(0.0, 0.0), (1.0, 1.0), (-np.pi / 2, 0.0)]),
    ("mollweide", None),
])
def test_plot_spheres_writes_a_png(tmp_path, images, projection, centers):
    pytest.importorskip("matplotlib")
    path = tmp_path / f"{projection}.png"
    plotting.plot_spheres(images, path, ["a", "b", "c"], columns=2, projection=projection, centers=centers)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_plot_spheres_defaults_to_orthographic(tmp_path, images, monkeypatch):
    pytest.importorskip("matplotlib")
    calls = []
    original = plotting.orthographic
    monkeypatch.setattr(plotting, "orthographic",
                        lambda *args, **kwargs: calls.append((args, kwargs)) or original(*args, **kwargs))
    plotting.plot_spheres(images, tmp_path / "default.png")
    assert len(calls) == 3
    for ((image, center), kwargs), expected in zip(calls, images):
        np.testing.assert_array_equal(image, expected)
        assert center == plotting.center_of_mass(expected)
        assert kwargs == {"view": "inside", "up": None}  # spherical MNIST digits read the right way round from inside


@pytest.mark.parametrize("kwargs, argument", [
    ({"projection": "stereographic"}, "'projection'"),
    ({"projection": None}, "'projection'"),
    ({"centers": [(0.0, 0.0), (0.1, 0.1)]}, "'centers'"),  # 2 points for 3 images
    ({"centers": (3.0, 0.0)}, "'centers'"),  # latitude beyond the pole
    ({"centers": "south"}, "'centers'"),
    ({"centers": [(0.0, 0.0), (0.0, 0.0), (0.0, np.inf)]}, r"'centers\[2\]'"),
    ({"projection": "mollweide", "centers": (0.0, 0.0)}, "'centers'"),
    ({"projection": "mollweide", "up": (0.0, 0.0, 1.0)}, "'up'"),
    ({"up": [(0.0, 0.0, 1.0)] * 2}, "'up'"),  # 2 directions for 3 images
    ({"up": (0.0, 0.0, 0.0)}, "'up'"),
    ({"up": [(0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (np.nan, 0.0, 1.0)]}, r"'up\[2\]'"),
    ({"columns": 0}, "'columns'"),
    ({"titles": ["only one"]}, "'titles'"),
])
def test_plot_spheres_rejects_bad_arguments(tmp_path, images, kwargs, argument):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=argument):
        plotting.plot_spheres(images, path, **kwargs)
    assert not path.exists()


def test_plot_spheres_rejects_bad_images(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="images"):
        plotting.plot_spheres(np.zeros((2, N, N - 1)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="'images'.*at least one"):
        plotting.plot_spheres(np.zeros((0, N, N)), tmp_path / "x.png")


def test_inside_view_is_the_outside_view_mirrored():
    rng = np.random.default_rng(5)
    image = rng.uniform(0, 1, (16, 16))
    outside = plotting.orthographic(image, (0.3, 1.1), resolution=24, view="outside")
    inside = plotting.orthographic(image, (0.3, 1.1), resolution=24, view="inside")
    np.testing.assert_array_equal(inside, outside[:, ::-1])
    with pytest.raises(ValueError, match=r"'view' must be one of 'inside', 'outside', got 'above'"):
        plotting.orthographic(image, (0.3, 1.1), resolution=24, view="above")


def test_up_points_to_the_top_of_the_view():
    # centre on the equator at lon 0 (c = x): up = y gives e_north = y and e_east = y x x = -z
    c, east, north = plotting.orthographic_frame((0.0, 0.0), up=(0.3, 2.0, 0.0))
    np.testing.assert_allclose(np.stack([c, east, north]), [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    # None keeps north up, and up = north gives the same frame
    for lat, lon in [(0.4, 2.0), (-1.2, -2.5)]:
        default = plotting.orthographic_frame((lat, lon))
        np.testing.assert_allclose(plotting.orthographic_frame((lat, lon), up=(0, 0, 1)), default, atol=1e-12)
    with pytest.raises(ValueError, match="'up' must not be parallel to the centre"):
        plotting.orthographic_frame((np.pi / 2, 0.0), up=(0.0, 0.0, 2.0))


# ---------------------------------------------------------------- digits drawn by plot_spheres


def four() -> np.ndarray:
    """A 28 x 28 '4' (uint8): it differs from its turns and its mirror image, and its bar runs through the
    image centre, which the projection puts on the south pole, across the longitude 0 where phi wraps."""
    image = np.zeros((28, 28), np.uint8)
    image[4:25, 17:20] = 255  # stem
    image[13:16, 6:23] = 255  # bar
    for row in range(4, 14):  # diagonal
        column = int(round(17 - (row - 4) * 1.1))
        image[row, max(column - 1, 0):column + 2] = 255
    return image


def ink_box(image, size: int = 28) -> np.ndarray:
    """The box around the pixels over a quarter of the maximum, resized to size x size and blurred by a
    pixel (so that the comparison tolerates the projection's distortion and the samplers' pixel steps)."""
    from scipy import ndimage

    rows, columns = np.nonzero(np.nan_to_num(image) >= 0.25 * np.nanmax(image))
    box = np.nan_to_num(image[rows.min():rows.max() + 1, columns.min():columns.max() + 1]).astype(np.float64)
    return ndimage.gaussian_filter(ndimage.zoom(box, (size / box.shape[0], size / box.shape[1]), order=1), 1.0)


def correlation(a, b) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def drawn_digit(tmp_path, monkeypatch, sampling, rotation=None):
    """(the array plot_spheres draws of the projected four(), its sphere image, its up direction): the plot's
    defaults (centre of mass, inside view) with the digit's up as `sphcnn plot` passes it."""
    from sphcnn.tasks.mnist.projection import DIGIT_UP, project

    pytest.importorskip("matplotlib")
    sphere = project(four()[None], N, None if rotation is None else rotation[None], sampling)
    up = np.asarray(DIGIT_UP[sampling]) if rotation is None else rotation @ DIGIT_UP[sampling]
    drawn, original = [], plotting.orthographic
    monkeypatch.setattr(plotting, "orthographic", lambda *args, **kwargs: drawn.append(original(*args, **kwargs))
                        or drawn[-1])
    plotting.plot_spheres(sphere, tmp_path / "four.png", up=up[None])
    assert (tmp_path / "four.png").read_bytes()[:8] == PNG_MAGIC
    return drawn[0], sphere[0], up


@pytest.mark.parametrize("sampling, rotated", [("bilinear", False), ("s2cnn", False), ("bilinear", True),
                                               ("s2cnn", True)])
def test_digits_are_drawn_centred_and_upright(tmp_path, monkeypatch, sampling, rotated):
    from sphcnn.tasks.mnist.rotations import random_rotations

    rotation = random_rotations(np.random.default_rng(7), 1)[0] if rotated else None
    view, _, _ = drawn_digit(tmp_path, monkeypatch, sampling, rotation)
    ink = np.nan_to_num(view)
    rows, columns = np.mgrid[: view.shape[0], : view.shape[1]]
    middle = (view.shape[0] - 1) / 2
    centroid = np.array([(ink * rows).sum(), (ink * columns).sum()]) / ink.sum()
    assert np.all(np.abs(centroid - middle) < 0.03 * view.shape[0]), centroid
    source = ink_box(four())
    drawn = ink_box(view)
    upright = correlation(drawn, source)
    others = {"turned 90": np.rot90(source, 1), "turned 180": np.rot90(source, 2),
              "turned 270": np.rot90(source, 3), "mirrored": source[:, ::-1]}
    assert upright > 0.8, upright
    for name, other in others.items():
        assert correlation(drawn, other) < upright - 0.3, (name, correlation(drawn, other), upright)


def test_digits_are_drawn_without_seams(tmp_path, monkeypatch):
    # Each pixel deep inside the stroke (where the digit's projected function, evaluated at the pixel's own
    # sphere point, is over 90% of white) is drawn bright: no line of background crosses the bar where it
    # runs over the south pole and the longitude where phi wraps around.
    from sphcnn.tasks.mnist.projection import sample

    view, sphere, up = drawn_digit(tmp_path, monkeypatch, "bilinear")
    points, inside = plotting.orthographic_points(plotting.center_of_mass(sphere), view.shape[0], up)
    exact = np.zeros(view.shape)
    exact[inside] = sample(four()[None], points[inside][None])[0]
    exact = exact[:, ::-1]  # the inside view
    stroke = exact > 0.9 * 255
    assert stroke.sum() > 1000
    assert np.all(view[stroke] > 0.5 * 255), np.argwhere(stroke & (view <= 0.5 * 255))[:10]
    distance = np.nan_to_num(np.linalg.norm(points[:, ::-1] - (0.0, 0.0, -1.0), axis=-1), nan=np.inf)
    assert stroke.flat[np.argmin(distance)], "the bar runs over the south pole"
