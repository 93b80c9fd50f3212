"""Spherical MNIST for sphcnn: the MNIST source, the projection onto the sphere,
random rotations, dataset files and batch loaders, and the ``sphcnn data`` command.

Arrays: source digits uint8 (N, 28, 28); spherical images uint8 (N, n, n) on the
n x n equiangular grid ([i, j, k] at theta_j = pi j / (n - 1), phi_k = 2 pi k / n);
batches float32 (B, n, n, 1, 1) with int32 labels and float32 weights.
"""

from sphcnn.data.dataset import DatasetError, SphericalMnist, generate_spherical_mnist, split_rotations
from sphcnn.data.loader import Prefetcher, TrainingBatches, evaluation_batches
from sphcnn.data.mnist_source import MnistSourceError, load_mnist
from sphcnn.data.projection import grid_points, project, sample
from sphcnn.data.rotations import random_rotations

__all__ = [
    "DatasetError",
    "MnistSourceError",
    "Prefetcher",
    "SphericalMnist",
    "TrainingBatches",
    "evaluation_batches",
    "generate_spherical_mnist",
    "grid_points",
    "load_mnist",
    "project",
    "random_rotations",
    "sample",
    "split_rotations",
]
