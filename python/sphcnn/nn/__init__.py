"""Layers of spin-weighted spherical CNNs (Flax NNX): convolutions, batch norms,
nonlinearities, pooling, blocks and readouts, on the transforms of
:mod:`sphcnn_kernels`. Arrays: spatial (batch, n, n, n_spins, channels),
spectral (batch, ell_max + 1, 2 ell_max + 1, n_spins, channels) or degree-major."""
