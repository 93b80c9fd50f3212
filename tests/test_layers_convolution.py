"""SpinSphericalConvolution against an independent NumPy computation of the
spectral product, its exact equivariance, options, initialization and errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sphcnn
import sphcnn_kernels as sk
from sphcnn_kernels.precision import matmul_precision
from references import band_limited_mask, random_coefficients, random_maps
from sphcnn.nn.equivariance import random_rotation


def numpy_filters(conv) -> np.ndarray:
    """The (L, S_in, S_out, C_in, C_out) filter by np.interp of every anchor
    profile, zeroed where a degree cannot carry both spins."""
    kernel = np.asarray(conv.kernel[...])  # (K, S_in, S_out, C_in, C_out)
    ell_max, anchors = conv.ell_max, conv.num_filter_params
    ell = np.arange(ell_max + 1)
    where = np.linspace(0, ell_max, anchors) if anchors > 1 else np.zeros(1)
    out = np.zeros((ell_max + 1,) + kernel.shape[1:], complex)
    for idx in np.ndindex(kernel.shape[1:]):
        profile = kernel[(slice(None),) + idx]
        if anchors == 1:
            out[(slice(None),) + idx] = profile[0]
        else:
            out[(slice(None),) + idx] = np.interp(ell, where, profile.real) + 1j * np.interp(ell, where, profile.imag)
    for i, s_in in enumerate(conv.spins_in):
        for o, s_out in enumerate(conv.spins_out):
            out[: max(abs(s_in), abs(s_out)), i, o] = 0
    return out


@pytest.mark.parametrize("anchors", [1, 3, None])
@pytest.mark.parametrize("spins_in,spins_out", [((0,), (0, 1)), ((0, 1), (0, 1)), ((1, -2), (0, 2))])
def test_spectral_product_matches_numpy(anchors, spins_in, spins_out):
    rng = np.random.default_rng(0)
    conv = sphcnn.SpinSphericalConvolution(3, 2, spins_in, spins_out, resolution=16, num_filter_params=anchors,
                                           input_representation="spectral", output_representation="spectral",
                                           rngs=nnx.Rngs(1))
    a = random_coefficients(rng, (2,), 7, spins_in, 3)
    got = np.asarray(conv(jnp.asarray(a, jnp.complex64)))
    want = np.einsum("blmic,liocd->blmod", a, numpy_filters(conv))
    want *= band_limited_mask(7, spins_out)[None, ..., None]
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())
    assert np.all(got[:, ~band_limited_mask(7, spins_out)] == 0)


def test_spatial_path_is_transforms_around_the_product():
    rng = np.random.default_rng(1)
    spins_in, spins_out = (0, 1), (0, 1)
    common = dict(resolution=16, num_filter_params=4, rngs=nnx.Rngs(2))
    spatial = sphcnn.SpinSphericalConvolution(2, 3, spins_in, spins_out, **common)
    x = random_maps(rng, (2,), 16, spins_in, 2, np.complex64)
    want = sk.inverse(np.einsum("blmic,liocd->blmod", np.asarray(sk.forward(x, spins_in)),
                                numpy_filters(spatial)).astype(np.complex64), spins_out)
    np.testing.assert_allclose(np.asarray(spatial(jnp.asarray(x))), np.asarray(want), atol=2e-5)


@pytest.mark.parametrize("spins_in,spins_out", [((0,), (0, 1)), ((0, 1), (0, 1)), ((0, 1, 2), (-1, 0))])
def test_exactly_rotation_equivariant_on_band_limited_inputs(spins_in, spins_out):
    # rotate then convolve == convolve then rotate, with the spin phases included
    # (they are implicit in rotate() acting on each spin's coefficients), fp32.
    rng = np.random.default_rng(3)
    conv = sphcnn.SpinSphericalConvolution(2, 3, spins_in, spins_out, resolution=32, num_filter_params=5,
                                           rngs=nnx.Rngs(4))
    a = jnp.asarray(random_coefficients(rng, (2,), 15, spins_in, 2, np.complex64))
    out = sk.forward(conv(sk.inverse(a, spins_in)), spins_out)
    for _ in range(3):
        angles = random_rotation(rng)
        rotated = sk.forward(conv(sk.inverse(sk.rotate(a, *angles, spins_in), spins_in)), spins_out)
        expected = sk.rotate(out, *angles, spins_out)
        assert float(jnp.max(jnp.abs(rotated - expected)) / jnp.max(jnp.abs(expected))) < 1e-5


def test_initialization_keeps_variance_through_depth():
    # Six convolutions in a row (spectral in and out, mixed spins, widths and
    # filter anchors): the mean energy per coefficient stays within a factor 1.5
    # of the input's, averaged over initializations.
    rng = np.random.default_rng(5)
    widths = (4, 8, 8, 12, 12, 16, 16)
    spins = ((0,), (0, 1), (0, 1), (0, 1, 2), (0, 1, 2), (0, 1), (0, 1))
    ratios = []
    for seed in range(4):
        a = jnp.asarray(random_coefficients(rng, (4,), 15, spins[0], widths[0], np.complex64))
        energy_in = float(jnp.sum(jnp.abs(a) ** 2)) / (np.count_nonzero(band_limited_mask(15, spins[0])) * widths[0])
        h = a
        for i in range(6):
            conv = sphcnn.SpinSphericalConvolution(widths[i], widths[i + 1], spins[i], spins[i + 1], resolution=32,
                                                   num_filter_params=(1, 4, 6, 16)[i % 4],
                                                   input_representation="spectral",
                                                   output_representation="spectral", rngs=nnx.Rngs(seed * 10 + i))
            h = conv(h)
        valid = np.count_nonzero(band_limited_mask(15, spins[-1])) * widths[-1]
        ratios.append(float(jnp.sum(jnp.abs(h) ** 2)) / valid / energy_in)
    assert 1 / 1.5 < np.mean(ratios) < 1.5, ratios


@pytest.mark.parametrize("resolution,anchors,expected", [(32, 4, 2.0 / (2 * 3 * 8 * 16)), (16, None, 2.0 / (8 * 2 * 3 * 8))])
def test_original_initialization_variance(resolution, anchors, expected):
    # kernel_init="original": E|k|^2 = 2 / fan_in with the fan-in of the original
    # code's variance_scaling: S_in S_out C_in C_out for localized filters,
    # (ell_max + 1) S_in S_out C_in for free ones.
    conv = sphcnn.SpinSphericalConvolution(8, 16, (0, 1), (0, 1, 2), resolution=resolution, num_filter_params=anchors,
                                           kernel_init="original", rngs=nnx.Rngs(3))
    kernel = np.asarray(conv.kernel[...])
    measured = np.mean(np.abs(kernel) ** 2)
    # relative standard error of a mean of |N|^2 (exponential) over the entries: 1 / sqrt(size)
    assert abs(measured / expected - 1) < 4 / np.sqrt(kernel.size), (measured, expected)
    # real and imaginary parts carry half the variance each
    assert abs(np.mean(kernel.real**2) / np.mean(kernel.imag**2) - 1) < 8 / np.sqrt(kernel.size)


def test_pooling_upsampling_and_bias():
    rng = np.random.default_rng(6)
    spins = (0, 1)
    x = jnp.asarray(random_maps(rng, (2,), 32, spins, 2, np.complex64))
    pool = sphcnn.SpinSphericalConvolution(2, 2, spins, spins, resolution=32, spectral_pooling=True,
                                           num_filter_params=3, rngs=nnx.Rngs(7))
    assert pool(x).shape == (2, 16, 16, 2, 2) and pool.ell_max == 7
    # the same as convolving the coefficients truncated to degree 7 at resolution 16
    truncated = sk.forward(x, spins, ell_max=7)
    spectral = sphcnn.SpinSphericalConvolution(2, 2, spins, spins, resolution=16, num_filter_params=3,
                                               input_representation="spectral", rngs=nnx.Rngs(7))
    np.testing.assert_allclose(np.asarray(pool(x)), np.asarray(spectral(truncated)), atol=1e-5)

    up = sphcnn.SpinSphericalConvolution(2, 2, spins, spins, resolution=16, spectral_upsampling=True,
                                         rngs=nnx.Rngs(8))
    small = x[:, ::2, ::2]
    assert up(small).shape == (2, 32, 32, 2, 2)
    np.testing.assert_allclose(np.asarray(sk.forward(up(small), spins, ell_max=7)),
                               np.asarray(up.__class__(2, 2, spins, spins, resolution=16, rngs=nnx.Rngs(8),
                                                       output_representation="spectral")(small)), atol=1e-4)

    biased = sphcnn.SpinSphericalConvolution(2, 2, spins, spins, resolution=32, use_bias=True, rngs=nnx.Rngs(9))
    plain_out = np.asarray(biased(x))
    biased.bias[...] = jnp.asarray([1.5 - 2j, 0.25], jnp.complex64)
    shifted = np.asarray(biased(x))
    np.testing.assert_allclose(shifted[..., 0, :] - plain_out[..., 0, :],
                               np.broadcast_to([1.5 - 2j, 0.25], shifted[..., 0, :].shape), atol=1e-5)
    np.testing.assert_allclose(shifted[..., 1, :], plain_out[..., 1, :], atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(num_filter_params=0), r"'num_filter_params'.*>= 1"),
        (dict(num_filter_params=9), r"'num_filter_params'.*<= ell_max \+ 1 = 8, got 9"),
        (dict(spectral_pooling=True, spectral_upsampling=True), "cannot both"),
        (dict(input_representation="grid"), r"'input_representation'.*'grid'"),
        (dict(use_bias=True, spins_out=(1,)), "spin 0"),
        (dict(resolution=15), r"'resolution'.*15"),
        (dict(spins_in=(0, 0)), r"'spins_in'.*repeat"),
        (dict(spins_out=(9,)), r"\|s\| = 9 need ell_max >= 9"),
        (dict(in_channels=0), r"'in_channels'.*>= 1"),
        (dict(kernel_init="he"), r"'kernel_init' must be one of 'unit_energy', 'original', 'scaling', got 'he'"),
    ],
)
def test_bad_configurations(kwargs, pattern):
    config = dict(in_channels=2, out_channels=2, spins_in=(0,), spins_out=(0, 1), resolution=16, rngs=nnx.Rngs(0))
    config.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        sphcnn.SpinSphericalConvolution(**config)


def test_bad_inputs():
    conv = sphcnn.SpinSphericalConvolution(2, 2, (0, 1), (0,), resolution=16, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"input has shape \(2, 16, 16, 1, 2\); expected .*spins \(0, 1\)"):
        conv(jnp.zeros((2, 16, 16, 1, 2), jnp.complex64))
    with pytest.raises(ValueError, match=r"expected \(batch, 16, 16, 2, 2\)"):
        conv(jnp.zeros((2, 8, 8, 2, 2), jnp.complex64))
    with pytest.raises(ValueError, match=r"input carries spins \(0, 2\), but the layer was built for spins \(0, 1\)"):
        conv(jnp.zeros((2, 16, 16, 2, 2), jnp.complex64), spins=(0, 2))


def transforms_of(layer) -> list:
    """Every SphericalTransform held by a layer or its sublayers."""
    return [value for _, node in nnx.iter_graph(layer) if isinstance(node, nnx.Module)
            for value in vars(node).values() if isinstance(value, sk.SphericalTransform)]


LAYERS_WITH_TRANSFORMS = {
    "convolution": lambda: sphcnn.SpinSphericalConvolution(2, 3, (0, 1), (0, 1), resolution=16,
                                                           num_filter_params=3, rngs=nnx.Rngs(0)),
    "pooling convolution": lambda: sphcnn.SpinSphericalConvolution(2, 3, (0, 1), (0, 1), resolution=16,
                                                                   spectral_pooling=True, rngs=nnx.Rngs(0)),
    "block": lambda: sphcnn.SpinSphericalBlock(2, 3, (0, 1), (0, 1), resolution_in=16, resolution_out=8,
                                               num_filter_params=3, rngs=nnx.Rngs(0)),
    "spatial batch norm block": lambda: sphcnn.SpinSphericalBlock(2, 3, (0, 1), (0, 1), resolution_in=16,
                                                                  resolution_out=16, batch_norm="spatial",
                                                                  rngs=nnx.Rngs(0)),
    "residual block": lambda: sphcnn.SpinSphericalResidualBlock(2, 3, (0, 1), (0, 1), resolution_in=16,
                                                                resolution_out=8, rngs=nnx.Rngs(0)),
}


@pytest.mark.parametrize("name", list(LAYERS_WITH_TRANSFORMS))
def test_layers_build_their_transforms_once(name, monkeypatch):
    # Transforms are built in __init__ and only used in __call__: calling the
    # layer (eagerly, and jitted with two batch sizes, i.e. two traces) builds
    # no SphericalTransform; the layer's are complex64, degree-major, on the
    # cached plans, and static (graph data, not state). The functional
    # transforms' cache is emptied so that a call through them would count too.
    sk.transforms.transform.cache_clear()
    built = []
    init = sk.SphericalTransform.__init__

    def counting_init(self, *args, **kwargs):
        built.append(args)
        init(self, *args, **kwargs)

    monkeypatch.setattr(sk.SphericalTransform, "__init__", counting_init)
    layer = LAYERS_WITH_TRANSFORMS[name]()
    transforms = transforms_of(layer)
    assert len(built) == len(transforms) > 0
    x = jnp.asarray(random_maps(np.random.default_rng(9), (2,), 16, (0, 1), 2, np.complex64))
    layer(x)
    apply = nnx.jit(lambda module, v: module(v))
    apply(layer, x)
    apply(layer, x[:1])
    assert len(built) == len(transforms)
    for t in transforms:
        assert t.plan is sk.get_plan(t.n, t.ell_max, t.spins, "complex64")
        assert (t.layout, t.backend, t.dtype) == ("degree_major", "auto", np.complex64)
    assert not any(isinstance(leaf, sk.SphericalTransform) for leaf in jax.tree.leaves(nnx.state(layer)))


@pytest.mark.parametrize("name", list(LAYERS_WITH_TRANSFORMS))
def test_layer_graphs_compare_by_configuration(name):
    # Static transforms compare and hash by value: two layers of the same
    # configuration (other parameters) have equal graph definitions, so a jitted
    # step compiled for one is reused for the other.
    first, second = (nnx.split(LAYERS_WITH_TRANSFORMS[name]())[0] for _ in range(2))
    assert first == second and hash(first) == hash(second)


@pytest.mark.parametrize("spectral_pooling", [False, True])
def test_layer_equals_functional_transforms(spectral_pooling):
    # The layer's transforms compute what the functional sk.forward / sk.inverse do.
    spins_in, spins_out = (0, 1), (0, 1, 2)
    conv = sphcnn.SpinSphericalConvolution(2, 3, spins_in, spins_out, resolution=16, num_filter_params=3,
                                           spectral_pooling=spectral_pooling, use_bias=True, rngs=nnx.Rngs(3))
    conv.bias[...] = jnp.asarray([0.5 - 1j, 2.0, -0.25j], jnp.complex64)
    x = jnp.asarray(random_maps(np.random.default_rng(10), (2,), 16, spins_in, 2, np.complex64))
    a = sk.forward(x, spins_in, ell_max=conv.ell_max, layout="degree_major")
    b = jnp.einsum("l...mia,lioab->l...mob", a, conv.filters(), precision=matmul_precision())
    b = b.at[0, ..., conv.ell_max, 0, :].add(math.sqrt(4 * math.pi) * conv.bias[...])
    want = np.asarray(sk.inverse(b, spins_out, n=conv.resolution_out, layout="degree_major"))
    got = np.asarray(conv(x))
    assert got.shape == want.shape == (2, conv.resolution_out, conv.resolution_out, 3, 3)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_layers_compute_in_complex64():
    # complex128 / float64 inputs are rounded to the layer's complex64 / float32
    # (real spin-0 maps take the real forward transform); outputs are complex64.
    rng = np.random.default_rng(11)
    conv = sphcnn.SpinSphericalConvolution(2, 2, (0,), (0, 1), resolution=16, num_filter_params=3, rngs=nnx.Rngs(4))
    z = random_maps(rng, (2,), 16, (0,), 2)  # complex128
    out = conv(jnp.asarray(z))
    assert out.dtype == jnp.complex64
    np.testing.assert_array_equal(np.asarray(out), np.asarray(conv(jnp.asarray(z, jnp.complex64))))
    real = z.real  # float64
    out = conv(jnp.asarray(real))
    assert out.dtype == jnp.complex64
    np.testing.assert_array_equal(np.asarray(out), np.asarray(conv(jnp.asarray(real, jnp.float32))))
    np.testing.assert_allclose(np.asarray(out), np.asarray(conv(jnp.asarray(real, jnp.complex64))),
                               atol=1e-5 * float(jnp.max(jnp.abs(out))))
    spectral = sphcnn.SpinSphericalConvolution(2, 2, (0, 1), (0, 1), resolution=16, rngs=nnx.Rngs(5),
                                               input_representation="spectral", output_representation="spectral")
    assert spectral(jnp.asarray(random_coefficients(rng, (2,), 7, (0, 1), 2))).dtype == jnp.complex64
    block = sphcnn.SpinSphericalResidualBlock(2, 2, (0,), (0, 1), resolution_in=16, resolution_out=16,
                                              rngs=nnx.Rngs(6))
    assert block(jnp.asarray(real)).dtype == jnp.complex64
