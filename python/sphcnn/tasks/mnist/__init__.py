"""Spherical MNIST (Cohen et al. 2018, Esteves et al. 2020): the MNIST source,
the projection onto the sphere, random rotations, dataset files, the ``sphcnn
data mnist`` command, plots of input spheres, and the task the training loop
runs (classification: cross-entropy loss, accuracy).

Arrays: source digits uint8 (N, 28, 28); spherical images uint8 (N, n, n) on the
n x n equiangular grid ([i, j, k] at theta_j = pi j / (n - 1), phi_k = 2 pi k / n);
batches float32 (B, n, n, 1, 1) with int32 labels and float32 weights.
"""
