"""The CUDA kernels (ffi backend on a CUDA device: ring DFT + Legendre
stage per transform) against the xla backend in complex128.

Every test needs a CUDA GPU and is skipped without one (see conftest.py, which
also enables float64). The reference is the xla backend in complex128 (float64
table), so the complex64 kernels are checked against an accurate result. The
same block functions are checked without a GPU in test_cuda_blocks_emulated.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import sphcnn_kernels as sk
from references import band_limited_mask, random_coefficients
from sphcnn_kernels.backends import ffi_backend
from sphcnn_kernels.plan import get_plan
from sphcnn_kernels.ops import analysis_p, synthesis_p
from numerics import assert_close

# Error relative to the largest reference value.
TOL = {"complex64": 1e-5, "complex128": 1e-12}
MODES = ("table", "onthefly")

# (n, ell_max, spins, batch shape, channels)
CASES = [
    (4, 1, (0,), (), 1),
    (8, 3, (0, 1), (2,), 3),
    (16, 7, (-2, 1, 3), (2, 1), 33),
    (16, 5, (0, 1, -3), (3,), 1),  # pooled: ell_max < n/2 - 1
    (64, 31, (0, 1), (2,), 3),
    (64, 20, (-2, 1, 3), (), 33),  # pooled
    (70, 34, (2, -1), (3,), 5),    # n = 2 5 7
    (128, 63, (0,), (1, 2), 1),
    (256, 127, (0, 1), (), 3),
]
CASE_IDS = [f"n{c[0]}-l{c[1]}-s{'_'.join(map(str, c[2]))}-b{'x'.join(map(str, c[3])) or '0'}-c{c[4]}" for c in CASES]


def _complex(rng, shape, dtype):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _bind(primitive, value, plan, sign, weighted, backend, mode="auto", layout="batch_major"):
    params = dict(plan=plan, sign=sign, weighted=weighted, backend=backend, precision="highest", layout=layout,
                  mode=mode)
    return jax.jit(lambda v: primitive.bind(v, **params))(value)


@pytest.mark.gpu
@pytest.mark.parametrize("sign, weighted, layout", [(-1, True, "batch_major"), (1, False, "degree_major")])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("n, ell_max, spins, batch, channels", CASES, ids=CASE_IDS)
def test_analysis_matches_xla(n, ell_max, spins, batch, channels, dtype, mode, sign, weighted, layout):
    rng = np.random.default_rng(n + 7 * ell_max + channels)
    plan, ref_plan = get_plan(n, ell_max, spins, dtype), get_plan(n, ell_max, spins, "complex128")
    x = _complex(rng, tuple(batch) + (n, n, len(spins), channels), dtype)
    got = _bind(analysis_p, jnp.asarray(x), plan, sign, weighted, "ffi", mode, layout)
    want = _bind(analysis_p, jnp.asarray(x.astype(np.complex128)), ref_plan, sign, weighted, "xla", layout=layout)
    assert got.dtype == np.dtype(dtype)
    assert_close(got, want, TOL[dtype])
    got = np.asarray(got)
    if layout == "degree_major":
        got = np.moveaxis(got, 0, -4)
    below = ~band_limited_mask(ell_max, spins)
    assert np.all(got[..., below, :] == 0)


@pytest.mark.gpu
@pytest.mark.parametrize("sign, weighted, layout", [(1, False, "batch_major"), (-1, True, "degree_major")])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("n, ell_max, spins, batch, channels", CASES, ids=CASE_IDS)
def test_synthesis_matches_xla(n, ell_max, spins, batch, channels, dtype, mode, sign, weighted, layout):
    rng = np.random.default_rng(3 * n + ell_max + channels)
    plan, ref_plan = get_plan(n, ell_max, spins, dtype), get_plan(n, ell_max, spins, "complex128")
    # Entries below l0 are not zero here: the kernels must ignore them.
    a = _complex(rng, tuple(batch) + (ell_max + 1, 2 * ell_max + 1, len(spins), channels), dtype)
    if layout == "degree_major":
        a = np.moveaxis(a, -4, 0)
    got = _bind(synthesis_p, jnp.asarray(a), plan, sign, weighted, "ffi", mode, layout)
    want = _bind(synthesis_p, jnp.asarray(a.astype(np.complex128)), ref_plan, sign, weighted, "xla", layout=layout)
    assert got.dtype == np.dtype(dtype)
    assert_close(got, want, TOL[dtype])


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_spins_above_ell_max_give_zeros(dtype, mode):
    # The public functions reject |s| > ell_max; the kernels must still give zeros.
    n, ell_max, spins = 8, 2, (0, 3, -5)
    rng = np.random.default_rng(5)
    plan, ref_plan = get_plan(n, ell_max, spins, dtype), get_plan(n, ell_max, spins, "complex128")
    x = _complex(rng, (2, n, n, len(spins), 3), dtype)
    a = _complex(rng, (2, ell_max + 1, 2 * ell_max + 1, len(spins), 3), dtype)
    got_a = np.asarray(_bind(analysis_p, jnp.asarray(x), plan, -1, True, "ffi", mode))
    got_x = np.asarray(_bind(synthesis_p, jnp.asarray(a), plan, 1, False, "ffi", mode))
    assert np.all(got_a[..., 1:, :] == 0) and np.all(got_x[..., 1:, :] == 0)
    assert_close(got_a, _bind(analysis_p, jnp.asarray(x.astype(np.complex128)), ref_plan, -1, True, "xla"), TOL[dtype])
    assert_close(got_x, _bind(synthesis_p, jnp.asarray(a.astype(np.complex128)), ref_plan, 1, False, "xla"), TOL[dtype])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_real_input_for_spin_zero(dtype):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((3, 32, 32, 1, 5)).astype(dtype)
    got = sk.forward(jnp.asarray(x), [0], backend="ffi")
    want = sk.forward(jnp.asarray(x.astype(np.complex128)), [0], backend="xla")
    assert_close(got, want, TOL[np.dtype(got.dtype).name])
    grad = jax.grad(lambda v: jnp.sum(jnp.abs(sk.forward(v, [0], backend="ffi")) ** 2))(jnp.asarray(x))
    want_grad = jax.grad(lambda v: jnp.sum(jnp.abs(sk.forward(v, [0], backend="xla")) ** 2))(jnp.asarray(x))
    assert grad.dtype == x.dtype
    assert_close(grad, want_grad, 1e-4 if dtype == np.float32 else 1e-11)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_forward_inverse_round_trip_default_mode(dtype):
    ell_max, spins = 31, (0, 1, -2)  # n = 64
    rng = np.random.default_rng(2)
    a = random_coefficients(rng, (2,), ell_max, spins, 3, dtype)
    x = sk.inverse(jnp.asarray(a), spins, backend="ffi")
    back = sk.forward(x, spins, backend="ffi")
    assert_close(back, a, TOL[dtype])


@pytest.mark.gpu
def test_onthefly_round_trip_ell_1023():
    n, ell_max, spins = 2048, 1023, (0, 2)
    assert ffi_backend.lambda_source(get_plan(n, ell_max, spins, "complex128"), "auto", "cuda") == "onthefly"
    rng = np.random.default_rng(1023)
    a = random_coefficients(rng, (), ell_max, spins, 1, np.complex128)
    x = sk.inverse(jnp.asarray(a), spins, n=n, backend="ffi")
    assert x.shape == (n, n, len(spins), 1)
    back = sk.forward(x, spins, ell_max=ell_max, backend="ffi")
    assert_close(back, a, 1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
def test_gradients(mode):
    n, spins = 8, (0, 1)
    t = sk.SphericalTransform(n, spins, dtype="complex128", backend="ffi", mode=mode)
    rng = np.random.default_rng(4)
    x = jnp.asarray(_complex(rng, (2, n, n, len(spins), 2), np.complex128))
    a = jnp.asarray(_complex(rng, (2,) + t.plan.spectral_core_shape + (len(spins), 2), np.complex128))
    check_grads(t.forward, (x,), order=2, modes=("fwd", "rev"))
    check_grads(t.inverse, (a,), order=2, modes=("fwd", "rev"))


@pytest.mark.gpu
def test_command_buffers_give_the_same_result(tmp_path):
    # XLA records the custom calls into CUDA graphs (the handlers declare
    # command-buffer compatibility); the result must not change.
    code = (
        "import jax, jax.numpy as jnp, numpy as np, sphcnn_kernels as sk\n"
        "t = sk.SphericalTransform(64, (0, 1), backend='ffi')\n"
        "x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 64, 64, 2, 8)).astype(np.complex64))\n"
        "f = jax.jit(lambda v: t.inverse(t.forward(v) * 2.0))\n"
        "for _ in range(3): y = f(x)\n"
        "np.save(%r, np.asarray(y))\n"
    )
    outputs = []
    for i, flags in enumerate(("--xla_gpu_enable_command_buffer=", "--xla_gpu_enable_command_buffer=+CUSTOM_CALL "
                                                                    "--xla_gpu_graph_min_graph_size=1")):
        path = tmp_path / f"out{i}.npy"
        env = dict(os.environ, XLA_FLAGS=flags, XLA_PYTHON_CLIENT_PREALLOCATE="false")
        result = subprocess.run([sys.executable, "-c", code % str(path)], env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(np.load(path))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.gpu
def test_invalid_calls_raise():
    ffi_backend.extension("cuda")
    n, ell_max = 8, 3
    maps = jnp.zeros((n, n, 1, 2), jnp.complex64)
    spectral = jax.ShapeDtypeStruct((ell_max + 1, 2 * ell_max + 1, 1, 2), jnp.complex64)
    scale = jnp.ones((n,), jnp.float32)
    empty = jnp.zeros((0,), jnp.float32)
    spins = np.array([0], np.int64)

    def call(operand, out, ring_scale, table=empty, source=1, spin_values=spins, sign=-1, scratch=1 << 20):
        fn = jax.ffi.ffi_call("sphcnn_analysis", (out, jax.ShapeDtypeStruct((scratch,), np.uint8)))
        run = jax.jit(lambda v, w, t: fn(v, w, t, spins=spin_values, sign=np.int32(sign), degree_major=False,
                                         lambda_source=np.int32(source))[0])
        return jax.block_until_ready(run(operand, ring_scale, table))

    assert call(maps, spectral, scale).shape == spectral.shape
    with pytest.raises(Exception, match="lambda_source"):
        call(maps, spectral, scale, source=3)
    with pytest.raises(Exception, match="sign must be -1 or \\+1"):
        call(maps, spectral, scale, sign=2)
    with pytest.raises(Exception, match="ring_scale"):
        call(maps, spectral, jnp.ones((n + 2,), jnp.float32))
    with pytest.raises(Exception, match="lambda table must hold"):
        call(maps, spectral, scale, source=0)
    with pytest.raises(Exception, match="inconsistent shapes"):
        call(maps, spectral, scale, spin_values=np.array([0, 1], np.int64))
    with pytest.raises(Exception, match="scratch holds 16 bytes"):
        call(maps, spectral, scale, scratch=16)
