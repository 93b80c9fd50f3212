"""The whole spherical MNIST training step (spin_classifier_6_layers, batch 32:
forward, backward, Adam, batch statistics) lowered for CUDA on a CPU machine:
everything XLA cannot put into a CUDA graph or fuse is absent. No FFT (cuFFT
is never captured in a command buffer), no scatter or gather (separate,
unfused kernels), and the only custom calls are this package's handlers,
each command-buffer compatible (tests/test_ffi_contract.py checks their
traits): 6 blocks x (analysis + synthesis) forward, the analyses with the
convolution's product and the batch norm's moments in their epilogue (5 with
the previous block's nonlinearity in their prologue), the syntheses with the
batch norm's apply fused in, and the same transposed backward (the batch norm's
gradient in the epilogue of the syntheses' transposes), less the input's
gradient. Transposes touch only parameter-sized
arrays (filters), and nothing is concatenated."""

from __future__ import annotations

import collections
import functools
import importlib.util
import json
import math
import re

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import sphcnn
from sphcnn.tasks.mnist.task import TASK
from sphcnn.train import optimizers
from sphcnn.train import step as training

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sphcnn_kernels._cuda") is None,
                                reason="the CUDA module is not built (no nvcc)")

BATCH = 32


def _lowered_step_text(backend: str) -> str:
    model = sphcnn.spin_classifier_6_layers(rngs=nnx.Rngs(0), backend=backend)
    optimizer = optimizers.adam(1e-3)
    graphs, state = training.split(model, optimizer)
    batch = {"images": jax.ShapeDtypeStruct((BATCH, 64, 64, 1, 1), jnp.float32),
             "labels": jax.ShapeDtypeStruct((BATCH,), jnp.int32),
             "weights": jax.ShapeDtypeStruct((BATCH,), jnp.float32)}
    step = jax.jit(functools.partial(training.train_step, graphs, optimizer, TASK, 0))
    return step.trace(state, batch).lower(lowering_platforms=("cuda",)).as_text()


def _op_counts(text: str) -> collections.Counter:
    return collections.Counter(re.findall(r"\bstablehlo\.(\w+)", text))


def _result_sizes(text: str, op: str) -> list[int]:
    """Element counts of the results of every `op` in the text."""
    sizes = []
    for line in re.findall(rf"stablehlo\.{op}\b.*", text):
        shape = re.findall(r"-> tensor<([0-9x]+)x(?:complex<f32>|f32|f64|i32)>", line)
        assert shape, line
        sizes.append(math.prod(int(d) for d in shape[-1].split("x")))
    return sizes


@pytest.fixture(scope="module")
def step_text() -> str:
    return _lowered_step_text("ffi")


def test_the_step_has_no_fft_scatter_or_gather(step_text):
    counts = _op_counts(step_text)
    assert counts["fft"] == 0 and counts["scatter"] == 0 and counts["gather"] == 0, counts


def test_the_only_custom_calls_are_the_command_buffer_compatible_handlers(step_text):
    from sphcnn_kernels import _cuda

    calls = collections.Counter(re.findall(r"stablehlo\.custom_call @(\w+)", step_text))
    assert set(calls) <= set(_cuda.registrations())
    # forward: 6 mixing analyses (each block's forward transform with the
    # convolution's product and the batch norm's moments as the Legendre stage's epilogue, blocks
    # 2-6 with the previous block's nonlinearity, and pooling, in the ring DFT:
    # sphcnn_kernels.ops.mixing_analysis) and 6 affine syntheses (the batch norm's apply
    # inside); backward: 6 affine gradients (the syntheses' transposes with the
    # batch norm's gradient of its affine map in the Legendre stage's epilogue) and 5 mixing
    # gradients (the transposed product in the Legendre stage's prologue, the activation's
    # gradient in the ring DFT), without the gradient of the input images
    assert calls == {"sphcnn_mixing_analysis": 6, "sphcnn_affine_synthesis": 6, "sphcnn_affine_gradient": 6,
                     "sphcnn_mixing_gradient": 5}, calls


def test_the_products_over_coefficients_are_inside_the_kernels(step_text):
    # the mixing and its transpose run in the mixing targets; the
    # matmuls left are parameter-sized: 6 weight gradients (sums over batch and
    # orders), the filter interpolations and the dense readout
    lines = re.findall(r"stablehlo\.dot_general.*", step_text)
    assert sum("contracting_dims = [1, 2] x [1, 2]" in line for line in lines) == 6
    assert max(_result_sizes(step_text, "dot_general")) <= 32 * 2 * 2 * 16 * 16


def test_transposes_and_concatenations_stay_off_the_activations(step_text):
    # the largest filter is (ell_max + 1, S_in, S_out, C_in, C_out) = (32, 2, 2, 16, 16)
    assert max(_result_sizes(step_text, "transpose")) <= 32 * 2 * 2 * 16 * 16
    # the spin split and the pooling's wrap-around are selects, pads and slices
    assert _op_counts(step_text)["concatenate"] == 0


def test_the_default_model_runs_xla_on_cuda_until_the_kernels_are_measured(tmp_path, monkeypatch):
    # backend="auto" resolves per platform at lowering: with the package's table,
    # which holds no medians of the current CUDA kernels, the whole step (fused
    # blocks included) is the xla path; once the table holds medians of these
    # kernels that prefer them, it is the same step as backend="ffi"
    from sphcnn_kernels import auto

    assert {auto.choose_backend("cuda", d, n) for d in auto.DIRECTIONS for n in (16, 32, 64)} == {"xla"}
    counts = _op_counts(_lowered_step_text("auto"))
    assert counts["fft"] > 0 and counts["custom_call"] == 0, counts
    table = {"cuda": {auto.DIGEST_KEY: auto.kernel_digest("cuda"),
                      **{d: {str(n): {"ffi": 1.0, "xla": 2.0} for n in (16, 64)} for d in auto.DIRECTIONS}}}
    (tmp_path / "auto_backend.json").write_text(json.dumps(table))
    monkeypatch.setattr(auto, "TIMINGS_FILE", tmp_path / "auto_backend.json")
    auto.measured_timings.cache_clear()
    try:
        counts = _op_counts(_lowered_step_text("auto"))
    finally:
        auto.measured_timings.cache_clear()
    assert counts["fft"] == 0 and counts["custom_call"] == 23, counts


def test_the_xla_backend_step_runs_cufft_for_contrast():
    counts = _op_counts(_lowered_step_text("xla"))
    assert counts["fft"] > 0 and counts["custom_call"] == 0, counts
