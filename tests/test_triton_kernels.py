"""The Triton backend: its kernels compile for sm_80 and sm_90 wherever triton is
installed (no GPU needed), and on a CUDA GPU the transforms agree with the XLA
backend, round-trip, have correct gradients, and precision='fast' stays usable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

pytest.importorskip("triton")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

import sphcnn_kernels as sk  # noqa: E402
from references import band_limited_mask, random_coefficients, random_maps  # noqa: E402
from sphcnn_kernels.backends import triton_kernels  # noqa: E402
from sphcnn_kernels.backends.triton_backend import block_sizes  # noqa: E402
from numerics import relative_error  # noqa: E402

TOL = {np.complex128: 1e-12, np.complex64: 1e-5}
KERNELS = {
    "analysis": (triton_kernels.legendre_analysis_kernel, ("BLOCK_L", "BLOCK_J")),
    "synthesis": (triton_kernels.legendre_synthesis_kernel, ("BLOCK_J", "BLOCK_L")),
}
# The real dtype and tl.dot input precision of each plan dtype / precision ("fast"
# means TF32 only in float32).
DOT_CONFIGS = [("fp32", np.float32, "ieee"), ("fp32", np.float32, "tf32"), ("fp64", np.float64, "ieee")]

needs_triton_backend = pytest.mark.skipif(
    "triton" not in sk.available_backends(), reason="the triton backend needs a CUDA GPU and jax-triton"
)


def _compile(kind: str, type_name: str, real_dtype, precision: str, size: str, capability: int):
    """Compile one kernel to a cubin the way jax-triton does (pointers, then int32
    scalars, then the output pointer; tiles and precision as constexprs), with the
    tiles the backend picks for a small (n = 8) or a large (n = 256) plan."""
    kernel, tile_names = KERNELS[kind]
    n, degrees, maps = (8, 4, 6) if size == "small" else (256, 128, 512)
    rows, contracted = (degrees, n) if kind == "analysis" else (n, degrees)
    blocks = block_sizes(rows, contracted, maps, real_dtype)
    constexprs = {tile_names[0]: blocks.rows, tile_names[1]: blocks.contracted}
    constexprs.update(BLOCK_P=blocks.maps, PRECISION=precision)
    signature = {}
    for name in kernel.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name == "lmin_ptr":
            signature[name] = "*i32"
        elif name.endswith("_ptr"):
            signature[name] = f"*{type_name}"
        else:
            signature[name] = "i32"
    source = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", capability, 32), options={"num_warps": 4})


@pytest.mark.parametrize("capability", [80, 90])
@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("type_name, real_dtype, precision", DOT_CONFIGS)
@pytest.mark.parametrize("kind", ["analysis", "synthesis"])
def test_kernels_compile_to_cubin(kind, type_name, real_dtype, precision, size, capability):
    compiled = _compile(kind, type_name, real_dtype, precision, size, capability)
    assert isinstance(compiled.asm["cubin"], bytes) and len(compiled.asm["cubin"]) > 0
    assert compiled.metadata.name == f"legendre_{kind}_kernel"
    # precision='highest' must not round products to TF32.
    assert ("tf32" in compiled.asm["ptx"]) == (precision == "tf32")


def test_block_sizes_are_valid_dot_tiles():
    for rows, contracted, maps in [(1, 4, 2), (2, 4, 2), (64, 128, 66), (1000, 2000, 10**6)]:
        for dtype in (np.float32, np.float64):
            for tile in block_sizes(rows, contracted, maps, dtype):
                assert tile >= 16 and tile & (tile - 1) == 0 and tile <= 64


CASES = [
    (n, spins, channels)
    for n in (4, 8, 16, 64, 128)
    for spins in ((0,), (0, 1), (-2, 1, 3))
    for channels in (1, 3, 33)
    if max(abs(s) for s in spins) <= n // 2 - 1
]


@pytest.mark.gpu
@needs_triton_backend
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("n, spins, channels", CASES)
def test_matches_xla(n, spins, channels, dtype):
    rng = np.random.default_rng(n * 100 + channels)
    batch = () if channels == 33 else (2,)
    x = random_maps(rng, batch, n, spins, channels, dtype)
    a = random_coefficients(rng, batch, n // 2 - 1, spins, channels, dtype)
    want = sk.forward(x, spins, backend="xla")
    got = sk.forward(x, spins, backend="triton")
    assert got.dtype == dtype and got.shape == want.shape
    assert relative_error(got, want) < TOL[dtype]
    want = sk.inverse(a, spins, backend="xla")
    got = sk.inverse(a, spins, backend="triton")
    assert got.dtype == dtype and got.shape == want.shape
    assert relative_error(got, want) < TOL[dtype]


@pytest.mark.gpu
@needs_triton_backend
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("n, ell_max", [(16, 3), (64, 20), (128, 40)])
def test_pooled_forward_matches_xla(n, ell_max, dtype):
    rng = np.random.default_rng(n + ell_max)
    spins = (-2, 1, 3)
    x = random_maps(rng, (2,), n, spins, 3, dtype)
    want = sk.forward(x, spins, ell_max=ell_max, backend="xla")
    got = sk.forward(x, spins, ell_max=ell_max, backend="triton")
    assert got.shape == want.shape
    assert relative_error(got, want) < TOL[dtype]


@pytest.mark.gpu
@needs_triton_backend
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("ell_max, n", [(3, 16), (7, 40), (20, 128)])
def test_upsampled_inverse_matches_xla(ell_max, n, dtype):
    rng = np.random.default_rng(ell_max + n)
    spins = (0, 1)
    a = random_coefficients(rng, (2,), ell_max, spins, 3, dtype)
    want = sk.inverse(a, spins, n=n, backend="xla")
    got = sk.inverse(a, spins, n=n, backend="triton")
    assert got.shape == want.shape
    assert relative_error(got, want) < TOL[dtype]


@pytest.mark.gpu
@needs_triton_backend
def test_exact_zeros_below_spin_and_order():
    rng = np.random.default_rng(5)
    spins = (0, 2, -3)
    a = np.asarray(sk.forward(random_maps(rng, (2,), 16, spins, 3), spins, backend="triton"))
    mask = np.broadcast_to(band_limited_mask(7, spins)[None, ..., None], a.shape)
    assert np.all(a[~mask] == 0) and np.all(a[mask] != 0)


@pytest.mark.gpu
@needs_triton_backend
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("n", [4, 8, 16, 64, 128])
def test_round_trip_coefficients(n, dtype):
    rng = np.random.default_rng(n)
    spins = (0, 1) if n < 8 else (-2, 0, 1, 3)
    a = random_coefficients(rng, (2,), n // 2 - 1, spins, 3, dtype)
    back = sk.forward(sk.inverse(a, spins, backend="triton"), spins, backend="triton")
    assert back.dtype == dtype
    assert relative_error(back, a) < TOL[dtype]


@pytest.mark.gpu
@needs_triton_backend
def test_check_grads():
    rng = np.random.default_rng(23)
    spins = (0, 1)
    x = jnp.asarray(random_maps(rng, (1,), 8, spins, 2))
    a = jnp.asarray(random_coefficients(rng, (1,), 3, spins, 2))
    check_grads(lambda v: sk.forward(v, spins, backend="triton"), (x,), order=1, modes=("fwd", "rev"))
    check_grads(lambda v: sk.inverse(v, spins, backend="triton"), (a,), order=1, modes=("fwd", "rev"))
    check_grads(lambda v: sk.forward(v, spins, ell_max=2, backend="triton"), (x,), order=1, modes=("fwd", "rev"))
    check_grads(lambda v: sk.inverse(v, spins, n=12, backend="triton"), (a,), order=1, modes=("fwd", "rev"))


@pytest.mark.gpu
@needs_triton_backend
def test_jit_and_vmap():
    rng = np.random.default_rng(24)
    spins = (0, -1)
    x = random_maps(rng, (3, 2), 16, spins, 2, np.complex64)
    fwd = lambda v: sk.forward(v, spins, backend="triton")  # noqa: E731
    want = np.asarray(fwd(x))
    np.testing.assert_array_equal(np.asarray(jax.jit(fwd)(x)), want)
    got = np.asarray(jax.vmap(fwd, in_axes=1, out_axes=1)(x))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


@pytest.mark.gpu
@needs_triton_backend
@pytest.mark.parametrize("n", [16, 64, 128])
def test_fast_precision_round_trip(n, record_property):
    rng = np.random.default_rng(30 + n)
    spins = (0, 1, -2)
    a = random_coefficients(rng, (2,), n // 2 - 1, spins, 4, np.complex64)
    inv = sk.inverse(a, spins, backend="triton", precision="fast")
    back = sk.forward(inv, spins, backend="triton", precision="fast")
    error = relative_error(back, a)
    record_property("fast_round_trip_error", error)
    print(f"precision='fast' round trip, n = {n}: relative error {error:.2e}")
    assert error < 1e-2
