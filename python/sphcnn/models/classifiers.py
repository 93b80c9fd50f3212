"""Spherical CNN classifiers and the presets of the original spherical MNIST
experiments (Esteves, Makadia & Daniilidis, NeurIPS 2020).

SpinSphericalClassifier: blocks between consecutive layer configurations
(resolution, spins, width, filter anchors), a rotation-invariant readout
(spherical mean of spin 0, of |f| for other spins) and a dense layer. Entry 0 of
each configuration list describes the input; entry i + 1 the output of block i.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from sphcnn_kernels import validation as checks
from sphcnn.nn import initializers
from sphcnn.nn.blocks import SpinSphericalBlock, SpinSphericalResidualBlock
from sphcnn.nn.convolution import DTYPE
from sphcnn.nn.readouts import spherical_readout

BLOCKS = {"spin": SpinSphericalBlock, "residual": SpinSphericalResidualBlock}


def check_layer_config(module: str, resolutions, spins, widths, num_filter_params) -> tuple:
    """Validated (resolutions, spins, widths, num_filter_params) as tuples."""
    lists = {"resolutions": resolutions, "spins": spins, "widths": widths, "num_filter_params": num_filter_params}
    for name, value in lists.items():
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ValueError(f"{module}: argument '{name}' must be a sequence, got {value!r}")
    lengths = {name: len(value) for name, value in lists.items()}
    if len(set(lengths.values())) != 1 or lengths["resolutions"] < 2:
        raise ValueError(f"{module}: resolutions, spins, widths and num_filter_params need one entry per layer "
                         f"(at least 2), got lengths {lengths}")
    resolutions = tuple(checks.grid_size(module, f"resolutions[{i}]", r) for i, r in enumerate(resolutions))
    for i in range(1, len(resolutions)):
        if resolutions[i] not in (resolutions[i - 1], resolutions[i - 1] // 2):
            raise ValueError(
                f"{module}: resolutions[{i}] = {resolutions[i]} must equal resolutions[{i - 1}] = "
                f"{resolutions[i - 1]} or half of it"
            )
    spins = tuple(checks.spins(module, f"spins[{i}]", s) for i, s in enumerate(spins))
    widths = tuple(checks.positive_int(module, f"widths[{i}]", w) for i, w in enumerate(widths))
    num_filter_params = tuple(
        None if k is None else checks.positive_int(module, f"num_filter_params[{i}]", k)
        for i, k in enumerate(num_filter_params)
    )
    return resolutions, spins, widths, num_filter_params


class SpinSphericalClassifier(nnx.Module):
    """Spin-weighted spherical CNN classifier.

        logits = Dense(spherical_readout(h)),   h = the blocks applied to x in turn,

    block i mapping layer i to layer i + 1, the dense layer (lecun-normal kernel,
    zero bias) taking the S C readout features of the last layer.
    Input (batch, n, n, S_0, C_0), real or complex, n = resolutions[0], cast to
    float32 (real input: the first forward transform reads real maps) or
    complex64 (the dtype of the layers); output logits (batch, num_classes).

    Args:
      num_classes: number of logits.
      resolutions: grid size of each layer, entry 0 the input's; each entry
        equals the previous one or half of it; at least 2 entries.
      spins: the spins of each layer (entry 0: S_0 of the input).
      widths: the channels of each layer (entry 0: C_0 of the input).
      num_filter_params: the filter anchors of each layer's convolution (None:
        one per degree); entry 0 is unused.
      block: 'spin' (SpinSphericalBlock, default) or 'residual'
        (SpinSphericalResidualBlock).
      spectral_pooling: "spin" blocks that halve the resolution do so by
        spectral pooling in the convolution instead of spatial pooling.
      batch_norm: the batch norm of the "spin" blocks: 'spectral' (default),
        'spatial' or 'spatial_uncentered' (SpinSphericalBlock).
      kernel_init: the initialization of the convolutions of the "spin" blocks
        (SpinSphericalConvolution).
      batch_norm_momentum: of the batch norms' running averages (0.99, as the
        original).
      axis_name: the batch norms' axis_name (statistics summed over that mapped
        axis), or None.
      backend: transform backend, as in sphcnn_kernels.SphericalTransform.
      fused: True, False or None (default: True with "spin" blocks, which have
        magnitude nonlinearities; False otherwise). True: each block's
        magnitude nonlinearity and the next block's spatial pooling run inside
        the next block's forward transform (its incoming activation,
        sphcnn_kernels.ops.activated_analysis); kernels where
        sphcnn_kernels.ops chooses them, the same function and parameters
        either way.
      rngs: random streams of the blocks and the dense layer.

    Raises:
      ValueError: on a non-positive num_classes, an unknown block, fused not
        None/True/False, fused=True with 'residual' blocks, layer lists that are
        not sequences of one equal length >= 2 or hold invalid entries, or
        arguments the blocks reject.
    """

    def __init__(self, num_classes: int, resolutions: Sequence[int], spins: Sequence[Sequence[int]],
                 widths: Sequence[int], num_filter_params: Sequence[int | None], *, block: str = "spin",
                 spectral_pooling: bool = False, batch_norm: str = "spectral", kernel_init: str = "unit_energy",
                 batch_norm_momentum: float = 0.99, axis_name=None, backend: str = "auto", fused: bool | None = None,
                 rngs: nnx.Rngs):
        name = type(self).__name__
        self.num_classes = checks.positive_int(name, "num_classes", num_classes)
        if block not in BLOCKS:
            raise ValueError(f"{name}: argument 'block' must be one of {tuple(BLOCKS)}, got {block!r}")
        if fused is None:
            fused = block == "spin"
        if not isinstance(fused, bool):
            raise ValueError(f"{name}: argument 'fused' must be None, True or False, got {fused!r}")
        if fused and block != "spin":
            raise ValueError(f"{name}: fused=True fuses the nonlinearities of 'spin' blocks; block {block!r} has "
                             "phase collapses, which do not fuse")
        self.fused = fused
        self.resolutions, self.spins, self.widths, self.num_filter_params = check_layer_config(
            name, resolutions, spins, widths, num_filter_params)
        layers = []
        for i in range(len(self.resolutions) - 1):
            options = dict(resolution_in=self.resolutions[i], resolution_out=self.resolutions[i + 1],
                           num_filter_params=self.num_filter_params[i + 1], axis_name=axis_name,
                           batch_norm_momentum=batch_norm_momentum, backend=backend, rngs=rngs)
            if block == "spin":
                options.update(spectral_pooling=spectral_pooling, batch_norm=batch_norm, kernel_init=kernel_init)
            layers.append(BLOCKS[block](self.widths[i], self.widths[i + 1], self.spins[i], self.spins[i + 1],
                                        **options))
        self.blocks = nnx.List(layers)
        self.readout = nnx.Linear(len(self.spins[-1]) * self.widths[-1], self.num_classes,
                                  kernel_init=initializers.lecun_normal(), rngs=rngs)

    def __call__(self, x: jax.Array, example_weights=None) -> jax.Array:
        """Classifies spherical maps.

        Args:
          x: (batch, n, n, S_0, C_0) real or complex, n = resolutions[0].
          example_weights: None or (batch,) weights of each example in the batch
            norms' statistics (e.g. 0 for padding).

        Returns:
          Logits (batch, num_classes) float32.

        Raises:
          ValueError: if x's shape does not match the first layer.
        """
        checks.spatial_input(type(self).__name__, x, self.resolutions[0], self.spins[0], self.widths[0])
        h = x.astype(DTYPE.type(0).real.dtype if not jnp.iscomplexobj(x) else DTYPE)
        incoming = None  # fused: the previous block's nonlinearity, applied inside the next forward transform
        for block in self.blocks:
            if self.fused:
                h = block.pre_activation(h, example_weights, incoming)
                incoming = block.nonlinearity.as_activation()
            else:
                h = block(h, example_weights)
        if incoming is not None:
            h = incoming(h)
        features = spherical_readout(h, self.spins[-1])
        return self.readout(features.reshape(features.shape[0], -1))


MNIST_RESOLUTIONS = (64, 64, 64, 32, 32, 16, 16)


def spin_classifier_6_layers(num_classes: int = 10, *, rngs: nnx.Rngs, **options) -> SpinSphericalClassifier:
    """The spin-weighted spherical MNIST model: spins {0} then {0, 1}, widths
    (1, 16, 16, 20, 24, 28, 32), filter anchors (1, 6, 6, 4, 4, 3, 3); 39,146
    parameter entries (complex entries count once), and the original's kernel
    initialization (kernel_init="original"), as the original.

    Args:
      num_classes: number of logits (default 10).
      rngs: random streams of the model.
      **options: further keyword arguments of SpinSphericalClassifier
        (kernel_init defaults to "original").

    Returns:
      A SpinSphericalClassifier at resolutions (64, 64, 64, 32, 32, 16, 16).

    Raises:
      ValueError: on options SpinSphericalClassifier rejects.
    """
    options.setdefault("kernel_init", "original")
    return SpinSphericalClassifier(num_classes, MNIST_RESOLUTIONS, ((0,),) + ((0, 1),) * 6,
                                   (1, 16, 16, 20, 24, 28, 32), (1, 6, 6, 4, 4, 3, 3), rngs=rngs, **options)


def spherical_classifier_6_layers(num_classes: int = 10, *, rngs: nnx.Rngs, **options) -> SpinSphericalClassifier:
    """The spin-0 (scalar) spherical MNIST model: widths (1, 16, 16, 32, 32, 58,
    58), 8 filter anchors per layer; 57,238 parameter entries; the original's
    kernel initialization.

    Args:
      num_classes: number of logits (default 10).
      rngs: random streams of the model.
      **options: further keyword arguments of SpinSphericalClassifier
        (kernel_init defaults to "original").

    Returns:
      A SpinSphericalClassifier at resolutions (64, 64, 64, 32, 32, 16, 16).

    Raises:
      ValueError: on options SpinSphericalClassifier rejects.
    """
    options.setdefault("kernel_init", "original")
    return SpinSphericalClassifier(num_classes, MNIST_RESOLUTIONS, ((0,),) * 7, (1, 16, 16, 32, 32, 58, 58),
                                   (8,) * 7, rngs=rngs, **options)
