"""The option lists of the model layers, defined once.

Each names the values a layer argument may take; the layers check their
arguments against these with :func:`sphcnn_kernels.validation.choice`, which
names the argument, the value and the list in its error.
"""

REPRESENTATIONS = ("spatial", "spectral")                     # what a layer takes and returns
KERNEL_INITS = ("unit_energy", "original", "scaling")         # initializations of spherical convolutions
BATCH_NORMS = ("spectral", "spatial", "spatial_uncentered")  # where (and how) a block normalizes
VARIANCES = ("centered", "uncentered")                        # what a spatial batch norm divides by
NONLINEARITIES = ("magnitude", "phase_collapse")              # what ends a block
SHORTCUTS = ("projection", "dense")                           # residual shortcuts
