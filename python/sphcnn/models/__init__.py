"""Models built from :mod:`sphcnn.nn`: the spherical MNIST classifiers and their
planar baseline, the model registry by name, and models as pure pytrees."""
