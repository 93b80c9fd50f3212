"""Checks of the profiler parsing of benchmarks.measure (no timings here).

The GPU branch is checked on a synthetic trace laid out as the XLA GPU tracer
writes one (a '/device:GPU:0' plane with one line per stream), and on a real
trace where a GPU is present (marked gpu: benchmarks/gpu_suite.sh runs it); the
CPU branch on a real trace of a CPU machine."""

import jax
import jax.numpy as jnp
import pytest
from jax.profiler import ProfileData

from benchmarks.measure import kernel_profile, kernel_summary

SYNTHETIC_GPU_TRACE = """
planes {
  id: 1
  name: "/device:GPU:0"
  lines {
    id: 7
    name: "Stream #7(Compute)"
    timestamp_ns: 1000
    events { metadata_id: 1 offset_ps: 0 duration_ps: 2000000 }
    events { metadata_id: 2 offset_ps: 3000000 duration_ps: 1000000 }
    events { metadata_id: 3 offset_ps: 5000000 duration_ps: 500000 }
    events { metadata_id: 1 offset_ps: 9000000 duration_ps: 2000000 }
    events { metadata_id: 3 offset_ps: 12000000 duration_ps: 500000 }
  }
  lines {
    id: 8
    name: "XLA Ops"
    timestamp_ns: 1000
    events { metadata_id: 1 offset_ps: 0 duration_ps: 2000000 }
  }
  event_metadata { key: 1 value { id: 1 name: "sphcnn_analysis_kernel" } }
  event_metadata { key: 2 value { id: 2 name: "MemcpyD2D" } }
  event_metadata { key: 3 value { id: 3 name: "loop_fusion" } }
}
planes { id: 2 name: "/host:CPU" }
"""


def test_kernels_of_a_gpu_trace():
    summary = kernel_summary(ProfileData.from_text_proto(SYNTHETIC_GPU_TRACE), calls=2)
    assert summary == {"kernel_ms": 2.5e-3, "kernels_per_call": 2.0}


def test_gpu_plane_without_stream_lines_is_reported():
    text = 'planes { id: 1 name: "/device:GPU:0" lines { id: 1 name: "XLA Modules" } }'
    summary = kernel_summary(ProfileData.from_text_proto(text), calls=1)
    assert summary["kernel_ms"] is None and summary["kernels_per_call"] is None
    assert "XLA Modules" in summary["profile_error"]


def _traced_fft() -> dict:
    fn = jax.jit(lambda v: jnp.fft.fft(v) * 2)
    x = jnp.ones((64, 64), jnp.complex64)
    jax.block_until_ready(fn(x))
    return kernel_profile(fn, [(x,)], calls=2)


def _on_gpu() -> bool:
    return jax.devices()[0].platform == "gpu"


@pytest.mark.skipif(_on_gpu(), reason="checks the CPU branch")
def test_cpu_trace_gives_none():
    assert _traced_fft() == {"kernel_ms": None, "kernels_per_call": None}


@pytest.mark.gpu
@pytest.mark.skipif(not _on_gpu(), reason="needs a CUDA GPU")
def test_gpu_trace_has_kernels():
    summary = _traced_fft()
    assert "profile_error" not in summary, summary
    assert summary["kernels_per_call"] >= 1 and summary["kernel_ms"] > 0, summary
