"""benchmarks.kernel_smoke: on CPU every target of sphcnn_kernels._cpu is
covered by its check and passes; a wrong kernel, one that is not finite, a
check that raises, a check that does not call its target and a target without
a check are each a failing line and a failing exit status, while the other
targets still run; and each CUDA check, lowered for CUDA (no GPU needed), calls
its target, so that the checks cover every target of sphcnn_kernels._cuda,
and the CUDA-only checks run on CPU (as the compositions their functions lower
to there) within the tolerance, so that their references hold before a GPU
run."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json

import jax.numpy as jnp
import pytest

from benchmarks import kernel_smoke


def _records(capsys) -> dict:
    """The printed JSON lines by target ('summary' for the last)."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return {record.get("target", "summary"): record for record in lines}


def test_every_cpu_target_is_covered_and_passes(capsys):
    assert kernel_smoke.main(["--platform", "cpu"]) == 0
    records = _records(capsys)
    registered = set(importlib.import_module("sphcnn_kernels._cpu").registrations())
    assert set(records) - {"summary"} == registered
    for target in registered:
        record = records[target]
        assert record["ok"] and target in record["calls"], record
        assert record["platform"] == "cpu" and 0 <= record["rel_err"] <= kernel_smoke.TOLERANCE, record
    assert records["summary"] == {**records["summary"], "op": "summary", "targets": len(registered), "failed": 0}


def test_failures_are_reported_and_the_others_still_run(monkeypatch, capsys):
    table = kernel_smoke.TARGETS["cpu"]

    def scaled(target, factor):
        def build():
            check = table[target]()
            return dataclasses.replace(check, kernel=lambda *args: factor * check.kernel(*args))
        return build

    def raises():
        raise RuntimeError("kernel failed\nsecond line")

    monkeypatch.setitem(kernel_smoke.TARGETS, "cpu", {
        "sphcnn_synthesis": scaled("sphcnn_synthesis", 1.001),          # a wrong result
        "sphcnn_mixing": scaled("sphcnn_mixing", jnp.nan),  # not finite
        "sphcnn_analysis": raises,
        "sphcnn_affine_synthesis": table["sphcnn_synthesis"],           # does not call its target
        "sphcnn_activated_analysis": table["sphcnn_activated_analysis"],
    })
    assert kernel_smoke.main(["--platform", "cpu"]) == 1
    records = _records(capsys)
    wrong = records["sphcnn_synthesis"]
    assert not wrong["ok"] and wrong["rel_err"] > kernel_smoke.TOLERANCE and wrong["reason"].startswith("rel_err")
    assert records["sphcnn_mixing"]["rel_err"] is None
    assert records["sphcnn_mixing"]["reason"] == "not finite"
    assert records["sphcnn_analysis"]["reason"] == "RuntimeError: kernel failed"
    assert records["sphcnn_affine_synthesis"]["reason"] == "not covered"
    assert records["sphcnn_affine_synthesis"]["calls"] == ["sphcnn_synthesis"]
    for target in ("sphcnn_activated_gradient", "sphcnn_mixing_weight_gradient"):
        assert records[target] == {"name": "kernel_smoke", "platform": "cpu", "target": target, "ok": False,
                                   "reason": "not covered", "seconds": 0.0}
    assert records["sphcnn_activated_analysis"]["ok"]
    targets = len(importlib.import_module("sphcnn_kernels._cpu").registrations())  # each registered target once
    assert records["summary"]["targets"] == targets and records["summary"]["failed"] == targets - 1


@pytest.mark.skipif(importlib.util.find_spec("sphcnn_kernels._cuda") is None,
                    reason="the CUDA module is not built (no nvcc)")
def test_the_cuda_checks_cover_every_cuda_target():
    registered = set(importlib.import_module("sphcnn_kernels._cuda").registrations())
    assert set(kernel_smoke.TARGETS["cuda"]) == registered
    for target, build in kernel_smoke.TARGETS["cuda"].items():
        assert target in kernel_smoke.custom_calls(build(), "cuda"), target


def test_the_cuda_only_checks_run_on_cpu_as_their_compositions():
    cuda, cpu = kernel_smoke.TARGETS["cuda"], kernel_smoke.TARGETS["cpu"]
    for target in sorted(set(cuda) - set(cpu)):
        assert kernel_smoke.compare(cuda[target]()) <= kernel_smoke.TOLERANCE, target
