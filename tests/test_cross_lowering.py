"""The CUDA path lowered on a CPU machine (StableHLO for platform 'cuda'):
forward, inverse and both gradients are one custom call each of this design
(sphcnn_analysis / sphcnn_synthesis: the ring DFT and the Legendre stage launched by the handler), with
no FFT and no transposes around them, in both layouts, from n = 16 to 256 and
with lambda generated on the fly; and the constants each lowering needs come
from one plan, built once."""

from __future__ import annotations

import importlib.util
import re

import jax
import jax.numpy as jnp
import pytest

import sphcnn_kernels as sk
from sphcnn_kernels import plan as plan_module
from sphcnn_kernels import transforms

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sphcnn_kernels._cuda") is None,
                                reason="the CUDA module is not built (no nvcc)")


def _cuda_text(fn, *args) -> str:
    return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()


def _structure(text: str) -> dict:
    calls = re.findall(r'stablehlo\.custom_call @(\w+)', text)
    return {"fft": text.count("stablehlo.fft"), "transpose": text.count("stablehlo.transpose"), "calls": calls}


@pytest.mark.parametrize("mode", ["table", "onthefly"])
@pytest.mark.parametrize("layout", ["batch_major", "degree_major"])
@pytest.mark.parametrize("n", [16, 64, 256])
def test_each_transform_and_gradient_is_one_custom_call(n, layout, mode):
    t = sk.SphericalTransform(n, (0, 1), backend="ffi", layout=layout, mode=mode)
    x = jax.ShapeDtypeStruct((2, n, n, 2, 3), jnp.complex64)
    a = jax.ShapeDtypeStruct(t.spectral_shape((2,), 3), jnp.complex64)
    cases = {
        "forward": (_cuda_text(t.forward, x), ["sphcnn_analysis"]),
        "inverse": (_cuda_text(t.inverse, a), ["sphcnn_synthesis"]),
        "forward_grad": (_cuda_text(lambda v, ct: jax.vjp(t.forward, v)[1](ct)[0], x, a), ["sphcnn_synthesis"]),
        "inverse_grad": (_cuda_text(lambda v, ct: jax.vjp(t.inverse, v)[1](ct)[0], a, x), ["sphcnn_analysis"]),
    }
    for name, (text, calls) in cases.items():
        assert _structure(text) == {"fft": 0, "transpose": 0, "calls": calls}, name
        assert ("lambda_source = 0 : i32" in text) == (mode == "table"), name


def test_real_spin_zero_input_needs_no_conversion():
    t = sk.SphericalTransform(32, (0,), backend="ffi")
    text = _cuda_text(t.forward, jax.ShapeDtypeStruct((4, 32, 32, 1, 2), jnp.float32))
    assert _structure(text) == {"fft": 0, "transpose": 0, "calls": ["sphcnn_analysis"]}
    assert "stablehlo.complex" not in text and "stablehlo.convert" not in text


def test_the_xla_backend_is_the_five_pass_path_for_contrast():
    # What the FFI path replaces: cuFFT and transposes around a matrix product.
    t = sk.SphericalTransform(16, (0, 1), backend="xla")
    text = _cuda_text(t.forward, jax.ShapeDtypeStruct((2, 16, 16, 2, 3), jnp.complex64))
    assert text.count("stablehlo.fft") >= 1 and not re.findall(r"custom_call @sphcnn", text)


def test_auto_resolves_per_platform_at_lowering():
    # One transform object, two platforms: each lowering picks from its own platform's medians.
    t = sk.SphericalTransform(64, (0,), backend="auto")
    x = jax.ShapeDtypeStruct((2, 64, 64, 1, 1), jnp.complex64)
    cpu = jax.jit(t.forward).trace(x).lower(lowering_platforms=("cpu",)).as_text()
    cuda = _cuda_text(t.forward, x)
    from sphcnn_kernels.auto import choose_backend

    for text, platform in ((cpu, "cpu"), (cuda, "cuda")):
        uses_ffi = "custom_call @sphcnn_analysis" in text
        assert uses_ffi == (choose_backend(platform, "analysis", 64) == "ffi"), platform


def test_three_compilations_build_each_table_once(monkeypatch):
    counts = {"dense": 0, "packed": 0}
    build_dense, build_packed = plan_module._build_dense_table, plan_module._build_packed_table

    def dense(*args):
        counts["dense"] += 1
        return build_dense(*args)

    def packed(*args):
        counts["packed"] += 1
        return build_packed(*args)

    monkeypatch.setattr(plan_module, "_build_dense_table", dense)
    monkeypatch.setattr(plan_module, "_build_packed_table", packed)
    plan_module.get_plan.cache_clear()
    transforms.transform.cache_clear()
    n, spins = 24, (0, -1)
    x = jax.ShapeDtypeStruct((2, n, n, 2, 1), jnp.complex64)
    for backend, key in (("ffi", "packed"), ("xla", "dense")):
        t = sk.SphericalTransform(n, spins, backend=backend, mode="table")
        a = jax.ShapeDtypeStruct(t.spectral_shape((2,), 1), jnp.complex64)
        _cuda_text(t.forward, x)
        _cuda_text(t.inverse, a)
        _cuda_text(lambda v, ct: jax.vjp(t.forward, v)[1](ct)[0], x, a)
        # A transform with other options shares the plan and its table.
        other = sk.SphericalTransform(n, spins, backend=backend, mode="table", layout="degree_major")
        assert other.plan is t.plan
        _cuda_text(other.forward, x)
        assert counts[key] == 1, (backend, counts)
    plan_module.get_plan.cache_clear()
    transforms.transform.cache_clear()
