"""The process settings of sphcnn's entry points (sphcnn.train.runtime): the
persistent compilation cache (a second run loads every compilation of its
startup from it), the host allocator that keeps freed memory (no page faults
when memory is reused), and the XLA options of the GPU steps (valid option
names: XLA rejects unknown ones), and data parallelism summing each gradient
over the devices once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from run_helpers import records
from sphcnn.train import runtime
from training_fixtures import synthetic_dataset


def _train(data_root, workdir, cache: str) -> dict:
    command = [sys.executable, "-m", "sphcnn.cli", "train", "--model", "tiny_spin_classifier", "--dataset",
               "canonical", "--batch-size", "8", "--data-dir", str(data_root), "--workdir", str(workdir),
               "--max-steps", "2", "--set", "eval_every=0", "--compilation-cache", cache]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "cacheable compilations loaded from the persistent cache" in result.stdout
    return [r for r in records(workdir) if r["split"] == "timing"][-1]


def test_a_second_run_loads_its_compilations_from_the_cache(tmp_path):
    data_root = synthetic_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    cold = _train(data_root, tmp_path / "cold", str(cache))
    assert cold["compilation_cache_hits"] == 0 and cold["compilation_cache_misses"] > 0
    assert any(cache.iterdir())
    warm = _train(data_root, tmp_path / "warm", str(cache))
    assert warm["compilation_cache_misses"] == 0
    assert warm["compilation_cache_hits"] == cold["compilation_cache_misses"]
    off = _train(data_root, tmp_path / "off", "off")
    assert off["compilation_cache_hits"] == off["compilation_cache_misses"] == 0


_REUSE = """
import resource
from sphcnn.train import runtime
applied = runtime.keep_host_memory()
import numpy as np
np.ones(64 << 20, np.uint8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(64 << 20, np.uint8)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_kept_host_memory_is_reused_without_page_faults():
    def run(**env):
        result = subprocess.run([sys.executable, "-c", _REUSE], capture_output=True, text=True,
                                env={**os.environ, **env}, timeout=120)
        applied, faults = result.stdout.split()
        return applied == "True", int(faults)

    kept, kept_faults = run()
    system, system_faults = run(SPHCNN_HOST_ALLOCATOR="system")
    # a 64 MiB array freed and allocated again: the kept heap needs no new pages,
    # a fresh mapping faults each of its pages (or huge pages) in again
    assert kept and not system
    assert kept_faults <= 16 < system_faults


def test_gpu_step_options_are_xla_options():
    step = jax.jit(lambda x: x * 2 + 1, compiler_options=runtime.GPU_STEP_OPTIONS)
    assert float(step.lower(1.0).compile()(1.0)) == 3.0
    with pytest.raises(Exception, match="xla_gpu_graph_min_graph_sizes"):
        jax.jit(lambda x: x + 1, compiler_options={"xla_gpu_graph_min_graph_sizes": 1}).lower(1.0).compile()
    assert runtime.step_compiler_options() == ({} if jax.default_backend() == "cpu" else runtime.GPU_STEP_OPTIONS)


_GRADIENTS = """
import functools, json
import jax, jax.numpy as jnp, numpy as np, optax
from sphcnn.models.registry import build_model
from sphcnn.tasks.mnist.task import TASK
from sphcnn.train import parallel, step as training
rng = np.random.default_rng(0)
batch = {"images": rng.uniform(0, 1, (8, 16, 16, 1, 1)).astype(np.float32),
         "labels": rng.integers(0, 10, 8).astype(np.int32), "weights": np.ones(8, np.float32)}
optimizer = optax.sgd(1.0)  # the update is minus the gradient, unnormalized
mesh = parallel.device_mesh()
model = build_model("tiny_spin_classifier", 16, 10, seed=0, axis_name=parallel.AXIS)
graphs, state = training.split(model, optimizer)
step = parallel.train_step_fn(graphs, optimizer, TASK, 0, mesh)
before = [np.array(p) for p in jax.tree.leaves(state.params)]
new, _ = step(parallel.replicate(state, mesh), parallel.shard_batch(batch, mesh))  # donates the state
updates = [np.asarray(a) - b for a, b in zip(jax.tree.leaves(new.params), before)]
print(json.dumps({"devices": jax.device_count(), "updates": [np.abs(u).sum().item() for u in updates],
                  "first": np.asarray(updates[0]).ravel()[:4].real.tolist()}))
"""


def test_two_devices_take_the_one_device_gradient():
    # With plain SGD (no normalization to hide a factor), one step on 2 devices
    # changes every parameter exactly as on 1 device: the gradients of the
    # replicated parameters are summed over the devices once.
    def run(devices: int) -> dict:
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        result = subprocess.run([sys.executable, "-c", _GRADIENTS], capture_output=True, text=True, env=env,
                                timeout=600)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    one, two = run(1), run(2)
    assert one["devices"] == 1 and two["devices"] == 2
    np.testing.assert_allclose(two["updates"], one["updates"], rtol=1e-4)
    np.testing.assert_allclose(two["first"], one["first"], rtol=1e-4, atol=1e-7)
