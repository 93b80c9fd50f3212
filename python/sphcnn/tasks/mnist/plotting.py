"""Input spheres and predictions drawn with matplotlib, in two projections.

Images are grid values ``f[j, k]`` of the n x n equiangular grid, shape
(N, n, n) (any real dtype; spherical MNIST stores uint8 0..255), with
``f[j, k]`` at colatitude theta_j = pi j / (n - 1) and longitude
phi_k = 2 pi k / n, i.e. at the unit vector
u_jk = (sin theta_j cos phi_k, sin theta_j sin phi_k, cos theta_j).
Latitude is pi/2 - theta; all angles are in radians.

Projections (``PROJECTIONS``):

- "orthographic" (default): the hemisphere centred on a point c = (lat0, lon0)
  as seen from far outside the sphere, north up (or another direction up).
  Pixel (row, column) of an R x R raster has its centre at
  x = -1 + (2 column + 1) / R (west to east), y = 1 - (2 row + 1) / R (south to
  north, row 0 on top); inside the disc x^2 + y^2 <= 1 it shows the sphere
  point p = x e_east + y e_north + sqrt(1 - x^2 - y^2) c, where
  c = (cos lat0 cos lon0, cos lat0 sin lon0, sin lat0),
  e_east = (-sin lon0, cos lon0, 0) and
  e_north = (-sin lat0 cos lon0, -sin lat0 sin lon0, cos lat0)
  (a right-handed tangent basis, defined at the poles too). With a direction
  `up` (a 3-vector), e_north is instead the unit vector of u - (u.c) c (up
  projected on the tangent plane) and e_east = e_north x c, so that u points
  to the top of the disc. The value at p is the bilinear interpolation of the
  grid in (theta, phi), periodic in phi, computed at each pixel (no cells are
  drawn, so no seams come from the drawing); pixels outside the disc are NaN
  (drawn transparent). The default centre is each image's centre of mass
  (:func:`center_of_mass`), so a digit anywhere on the sphere, e.g. around
  the south pole, is drawn face-on in the middle of its disc; `sphcnn plot`
  also passes each digit's up direction (SphericalMnist.up_directions), so
  that it is drawn upright. A step in the data stays a step: the "s2cnn"
  sampler (sphcnn.tasks.mnist.projection) changes its taps along the lines
  x = 0 and y = 0 of the image plane, which cross at the south pole, and its
  digits show these edges there.
  The view is from outside the sphere (view "outside") or, mirrored left to
  right, from its centre (view "inside", east on the left): spherical MNIST
  puts digits on the sphere as seen from inside (see sphcnn.tasks.mnist.projection),
  so they read the right way round only in the inside view, the default of
  :func:`plot_spheres`.
- "mollweide": the whole sphere, latitude pi/2 - theta against longitude phi
  wrapped to [-pi, pi), one grid cell per sample. Equal-area, but a pattern
  near a pole is stretched along the map's top or bottom edge.
"""

from __future__ import annotations

import numpy as np

import sphcnn_kernels
from sphcnn.errors import MissingPackage
from sphcnn_kernels import validation as checks

PROJECTIONS = ("orthographic", "mollweide")
VIEWS = ("inside", "outside")
ORTHOGRAPHIC_OVERSAMPLING = 4  # default raster: R = 4 n pixels across the disc


def _grid_image(func: str, name: str, image) -> np.ndarray:
    """One finite real image (n, n), n an even grid size, as float64."""
    array = np.asarray(image)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"{func}: argument '{name}' must be one grid image (n, n), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{func}: argument '{name}' must be real (integer or float), got dtype {array.dtype}")
    checks.grid_size(func, f"{name}.shape[0]", array.shape[0])
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{func}: argument '{name}' must hold finite values, got NaN or infinity")
    return array


def _grid_vectors(n: int) -> np.ndarray:
    """Unit vectors u_jk of the n x n grid, float64 (n, n, 3)."""
    theta, phi = sphcnn_kernels.equiangular_grid(n)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)


def center_of_mass(image) -> tuple[float, float]:
    """The direction of the centre of mass of a non-negative grid image.

    image: (n, n), real, f[j, k] >= 0 at (theta_j, phi_k). With q_j the ring
    quadrature weights (``sphcnn_kernels.quadrature_weights(n)``, the integral
    of f being sum_j q_j mean_k f_jk) and u_jk the unit vector of grid point
    (theta_j, phi_k), the centre of mass is

        v = sum_jk q_j f_jk u_jk    (the quadrature of the integral of f(u) u),

    and the result is its direction as (lat, lon) in radians:
    lat = atan2(v_z, sqrt(v_x^2 + v_y^2)) in [-pi/2, pi/2],
    lon = atan2(v_y, v_x) in (-pi, pi]. lon is 0 when v is along the z axis
    (|(v_x, v_y)| <= 1e-12 |v|), and the result is (0, 0) when the image is
    all zero or v vanishes (|v| <= 1e-12 sum_jk q_j f_jk, e.g. a constant image).
    """
    func = "center_of_mass"
    f = _grid_image(func, "image", image)
    if np.any(f < 0):
        raise ValueError(
            f"{func}: argument 'image' must be non-negative (a mass distribution), got minimum {f.min():g}"
        )
    weighted = f * sphcnn_kernels.quadrature_weights(f.shape[0])[:, None]
    mass = weighted.sum()
    v = np.einsum("jk,jkc->c", weighted, _grid_vectors(f.shape[0]))
    norm = np.linalg.norm(v)
    if mass <= 0 or norm <= 1e-12 * mass:
        return 0.0, 0.0
    horizontal = np.hypot(v[0], v[1])
    lat = float(np.arctan2(v[2], horizontal))
    lon = float(np.arctan2(v[1], v[0])) if horizontal > 1e-12 * norm else 0.0
    return lat, lon


def _center(func: str, name: str, value) -> tuple[float, float]:
    """A point (lat, lon) in radians: two finite numbers, |lat| <= pi/2."""
    try:
        pair = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        pair = None
    if pair is None or pair.shape != (2,) or isinstance(value, str):
        raise ValueError(f"{func}: argument '{name}' must be a point (lat, lon) in radians, got {value!r}")
    if not np.all(np.isfinite(pair)) or abs(pair[0]) > np.pi / 2 + 1e-12:
        raise ValueError(
            f"{func}: argument '{name}' must be (lat, lon) in radians with finite values and "
            f"-pi/2 <= lat <= pi/2, got {value!r}"
        )
    return float(np.clip(pair[0], -np.pi / 2, np.pi / 2)), float(pair[1])


def _direction(func: str, name: str, value) -> np.ndarray:
    """A direction: three finite numbers, not all zero, as a unit vector float64 (3,)."""
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        vector = None
    if vector is None or vector.shape != (3,) or isinstance(value, str):
        raise ValueError(f"{func}: argument '{name}' must be a direction (x, y, z), got {value!r}")
    norm = np.linalg.norm(vector)
    if not (np.all(np.isfinite(vector)) and norm > 0):
        raise ValueError(f"{func}: argument '{name}' must be a finite nonzero direction (x, y, z), got {value!r}")
    return vector / norm


def orthographic_frame(center, up=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centre of a view and the tangent basis there.

    Args:
        center: (lat0, lon0) in radians.
        up: None (north up) or a direction (x, y, z), not parallel to the
            centre, that points to the top of the view.

    Returns:
        (c, e_east, e_north), float64 (3,) each (module docstring).
    """
    func = "orthographic_frame"
    lat, lon = _center(func, "center", center)
    c = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    if up is None:
        east = np.array([-np.sin(lon), np.cos(lon), 0.0])
        north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
        return c, east, north
    u = _direction(func, "up", up)
    tangent = u - (u @ c) * c
    if np.linalg.norm(tangent) < 1e-6:
        raise ValueError(f"{func}: argument 'up' must not be parallel to the centre of the view "
                         f"(lat {np.degrees(lat):.1f}, lon {np.degrees(lon):.1f} degrees), got {up!r}; pass a "
                         "direction across the view, or None for north up")
    north = tangent / np.linalg.norm(tangent)
    return c, np.cross(north, c), north


def sample_grid(image, points) -> np.ndarray:
    """Bilinear interpolation of a grid image in (theta, phi) at points of the sphere.

    image: (n, n) real; points: float (..., 3), unit vectors. Returns float64
    (...): with t = theta (n - 1) / pi and s = phi n / (2 pi) of each point,
    the interpolation between rings j0 = min(floor(t), n - 2) and j0 + 1
    (theta clamped to [0, pi]) and longitudes k0 = floor(s) mod n and
    (k0 + 1) mod n (periodic in phi).
    """
    func = "sample_grid"
    f = _grid_image(func, "image", image)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 1 or points.shape[-1] != 3:
        raise ValueError(f"{func}: argument 'points' must have shape (..., 3), got {points.shape}")
    n = f.shape[0]
    theta = np.arccos(np.clip(points[..., 2], -1.0, 1.0))
    phi = np.arctan2(points[..., 1], points[..., 0])
    t = theta * (n - 1) / np.pi
    j0 = np.clip(np.floor(t), 0, n - 2).astype(np.intp)
    ft = np.clip(t - j0, 0.0, 1.0)
    s = np.mod(phi, 2 * np.pi) * n / (2 * np.pi)
    s_floor = np.floor(s)
    fs = s - s_floor
    k0 = s_floor.astype(np.intp) % n
    k1 = (k0 + 1) % n
    return ((1 - ft) * ((1 - fs) * f[j0, k0] + fs * f[j0, k1])
            + ft * ((1 - fs) * f[j0 + 1, k0] + fs * f[j0 + 1, k1]))


def orthographic_points(center, resolution: int, up=None) -> tuple[np.ndarray, np.ndarray]:
    """Sphere points of an R x R orthographic raster centred on `center` (lat, lon),
    `up` (None: north) to the top.

    Returns (points float64 (R, R, 3), inside bool (R, R)): pixel centres and
    p = x e_east + y e_north + sqrt(1 - x^2 - y^2) c as in the module docstring;
    points outside the disc (inside False) are NaN.
    """
    resolution = checks.positive_int("orthographic_points", "resolution", resolution)
    c, east, north = orthographic_frame(center, up)
    coordinate = -1.0 + (2.0 * np.arange(resolution) + 1.0) / resolution
    x, y = np.meshgrid(coordinate, coordinate[::-1])
    rho2 = x * x + y * y
    inside = rho2 <= 1.0
    z = np.sqrt(np.where(inside, 1.0 - rho2, np.nan))
    points = x[..., None] * east + y[..., None] * north + z[..., None] * c
    return points, inside


def orthographic(image, center=None, resolution: int | None = None, view: str = "outside",
                 up=None) -> np.ndarray:
    """Orthographic view of a grid image: float64 (R, R), NaN outside the disc.

    image: (n, n) real; center: (lat, lon) in radians, or None for the image's
    :func:`center_of_mass`; resolution: R, default ORTHOGRAPHIC_OVERSAMPLING n;
    view: "outside" (row 0 the top (north) edge, column 0 the left (west) edge)
    or "inside" (the same mirrored: column 0 the east edge); up: None (north
    up) or a direction (x, y, z) drawn to the top (module docstring).
    """
    func = "orthographic"
    view = checks.choice(func, "view", view, VIEWS)
    f = _grid_image(func, "image", image)
    center = center_of_mass(f) if center is None else _center(func, "center", center)
    if resolution is None:
        resolution = ORTHOGRAPHIC_OVERSAMPLING * f.shape[0]
    resolution = checks.positive_int(func, "resolution", resolution)
    points, inside = orthographic_points(center, resolution, up)
    values = np.full((resolution, resolution), np.nan)
    values[inside] = sample_grid(f, points[inside])
    return values[:, ::-1] if view == "inside" else values


def _centers(func: str, centers, images: np.ndarray) -> list[tuple[float, float]]:
    """One (lat, lon) per image: centres of mass, one shared point, or one point each."""
    count = len(images)
    if centers is None:
        return [center_of_mass(image) for image in images]
    if isinstance(centers, str):
        raise ValueError(f"{func}: argument 'centers' must be None, (lat, lon) or a list of {count} (lat, lon), "
                         f"got {centers!r}")
    try:
        shape = np.shape(np.asarray(centers, dtype=np.float64))
    except (TypeError, ValueError):
        shape = None
    if shape == (2,):
        return [_center(func, "centers", centers)] * count
    if shape == (count, 2):
        return [_center(func, f"centers[{i}]", point) for i, point in enumerate(centers)]
    raise ValueError(
        f"{func}: argument 'centers' must be None (each image's centre of mass), one (lat, lon) for all images "
        f"or a list of {count} (lat, lon) in radians, one per image; got {centers!r}"
    )


def _ups(func: str, up, count: int) -> list:
    """One up direction (or None: north) per image: None, one direction shared, or one each."""
    if up is None:
        return [None] * count
    try:
        shape = None if isinstance(up, str) else np.shape(np.asarray(up, dtype=np.float64))
    except (TypeError, ValueError):
        shape = None
    if shape == (3,):
        return [_direction(func, "up", up)] * count
    if shape == (count, 3):
        return [_direction(func, f"up[{i}]", direction) for i, direction in enumerate(up)]
    raise ValueError(f"{func}: argument 'up' must be None (north up), one direction (x, y, z) for all images or "
                     f"one per image ({count}, 3); got shape {shape}")


def plot_spheres(images, path, titles: list[str] | None = None, columns: int = 4,
                 projection: str = "orthographic", centers=None, view: str = "inside", up=None) -> None:
    """Save a grid of sphere plots of images (N, n, n) to a PNG at `path`.

    titles: None or one string per image; columns: panels per row;
    projection: "orthographic" (default: one disc per image, centred on
    `centers`, the centre written under the disc in degrees) or "mollweide";
    centers (orthographic only): None (each image's centre of mass), one
    (lat, lon) in radians for all images, or a list of N (lat, lon); view
    (orthographic only): "inside" (default: spherical MNIST digits read the
    right way round) or "outside"; up (orthographic only): None (north up),
    one direction (x, y, z) drawn to the top of every disc, or one per image
    (N, 3), e.g. each digit's up (SphericalMnist.up_directions). Grayscale,
    each image scaled to its own minimum and maximum.
    """
    func = "plot_spheres"
    projection = checks.choice(func, "projection", projection, PROJECTIONS)
    view = checks.choice(func, "view", view, VIEWS)
    columns = checks.positive_int(func, "columns", columns)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Circle
    except ImportError:
        raise MissingPackage("sphcnn plot needs matplotlib: pip install 'sphcnn[plot]'") from None
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"plot_spheres: images must be (N, n, n), got shape {images.shape}")
    count, n, _ = images.shape
    if count == 0:
        raise ValueError(f"{func}: argument 'images' must hold at least one image, got shape {images.shape}")
    if titles and len(titles) != count:
        raise ValueError(f"{func}: argument 'titles' must hold one title per image ({count}), got {len(titles)}")
    for name, value in (("centers", centers), ("up", up)):
        if projection == "mollweide" and value is not None:
            raise ValueError(f"{func}: argument '{name}' applies to the orthographic projection only, "
                             f"got {value!r} with projection 'mollweide'")
    rows = (count + columns - 1) // columns
    if projection == "mollweide":
        theta = np.pi * np.arange(n) / (n - 1)
        phi = (2 * np.pi * np.arange(n) / n + np.pi) % (2 * np.pi) - np.pi
        order = np.argsort(phi)
        lon, lat = np.meshgrid(phi[order], np.pi / 2 - theta)
        figure = plt.figure(figsize=(3.2 * columns, 2.0 * rows))
        for i in range(count):
            axis = figure.add_subplot(rows, columns, i + 1, projection="mollweide")
            axis.pcolormesh(lon, lat, images[i][:, order], shading="nearest", cmap="gray")
            axis.set_xticklabels([])
            axis.set_yticklabels([])
            axis.grid(True, alpha=0.3)
            if titles:
                axis.set_title(titles[i], fontsize=9)
    else:
        checks.grid_size(func, "images.shape[1]", n)
        points = _centers(func, centers, images)
        directions = _ups(func, up, count)
        figure = plt.figure(figsize=(2.6 * columns, 2.9 * rows))
        for i in range(count):
            axis = figure.add_subplot(rows, columns, i + 1)
            low, high = images[i].min(), images[i].max()
            axis.imshow(orthographic(images[i], points[i], view=view, up=directions[i]), extent=(-1, 1, -1, 1),
                        origin="upper", cmap="gray", vmin=low, vmax=high if high > low else low + 1,
                        interpolation="antialiased")
            axis.add_patch(Circle((0, 0), 1.0, fill=False, linewidth=0.8, edgecolor="0.4"))
            axis.set_xlim(-1.03, 1.03)
            axis.set_ylim(-1.03, 1.03)
            axis.set_aspect("equal")
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_frame_on(False)
            lat, lon = np.degrees(points[i])
            axis.set_xlabel(f"centre lat {lat:+.0f}\N{DEGREE SIGN}, lon {lon:+.0f}\N{DEGREE SIGN}", fontsize=7)
            if titles:
                axis.set_title(titles[i], fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
