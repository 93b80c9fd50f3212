"""QM9's characterized molecules as arrays, from the pinned ``qm9pack==1.0.3``
wheel or from a directory of QM9's own ``dsgdb9nsd_*.xyz`` files.

Output (:func:`load_qm9`): :class:`Molecules`, ordered by QM9 index, with

- ``indices`` int32 (N,): QM9 indices (1-based, "gdb <index>", ascending),
- ``atom_counts`` uint8 (N,): atoms per molecule (1..29),
- ``charges`` uint8 (N, 29): atomic numbers (H 1, C 6, N 7, O 8, F 9), 0 = padding,
- ``positions`` float64 (N, 29, 3): coordinates in Angstrom as written in the
  source, 0 on padding,
- ``properties`` float64 (N, 15): the 15 scalar properties of QM9 in its own
  units and order (PROPERTIES): A, B, C (GHz), mu (D), alpha (a0^3), HOMO, LUMO,
  gap (Ha), R2 (a0^2), ZPVE, U0, U, H, G (Ha, total energies), Cv (cal/mol/K).

QM9 (Ramakrishnan, Dral, Rupp & von Lilienfeld, Scientific Data 1, 140022, 2014,
doi:10.1038/sdata.2014.22) numbers its 133,885 molecules 1..133,885; 3,054 of
them failed the paper's geometry consistency check and are listed in its
``uncharacterized.txt`` (figshare file 3195404). The remaining 130,831 are the
"characterized" molecules that ML work trains and tests on.

Sources:

1. The wheel of ``qm9pack==1.0.3`` on PyPI (MIT licence, by QM9's first author;
   sha256 pinned, 103.7 MB), fetched with ``python -m pip download --no-deps``
   into a cache directory (default ~/.cache/sphcnn) and read as a zip archive:
   never installed, none of its code imported (it imports ``pkg_resources``).
   Its ``qm9pack/data/qm9_part{1,2,3}.csv`` hold exactly the 130,831
   characterized molecules (checked: every index of 1..133,885 except 3,054,
   each once, ascending; the same set is checked by the split anchors of
   ``tests/test_qm9_data.py``), one row each with the columns of
   CSV_COLUMNS: ``Elements`` like ``['C','H','H','H','H']``, ``XYZ_Ang`` like
   ``[[-0.0126981359,1.0858041578,0.0080009958],...]`` (151 molecules have a
   coordinate in exponent notation, written ``2.1997E-6``; Python's float
   parsing takes ``E`` and ``e`` alike), and the 15 properties in QM9's order.
   The wheel's fourth table, ``qm9pack/data/qm9_polarizability.csv``, was added
   in 1.0.3: the six components A_xx, A_xy, A_yy, A_xz, A_yz, A_zz of each
   molecule's static dipole polarizability tensor (bohr^3), for the same 130,831
   molecules (``XYZ_file`` keys; qm9pack's own ``get_data`` inner-joins it to
   the three parts, which therefore drops nothing). The isotropic alpha of the
   12 targets is the ``Polarizability_bohr3`` column of the parts (its trace / 3
   agrees with it within 0.0054 bohr^3, the parts giving alpha to 0.01), so the
   tensor table is not read.
2. A directory of QM9's own xyz files (``dsgdb9nsd_000001.xyz`` ...; the
   extracted ``dsgdb9nsd.xyz.tar.bz2`` of the QM9 figshare collection), in the
   paper's format (its Table 2 / "Data Records"):
   line 1 the atom count n; line 2 ``gdb <index> A B C mu alpha homo lumo gap
   r2 zpve U0 U H G Cv``; n lines ``<element> x y z <Mulliken charge>``; then the
   harmonic frequencies, the SMILES pair and the InChI pair (read, not used).
   Numbers may be written with a Mathematica-style exponent, ``1.2345*^-6``.
   Which molecules are uncharacterized cannot be told from the xyz files, so
   the directory must also hold QM9's ``uncharacterized.txt``: every line of it
   whose first field is an integer names one uncharacterized index (its header
   and footer lines start with words). Those molecules are skipped; the
   molecules read are the other xyz files of the directory.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sphcnn_kernels import validation as checks
from sphcnn.tasks import outputs
from sphcnn.tasks.outputs import sha256_of_file

MAX_ATOMS = 29  # QM9's largest molecules have 29 atoms (e.g. C9H20)
QM9_MOLECULES = 133_885  # indices 1..133,885 (Ramakrishnan et al. 2014)
UNCHARACTERIZED_COUNT = 3_054  # listed in QM9's uncharacterized.txt
CHARACTERIZED_COUNT = QM9_MOLECULES - UNCHARACTERIZED_COUNT  # 130,831

ATOMIC_NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}

# QM9's 15 scalar properties, in the order of line 2 of its xyz files and of the
# qm9pack columns RotA_GHz .. Heatcapacity_Cv_cal_mol_K, with their units.
PROPERTIES = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")
PROPERTY_UNITS = ("GHz", "GHz", "GHz", "D", "a0^3", "Ha", "Ha", "Ha", "a0^2", "Ha", "Ha", "Ha", "Ha", "Ha",
                  "cal/mol/K")

QM9PACK_REQUIREMENT = "qm9pack==1.0.3"
QM9PACK_WHEEL = "qm9pack-1.0.3-py3-none-any.whl"
QM9PACK_MEGABYTES = 104  # 103,712,597 bytes, for the download message
QM9PACK_SHA256 = "1d88c2988007c6778e717ee3224cf511bd60e10732ebe3b7ed500ea5af05c9f0"
QM9PACK_MEMBERS = tuple(f"qm9pack/data/qm9_part{part}.csv" for part in (1, 2, 3))
# What the pinned wheel holds (checked when its hash is the pinned one).
_KNOWN_WHEEL_COUNTS = {QM9PACK_SHA256: CHARACTERIZED_COUNT}
CSV_COLUMNS = (
    "XYZ_file", "Index", "SMILES", "InChi", "N_atoms", "Stoichiometry", "Elements", "XYZ_Ang", "Mulliken_pop",
    "Harmonic_Freq_cmi", "RotA_GHz", "RotB_GHz", "RotC_GHz", "Dipole_debye", "Polarizability_bohr3", "HOMO_au",
    "LUMO_au", "HOMO_LUMO_gap_au", "R2_bohr2", "ZPVE_au", "InternalEnergy_0K_au", "InternalEnergy_298K_au",
    "Enthalphy_298K_au", "GibbsFreeEnergy_298K_au", "Heatcapacity_Cv_cal_mol_K",
)
_PROPERTY_COLUMNS = slice(CSV_COLUMNS.index("RotA_GHz"), CSV_COLUMNS.index("Heatcapacity_Cv_cal_mol_K") + 1)
_COLUMN = {name: i for i, name in enumerate(CSV_COLUMNS)}

XYZ_PATTERN = "dsgdb9nsd_*.xyz"
UNCHARACTERIZED_FILE = "uncharacterized.txt"
DEFAULT_CACHE_DIR = Path("~/.cache/sphcnn")
_XYZ_NAME = re.compile(r"dsgdb9nsd_(\d+)\.xyz")


class QM9SourceError(ValueError):
    """A QM9 source that is missing, malformed or not the pinned one."""


class QM9DownloadError(OSError):
    """The qm9pack wheel could not be downloaded (no network, no pip index)."""


@dataclasses.dataclass(frozen=True)
class Molecules:
    """QM9 molecules ordered by index (see the module docstring for the arrays)
    and a JSON-serializable description of their source."""

    indices: np.ndarray
    atom_counts: np.ndarray
    charges: np.ndarray
    positions: np.ndarray
    properties: np.ndarray
    source: dict

    def __len__(self) -> int:
        return len(self.indices)


def _pack(indices: list[int], elements: list[list[str]], coordinates: np.ndarray, properties: np.ndarray,
          where: Callable[[int], str], what: str, source: dict) -> Molecules:
    """Molecules from per-molecule element lists, all coordinates concatenated
    (float64 (sum n, 3)) and the properties (float64 (N, 15)); sorted by index."""
    count = len(indices)
    counts = np.fromiter((len(e) for e in elements), dtype=np.int64, count=count)
    for i in np.flatnonzero((counts < 1) | (counts > MAX_ATOMS))[:1]:
        raise QM9SourceError(f"{where(int(i))}: {counts[i]} atoms, expected 1..{MAX_ATOMS}")
    symbols = [symbol for molecule in elements for symbol in molecule]
    try:
        numbers = np.fromiter((ATOMIC_NUMBERS[s] for s in symbols), dtype=np.uint8, count=len(symbols))
    except KeyError as err:
        raise QM9SourceError(f"{what}: element {err.args[0]!r} found, expected one of "
                             f"{', '.join(ATOMIC_NUMBERS)}") from None
    if coordinates.shape != (len(symbols), 3):
        raise QM9SourceError(f"{what}: {len(coordinates)} coordinate triples for {len(symbols)} atoms")
    bad = ~np.isfinite(properties).all(axis=1)
    for i in np.flatnonzero(bad)[:1]:
        raise QM9SourceError(f"{where(int(i))}: a property is not finite: {properties[i].tolist()}")
    molecule_of_atom = np.repeat(np.arange(count), counts)
    slot = np.arange(len(symbols)) - np.repeat(np.cumsum(counts) - counts, counts)
    charges = np.zeros((count, MAX_ATOMS), np.uint8)
    positions = np.zeros((count, MAX_ATOMS, 3), np.float64)
    charges[molecule_of_atom, slot] = numbers
    positions[molecule_of_atom, slot] = coordinates
    index_array = np.asarray(indices, dtype=np.int64)
    order = np.argsort(index_array, kind="stable")
    index_array = index_array[order]
    duplicates = np.flatnonzero(np.diff(index_array) == 0)
    if duplicates.size:
        raise QM9SourceError(f"{what}: QM9 index {index_array[duplicates[0]]} occurs more than once")
    if count and (index_array[0] < 1 or index_array[-1] > QM9_MOLECULES):
        raise QM9SourceError(f"{what}: QM9 indices must lie in 1..{QM9_MOLECULES}, found "
                             f"{index_array[0]}..{index_array[-1]}")
    return Molecules(
        indices=index_array.astype(np.int32),
        atom_counts=counts[order].astype(np.uint8),
        charges=charges[order],
        positions=positions[order],
        properties=properties[order],
        source=source,
    )


# --- the qm9pack wheel --------------------------------------------------------


def fetch_qm9pack_wheel(cache_dir=None, progress: Callable[[str], None] | None = None) -> Path:
    """Path of the ``qm9pack==1.0.3`` wheel in ``cache_dir`` (default ~/.cache/sphcnn),
    downloaded with ``python -m pip download --no-deps`` if it is not there yet
    (``progress``, if given, is told when the download starts and ends). The hash
    is checked by :func:`read_qm9pack_wheel`, not here."""
    cache_dir = checks.path("fetch_qm9pack_wheel", "cache_dir", DEFAULT_CACHE_DIR if cache_dir is None else cache_dir)
    return outputs.fetch_wheel(cache_dir, QM9PACK_WHEEL, QM9PACK_REQUIREMENT, QM9PACK_MEGABYTES, progress,
                               error=QM9DownloadError, alternative="pass a directory of QM9's xyz files and "
                                                                  "uncharacterized.txt (source_dir / --source-dir)")


def _float_tokens(tokens: list[str], what: str) -> np.ndarray:
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        for token in tokens:
            try:
                float(token)
            except ValueError:
                raise QM9SourceError(f"{what}: {token!r} is not a number") from None
        raise


def _read_csv_member(archive: zipfile.ZipFile, member: str, where: str):
    """(indices, elements, coordinates (sum n, 3), properties (N, 15)) of one CSV member."""
    try:
        handle = archive.open(member)
    except KeyError:
        raise QM9SourceError(f"{where}: member {member} not found") from None
    with handle, io.TextIOWrapper(handle, encoding="utf-8", newline="") as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None or tuple(header) != CSV_COLUMNS:
            raise QM9SourceError(
                f"{where}:{member}: header {header!r} is not the expected columns {', '.join(CSV_COLUMNS)}"
            )
        rows = list(reader)
    indices: list[int] = []
    elements: list[list[str]] = []
    xyz: list[str] = []
    for line, row in enumerate(rows, start=2):
        place = f"{where}:{member} line {line}"
        if len(row) != len(CSV_COLUMNS):
            raise QM9SourceError(f"{place}: {len(row)} fields, expected {len(CSV_COLUMNS)}")
        try:
            index = int(row[_COLUMN["Index"]])
            atoms = int(row[_COLUMN["N_atoms"]])
        except ValueError:
            raise QM9SourceError(f"{place}: Index {row[1]!r} or N_atoms {row[4]!r} is not an integer") from None
        if row[0] != f"dsgdb9nsd_{index:06d}.xyz":
            raise QM9SourceError(f"{place}: XYZ_file {row[0]!r} does not match Index {index}")
        field = row[_COLUMN["Elements"]]
        if not (field.startswith("['") and field.endswith("']")):
            raise QM9SourceError(f"{place}: Elements {field[:60]!r} is not a list like ['C','H']")
        symbols = field[2:-2].split("','")
        coordinates = row[_COLUMN["XYZ_Ang"]]
        if not (coordinates.startswith("[[") and coordinates.endswith("]]")) \
                or coordinates.count(",") != 3 * len(symbols) - 1:
            raise QM9SourceError(f"{place}: XYZ_Ang {coordinates[:60]!r}... is not {len(symbols)} [x,y,z] triples")
        if atoms != len(symbols):
            raise QM9SourceError(f"{place}: N_atoms {atoms} but {len(symbols)} elements")
        indices.append(index)
        elements.append(symbols)
        xyz.append(coordinates)
    strip = {ord("["): None, ord("]"): None}
    coordinates = _float_tokens(",".join(xyz).translate(strip).split(","), f"{where}:{member} XYZ_Ang")
    properties = _float_tokens([value for row in rows for value in row[_PROPERTY_COLUMNS]],
                               f"{where}:{member} properties")
    return indices, elements, coordinates.reshape(-1, 3), properties.reshape(-1, len(PROPERTIES))


def read_qm9pack_wheel(path, expected_sha256: str = QM9PACK_SHA256) -> Molecules:
    """The molecules of a qm9pack wheel whose sha256 must equal ``expected_sha256``
    (its three CSV parts, read from the zip archive)."""
    path, actual = outputs.checked_wheel("read_qm9pack_wheel", path, expected_sha256, "qm9pack wheel", QM9SourceError)
    indices: list[int] = []
    elements: list[list[str]] = []
    coordinates, properties, origins = [], [], []
    try:
        with zipfile.ZipFile(path) as archive:
            for member in QM9PACK_MEMBERS:
                part = _read_csv_member(archive, member, str(path))
                origins += [member] * len(part[0])
                indices += part[0]
                elements += part[1]
                coordinates.append(part[2])
                properties.append(part[3])
    except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, csv.Error) as err:
        raise QM9SourceError(f"qm9pack wheel {path}: cannot be read ({err})") from None
    source = {
        "kind": "qm9pack",
        "requirement": QM9PACK_REQUIREMENT,
        "wheel": path.name,
        "wheel_sha256": actual,
        "members": list(QM9PACK_MEMBERS),
    }
    molecules = _pack(indices, elements, np.concatenate(coordinates), np.concatenate(properties),
                      lambda i: f"{path}:{origins[i]}: molecule {indices[i]}", f"qm9pack wheel {path}", source)
    expected = _KNOWN_WHEEL_COUNTS.get(actual)
    if expected is not None and len(molecules) != expected:
        raise QM9SourceError(f"qm9pack wheel {path}: {len(molecules)} molecules, expected {expected}")
    return molecules


# --- QM9's xyz files ------------------------------------------------------------


def _xyz_float(token: str) -> float:
    return float(token.replace("*^", "e"))


def parse_xyz(text: str, where: str = "xyz file") -> tuple[int, list[str], np.ndarray, np.ndarray]:
    """(index, elements, positions float64 (n, 3) in Angstrom, properties float64 (15,))
    of one QM9 xyz file's text."""
    lines = text.splitlines()
    try:
        count = int(lines[0].strip())
    except (IndexError, ValueError):
        raise QM9SourceError(f"{where}: line 1 must be the atom count, got {lines[0] if lines else ''!r}") from None
    if not 1 <= count <= MAX_ATOMS:
        raise QM9SourceError(f"{where}: {count} atoms, expected 1..{MAX_ATOMS}")
    if len(lines) < count + 2:
        raise QM9SourceError(f"{where}: {len(lines)} lines, expected at least {count + 2} for {count} atoms")
    fields = lines[1].split()
    if len(fields) != 2 + len(PROPERTIES) or fields[0] != "gdb":
        raise QM9SourceError(f"{where}: line 2 must be 'gdb <index>' and {len(PROPERTIES)} properties, "
                             f"got {lines[1][:80]!r}")
    try:
        index = int(fields[1])
        properties = np.array([_xyz_float(v) for v in fields[2:]], np.float64)
    except ValueError:
        raise QM9SourceError(f"{where}: line 2 {lines[1][:80]!r} holds a field that is not a number") from None
    elements, positions = [], np.empty((count, 3), np.float64)
    for i in range(count):
        atom = lines[2 + i].split()
        if len(atom) != 5:
            raise QM9SourceError(f"{where}: line {3 + i} must be '<element> x y z charge', got {lines[2 + i]!r}")
        try:
            positions[i] = [_xyz_float(v) for v in atom[1:4]]
        except ValueError:
            raise QM9SourceError(f"{where}: line {3 + i} {lines[2 + i]!r} has a coordinate that is not a number") \
                from None
        elements.append(atom[0])
    return index, elements, positions, properties


def read_uncharacterized(path) -> list[int]:
    """The indices listed in QM9's uncharacterized.txt: the first field of every
    line that starts with an integer (header and footer lines start with words)."""
    path = checks.path("read_uncharacterized", "path", path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise QM9SourceError(f"{path}: cannot be read ({err})") from None
    indices = [int(line.split()[0]) for line in text.splitlines() if line.split() and line.split()[0].isdigit()]
    if len(set(indices)) != len(indices):
        raise QM9SourceError(f"{path}: an index is listed more than once")
    return sorted(indices)


def read_xyz_directory(directory) -> Molecules:
    """The characterized molecules of a directory of QM9 xyz files: every
    ``dsgdb9nsd_<index>.xyz`` whose index is not listed in the directory's
    ``uncharacterized.txt`` (required; see the module docstring)."""
    func = "read_xyz_directory"
    directory = checks.path(func, "directory", directory)
    if not directory.is_dir():
        raise ValueError(f"{func}: argument 'directory' must be an existing directory, got {str(directory)!r}")
    listing = directory / UNCHARACTERIZED_FILE
    if not listing.is_file():
        raise QM9SourceError(
            f"QM9 xyz directory {directory}: {UNCHARACTERIZED_FILE} not found; the {UNCHARACTERIZED_COUNT:,} "
            f"uncharacterized molecules cannot be told from the xyz files alone, so put QM9's "
            f"{UNCHARACTERIZED_FILE} (figshare file 3195404) there"
        )
    excluded = set(read_uncharacterized(listing))
    files = sorted(directory.glob(XYZ_PATTERN))
    if not files:
        raise QM9SourceError(f"QM9 xyz directory {directory}: no {XYZ_PATTERN} files")
    digest = hashlib.sha256()
    indices, elements, coordinates, properties = [], [], [], []
    skipped = 0
    for file in files:
        match = _XYZ_NAME.fullmatch(file.name)
        if match is None:
            continue
        data = file.read_bytes()
        digest.update(file.name.encode() + b"\0" + data + b"\0")
        index, symbols, xyz, values = parse_xyz(data.decode("utf-8", errors="replace"), str(file))
        if index != int(match.group(1)):
            raise QM9SourceError(f"{file}: line 2 says gdb {index}, but the file name says {int(match.group(1))}")
        if index in excluded:
            skipped += 1
            continue
        indices.append(index)
        elements.append(symbols)
        coordinates.append(xyz)
        properties.append(values)
    if not indices:
        raise QM9SourceError(f"QM9 xyz directory {directory}: every xyz file is listed in {UNCHARACTERIZED_FILE}")
    source = {
        "kind": "xyz",
        "directory": str(directory.resolve()),
        "xyz_files": len(indices) + skipped,
        "xyz_sha256": digest.hexdigest(),
        "uncharacterized_file": UNCHARACTERIZED_FILE,
        "uncharacterized_sha256": sha256_of_file(listing),
        "uncharacterized_listed": len(excluded),
        "uncharacterized_skipped": skipped,
    }
    molecules = _pack(indices, elements, np.concatenate(coordinates), np.stack(properties),
                      lambda i: str(directory / f"dsgdb9nsd_{indices[i]:06d}.xyz"), f"QM9 xyz directory {directory}",
                      source)
    return molecules


def load_qm9(source_dir=None, cache_dir=None, progress: Callable[[str], None] | None = None) -> Molecules:
    """The characterized QM9 molecules from the xyz files of ``source_dir`` or, if it
    is None, from the pinned qm9pack wheel (downloaded into ``cache_dir``, default
    ~/.cache/sphcnn, on first use, reported to ``progress``)."""
    func = "load_qm9"
    source_dir = checks.optional_path(func, "source_dir", source_dir)
    cache_dir = checks.optional_path(func, "cache_dir", cache_dir)
    if source_dir is not None:
        return read_xyz_directory(source_dir)
    return read_qm9pack_wheel(fetch_qm9pack_wheel(cache_dir, progress), QM9PACK_SHA256)


__all__ = [
    "ATOMIC_NUMBERS", "CHARACTERIZED_COUNT", "CSV_COLUMNS", "DEFAULT_CACHE_DIR", "MAX_ATOMS", "Molecules",
    "PROPERTIES", "PROPERTY_UNITS", "QM9DownloadError", "QM9PACK_MEMBERS", "QM9PACK_REQUIREMENT", "QM9PACK_SHA256",
    "QM9PACK_WHEEL", "QM9SourceError", "QM9_MOLECULES", "UNCHARACTERIZED_COUNT", "fetch_qm9pack_wheel", "load_qm9",
    "parse_xyz", "read_qm9pack_wheel", "read_uncharacterized", "read_xyz_directory", "sha256_of_file",
]
