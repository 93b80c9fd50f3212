"""Molecules as spheres: the per-atom spherical input of the QM9 models.

Each atom i of a molecule sees the other atoms through one sphere of directions.
For a distance power p and an atom type (atomic number) t, its map on the n x n
equiangular grid is

    f_i^{p,t}(u) = sum_{j != i, Z_j = t} (Z_i Z_j / r_ij^p) / M_p
                   * exp(-(<d_ij, u> - 1)^2 / sigma^2)

where r_ij = |x_j - x_i| is the distance of atoms i and j (Angstrom, the
positions as given: they are not rescaled), d_ij = (x_j - x_i) / r_ij the unit
vector from atom i towards atom j, Z the atomic numbers, and

    M_p = 81 / distance_scale^p
        (81 = 9^2, the largest Z_i Z_j of QM9's atom types H, C, N, O, F, kept
        fixed whatever ``atom_types`` is; distance_scale = 0.9586... Angstrom,
        the smallest interatomic distance in QM9, so that Z_i Z_j / r_ij^p / M_p
        <= 1 on QM9),
    sigma^2 = (1 - cos(cutoff_angle))^2 / ln 20
        (the Gaussian factor equals exp(-ln 20) = 5 % at the angle cutoff_angle
        away from d_ij, and 1 at d_ij).

This is the "Coulomb-like interaction modulated by a Gaussian" representation of
Esteves, Slotine & Makadia, "Scaling Spherical CNNs", ICML 2023, and of its
reference implementation (google-research/spherical-cnn,
spherical_cnn/molecules/models.py): there too the positions are used unscaled
and the minimum pairwise distance only enters the normalization, as
max(atom_types)^2 / min_distance^p (81 / min_distance^p for QM9's types). The
maps are smooth but not band-limited.

Grid: theta_j = pi j / (n - 1) (both poles), phi_k = 2 pi k / n, unit vectors
u_jk = (sin theta_j cos phi_k, sin theta_j sin phi_k, cos theta_j), as
:func:`sphcnn_kernels.equiangular_grid`.

Shapes: positions (..., max_atoms, 3) float32 or float64, charges
(..., max_atoms) integer atomic numbers with 0 for padding slots (anywhere in the
atom axis). :func:`molecule_to_spheres` returns

    spheres (..., max_atoms, n, n, 1, len(powers) * len(atom_types)),
            dtype of the positions, channel p_index * len(atom_types) + t_index,
            the spatial layout (lat, lon, spin, channel) of sphcnn with one spin-0
            entry; exact zeros for padding slots;
    mask    (..., max_atoms) bool, True for real atoms (charge > 0).

Padding slots never reach a real atom's sphere and their positions may hold
anything: they are replaced by zeros before any arithmetic, and the square root,
division and power of every masked pair (padding, or an atom with itself) see
the safe value 1 (a ``where`` before and after, so that gradients stay finite
too). Values and gradients are free of NaN whatever the padding holds. Real
atoms must sit at distinct positions.

Symmetry: featurizing the positions R x_i (R orthogonal, reflections included)
gives the maps f_i(R^T u): the spheres rotate with the molecule. For training,
:func:`random_rotations` draws Haar-distributed elements of O(3) and
:func:`rotate_positions` applies them, one matrix per molecule::

    key, sub = jax.random.split(key)
    matrices = random_rotations(sub, positions.shape[0])
    spheres, mask = molecule_to_spheres(rotate_positions(positions, matrices), charges)

Memory: per molecule the Gaussian factors of all (i, j) pairs are computed once
over the grid, (max_atoms, max_atoms, n^2), and contracted over j with the
per-pair weights (max_atoms, max_atoms, channels); the product of pairs, grid
points and channels is never formed. Measured on CPU for 16 molecules at n = 32,
float32: 71 MB of XLA temporaries (the Gaussian factors, 53 MB) plus the 18 MB
result, against 550 MB for the pair x grid x channel product.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from sphcnn_kernels import validation as checks
from sphcnn_kernels import equiangular_grid

__all__ = [
    "DISTANCE_SCALE",
    "QM9_ATOM_TYPES",
    "QM9_MAX_ATOMS",
    "molecule_to_spheres",
    "random_rotations",
    "rotate_positions",
]

QM9_ATOM_TYPES: tuple[int, ...] = (1, 6, 7, 8, 9)
"""Atomic numbers in QM9: H, C, N, O, F."""

QM9_MAX_ATOMS: int = 29
"""Most atoms in a QM9 molecule (hydrogens included)."""

DISTANCE_SCALE: float = 0.9586065591971576
"""Smallest interatomic distance in QM9, Angstrom (as in the reference implementation)."""

_CHARGE_PRODUCT_SCALE = 81.0  # 9^2: the largest Z_i Z_j of QM9's atom types.
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------- checks

def _is_real_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _powers(func: str, value) -> tuple[float, ...]:
    return checks.distinct_values(func, "powers", value, items="finite real numbers >= 0", noun="distance power",
                                  valid=lambda p: _is_real_number(p) and math.isfinite(p) and p >= 0, convert=float)


def _atom_types(func: str, value) -> tuple[int, ...]:
    return checks.distinct_values(func, "atom_types", value, items="atomic numbers (integers >= 1)",
                                  noun="atomic number", convert=int,
                                  valid=lambda t: isinstance(t, numbers.Integral) and not isinstance(t, bool) and t >= 1)


def _positive_real(func: str, name: str, value) -> float:
    if not _is_real_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{func}: argument '{name}' must be a finite real number > 0, got {value!r}")
    return float(value)


def _cutoff(func: str, value) -> float:
    if not _is_real_number(value) or not math.isfinite(value) or not 0 < value <= math.pi:
        raise ValueError(f"{func}: argument 'cutoff_angle' must be an angle in (0, pi] radians, got {value!r}")
    return float(value)


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_values(func: str, positions: ArrayLike, charges: ArrayLike, atom_types: tuple[int, ...]) -> None:
    """Value checks on concrete inputs (skipped under jit, vmap and grad)."""
    z = np.asarray(charges)
    allowed = np.asarray((0,) + atom_types)
    bad = ~np.isin(z, allowed)
    if bad.any():
        raise ValueError(f"{func}: argument 'charges' must hold 0 (padding) or atomic numbers of atom_types "
                         f"{atom_types}, got {sorted(set(z[bad].tolist()))[:10]}")
    real = z > 0
    x = np.where(real[..., None], np.asarray(positions, dtype=np.float64), 0.0)  # padding may hold anything
    if not np.isfinite(x).all():
        raise ValueError(f"{func}: argument 'positions' must be finite for real atoms (charge > 0); "
                         f"got NaN or infinite coordinates")
    # Real atoms at one point have no direction between them and an infinite interaction.
    r2 = np.sum((x[..., None, :, :] - x[..., :, None, :]) ** 2, axis=-1)
    pairs = real[..., None, :] & real[..., :, None] & ~np.eye(z.shape[-1], dtype=bool)
    if (pairs & (r2 == 0)).any():
        raise ValueError(f"{func}: argument 'positions' places two real atoms (charge > 0) of one molecule at the "
                         "same point; expected distinct positions")


# --------------------------------------------------------------------------- featurization

@functools.lru_cache(maxsize=16)
def _grid_vectors(n: int) -> np.ndarray:
    """Unit vectors of the n x n grid, float64 (3, n * n), flattened lat-major."""
    theta, phi = equiangular_grid(n)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    u = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)]).reshape(3, n * n)
    u.setflags(write=False)
    return u


@functools.partial(jax.jit, static_argnames=("n", "powers", "atom_types", "distance_scale", "cutoff_angle"))
def _spheres(positions, charges, *, n, powers, atom_types, distance_scale, cutoff_angle):
    dtype = positions.dtype
    atoms = positions.shape[-2]
    mask = charges > 0                                                    # (..., A)
    # Padding slots -> origin, so that whatever they hold (even NaN) never reaches an
    # arithmetic operation; the select also gives them exactly zero gradient.
    x = jnp.where(mask[..., None], positions, jnp.zeros((), dtype))
    z = jnp.where(mask, charges, 0).astype(dtype)

    rel = x[..., None, :, :] - x[..., :, None, :]                         # (..., i, j, 3): x_j - x_i
    valid = mask[..., :, None] & mask[..., None, :] & ~jnp.eye(atoms, dtype=bool)
    r2 = jnp.sum(rel * rel, axis=-1)
    # Double where: the masked branch sees r^2 = 1, so neither the values nor the
    # gradients of sqrt, division and power can be infinite or NaN there.
    r = jnp.sqrt(jnp.where(valid, r2, jnp.ones((), dtype)))              # (..., i, j)
    d = jnp.where(valid[..., None], rel / r[..., None], jnp.zeros((), dtype))

    # Gaussian factor per pair and grid point, (..., i, j, n^2). The dot with the 3
    # components is written out so that it is an exact float product on every backend.
    u = jnp.asarray(_grid_vectors(n), dtype)
    cos = d[..., 0:1] * u[0] + d[..., 1:2] * u[1] + d[..., 2:3] * u[2]
    sigma2 = (1.0 - math.cos(cutoff_angle)) ** 2 / math.log(20.0)
    gauss = jnp.exp(-jnp.square(cos - 1.0) * (1.0 / sigma2))

    # Per-pair weights, (..., i, j, P * T), channel p_index * T + t_index.
    p = jnp.asarray(powers, dtype)
    scale = jnp.asarray([distance_scale ** q / _CHARGE_PRODUCT_SCALE for q in powers], dtype)   # 1 / M_p
    coulomb = (z[..., :, None] * z[..., None, :])[..., None] * jnp.power(r[..., None], -p) * scale  # (..., i, j, P)
    types = charges[..., None] == jnp.asarray(atom_types, charges.dtype)                       # (..., j, T)
    keep = valid[..., None, None] & types[..., None, :, None, :]                               # (..., i, j, 1, T)
    weights = jnp.where(keep, coulomb[..., None], jnp.zeros((), dtype))
    weights = weights.reshape(weights.shape[:-2] + (len(powers) * len(atom_types),))

    out = jnp.einsum("...ijg,...ijc->...igc", gauss, weights, precision=_HIGHEST)
    out = out.reshape(out.shape[:-2] + (n, n, 1, out.shape[-1]))
    return out, mask


def molecule_to_spheres(
    positions: ArrayLike,
    charges: ArrayLike,
    *,
    n: int = 32,
    powers: Sequence[float] = (2.0, 6.0),
    atom_types: Sequence[int] = QM9_ATOM_TYPES,
    distance_scale: float = DISTANCE_SCALE,
    cutoff_angle: float = math.pi / 4,
    max_atoms: int = QM9_MAX_ATOMS,
) -> tuple[jax.Array, jax.Array]:
    """Per-atom spherical maps of molecules (see the module docstring for the formula).

    positions: (..., max_atoms, 3) float32 or float64 atom coordinates in Angstrom;
        any number of leading (molecule) axes, none included.
    charges: (..., max_atoms) integer atomic numbers, each 0 (padding) or one of
        ``atom_types``; same leading axes as ``positions``.
    n: grid size, even, >= 4. powers: distance powers p (distinct, finite, >= 0).
    atom_types: atomic numbers t, one channel group each (distinct, >= 1).
    distance_scale: length in Angstrom of M_p = 81 / distance_scale^p (> 0).
    cutoff_angle: angle in (0, pi] radians at which the Gaussian factor is 5 %.
    max_atoms: size of the atom axis (checked).

    Returns ``(spheres, mask)``: spheres (..., max_atoms, n, n, 1,
    len(powers) * len(atom_types)) in the dtype of ``positions``, channel
    ``p_index * len(atom_types) + t_index``, zero for padding slots; mask
    (..., max_atoms) bool, True for real atoms.

    Works under jit (the keyword arguments are static Python values), vmap and
    grad (with respect to the positions). The argument checks need only shapes
    and dtypes; on concrete (untraced) inputs the values are checked as well:
    charges in {0} and ``atom_types``, finite positions and distinct positions
    for the real atoms of a molecule.
    """
    func = "molecule_to_spheres"
    n = checks.grid_size(func, "n", n)
    powers = _powers(func, powers)
    atom_types = _atom_types(func, atom_types)
    distance_scale = _positive_real(func, "distance_scale", distance_scale)
    cutoff_angle = _cutoff(func, cutoff_angle)
    max_atoms = checks.positive_int(func, "max_atoms", max_atoms)

    concrete = _is_concrete(positions) and _is_concrete(charges)
    positions_in, charges_in = positions, charges
    positions, charges = jnp.asarray(positions), jnp.asarray(charges)
    if positions.dtype not in _FLOATS:
        raise ValueError(f"{func}: argument 'positions' must be float32 or float64 (Angstrom), "
                         f"got dtype {positions.dtype}")
    if not jnp.issubdtype(charges.dtype, jnp.integer):
        raise ValueError(f"{func}: argument 'charges' must be an integer array of atomic numbers (0 = padding), "
                         f"got dtype {charges.dtype}; cast it, e.g. charges.astype(int)")
    if positions.ndim < 2 or positions.shape[-2:] != (max_atoms, 3):
        raise ValueError(f"{func}: argument 'positions' has shape {tuple(positions.shape)}; expected "
                         f"(..., max_atoms = {max_atoms}, 3)")
    if tuple(charges.shape) != tuple(positions.shape[:-1]):
        raise ValueError(f"{func}: argument 'charges' has shape {tuple(charges.shape)}; expected "
                         f"{tuple(positions.shape[:-1])}, the shape of 'positions' without its last axis")
    if concrete:
        _check_values(func, positions_in, charges_in, atom_types)
    return _spheres(positions, charges, n=n, powers=powers, atom_types=atom_types,
                    distance_scale=distance_scale, cutoff_angle=cutoff_angle)


# --------------------------------------------------------------------------- augmentation

@functools.partial(jax.jit, static_argnames=("count", "dtype"))
def _random_orthogonal(key, *, count, dtype):
    k_rot, k_sign = jax.random.split(key)
    # A standard normal vector q in R^4 has a uniform direction on S^3; read as a
    # quaternion (w, x, y, z) it gives the rotation M(q) / |q|^2 below, and the
    # double cover S^3 -> SO(3) carries the uniform measure to the Haar measure
    # (Shoemake, "Uniform random rotations", Graphics Gems III, 1992). The
    # homogeneous form needs no normalization of q.
    q = jax.random.normal(k_rot, (count, 4), dtype=dtype)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    ww, xx, yy, zz = w * w, x * x, y * y, z * z
    m = jnp.stack([
        jnp.stack([ww + xx - yy - zz, 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        jnp.stack([2 * (x * y + w * z), ww - xx + yy - zz, 2 * (y * z - w * x)], -1),
        jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), ww - xx - yy + zz], -1),
    ], -2)
    rot = m / jnp.maximum(ww + xx + yy + zz, jnp.finfo(dtype).tiny)[:, None, None]
    # One Newton-Schulz step towards the orthogonal polar factor, R (3 I - R^T R) / 2,
    # halves the float32 rounding left in R^T R - I (to ~3e-7); it commutes with
    # multiplication by orthogonal matrices on either side, so the law stays Haar.
    gram = jnp.einsum("nki,nkj->nij", rot, rot, precision=_HIGHEST)
    rot = jnp.einsum("nij,njk->nik", rot, 1.5 * jnp.eye(3, dtype=dtype) - 0.5 * gram, precision=_HIGHEST)
    # O(3) = SO(3) x {I, -I} (-I is central with determinant -1 in odd dimension), so a
    # Haar rotation times -I with probability 1/2 is Haar-distributed on O(3).
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (count,)), -1.0, 1.0).astype(dtype)
    return rot * sign[:, None, None]


def random_rotations(key: ArrayLike, count: int, dtype: str | np.dtype = "float32") -> jax.Array:
    """``count`` independent Haar-random orthogonal 3 x 3 matrices, (count, 3, 3).

    Each is a uniform rotation (the rotation of a quaternion with a standard
    normal 4-d vector of components, whose direction is uniform on S^3) times -I
    with probability 1/2, i.e. a Haar sample of O(3):
    determinants +1 and -1 equally likely. key: a JAX PRNG key (pass a fresh one
    each step); dtype: float32 or float64. Works under jit (count static).
    """
    func = "random_rotations"
    count = checks.positive_int(func, "count", count)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype not in _FLOATS:
        raise ValueError(f"{func}: argument 'dtype' must be float32 or float64, got {dtype!r}")
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if not (typed and key.shape == ()) and not (key.dtype == jnp.uint32 and key.ndim == 1):
        raise ValueError(f"{func}: argument 'key' must be one PRNG key (jax.random.key(...) or "
                         f"jax.random.PRNGKey(...)), got dtype {key.dtype} and shape {tuple(key.shape)}")
    return _random_orthogonal(key, count=count, dtype=dtype.name)


def rotate_positions(positions: ArrayLike, matrices: ArrayLike) -> jax.Array:
    """Apply one 3 x 3 matrix per molecule: x'_a = M x_a for every atom a.

    positions: (..., atoms, 3) float; matrices: (..., 3, 3) with the same leading
    axes (one matrix per molecule), or (3, 3) for all molecules. Returns positions'
    shape, in the common float dtype. Padding slots are rotated too (harmless:
    :func:`molecule_to_spheres` ignores them).
    """
    func = "rotate_positions"
    positions, matrices = jnp.asarray(positions), jnp.asarray(matrices)
    if not jnp.issubdtype(positions.dtype, jnp.floating) or not jnp.issubdtype(matrices.dtype, jnp.floating):
        raise ValueError(f"{func}: arguments 'positions' and 'matrices' must be float arrays, got dtypes "
                         f"{positions.dtype} and {matrices.dtype}")
    if positions.ndim < 2 or positions.shape[-1] != 3:
        raise ValueError(f"{func}: argument 'positions' has shape {tuple(positions.shape)}; expected (..., atoms, 3)")
    if matrices.shape[-2:] != (3, 3) or (matrices.ndim != 2 and matrices.shape[:-2] != positions.shape[:-2]):
        raise ValueError(f"{func}: argument 'matrices' has shape {tuple(matrices.shape)}; expected (3, 3) or "
                         f"{tuple(positions.shape[:-2]) + (3, 3)} (one matrix per molecule of 'positions' "
                         f"{tuple(positions.shape)})")
    return jnp.einsum("...kl,...al->...ak", matrices, positions, precision=_HIGHEST)
