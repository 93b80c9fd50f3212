"""QM9 (Ramakrishnan et al., Scientific Data 1, 140022, 2014): predicting the 12
standard molecular properties with spin-weighted spherical CNNs, as in Scaling
Spherical CNNs (Esteves, Slotine & Makadia, ICML 2023)."""

from sphcnn.tasks.qm9.data import TARGETS, QM9Dataset, generate_qm9
from sphcnn.tasks.qm9.features import molecule_to_spheres, random_rotations, rotate_positions

__all__ = ["TARGETS", "QM9Dataset", "generate_qm9", "molecule_to_spheres", "random_rotations", "rotate_positions"]
