"""sphcnn: spin-weighted spherical CNN layers and models in Flax NNX, on the
transforms of :mod:`sphcnn_kernels`.

Layouts: spatial (batch, n, n, n_spins, channels) on the n x n equiangular grid
with both poles; spectral (batch, ell_max + 1, 2 ell_max + 1, n_spins, channels).
"""

from sphcnn.nn.batch_norm import SpectralBatchNorm, SphericalBatchNorm, SpinSphericalBatchNorm
from sphcnn.nn.blocks import SpectralChannelDense, SpinSphericalBlock, SpinSphericalResidualBlock
from sphcnn.nn.convolution import SpinSphericalConvolution
from sphcnn.models.classifiers import SpinSphericalClassifier, spherical_classifier_6_layers, spin_classifier_6_layers
from sphcnn.nn.nonlinearities import MagnitudeNonlinearity, MagnitudeNonlinearityLeakyRelu, PhaseCollapse
from sphcnn.models.planar import PlanarCNNClassifier, cnn_classifier_6_layers
from sphcnn.nn.pooling import spatial_pool, spectral_pool
from sphcnn.nn.readouts import invariant_magnitudes, spherical_readout
from sphcnn.models.tails import DeepSetsTail, TransformerTail
from sphcnn.models.regressors import REGRESSOR_PRESETS, MoleculeInputs, SpinSphericalRegressor
from sphcnn.models.state import load_model_state, model_state, parameter_count

__all__ = [
    "REGRESSOR_PRESETS",
    "DeepSetsTail",
    "MagnitudeNonlinearity",
    "MagnitudeNonlinearityLeakyRelu",
    "PhaseCollapse",
    "MoleculeInputs",
    "PlanarCNNClassifier",
    "SpectralBatchNorm",
    "SpectralChannelDense",
    "SphericalBatchNorm",
    "SpinSphericalBatchNorm",
    "SpinSphericalBlock",
    "SpinSphericalClassifier",
    "SpinSphericalConvolution",
    "SpinSphericalRegressor",
    "SpinSphericalResidualBlock",
    "TransformerTail",
    "cnn_classifier_6_layers",
    "invariant_magnitudes",
    "load_model_state",
    "model_state",
    "parameter_count",
    "spatial_pool",
    "spectral_pool",
    "spherical_classifier_6_layers",
    "spherical_readout",
    "spin_classifier_6_layers",
]
