"""The GPU suite's summary table: read from the suite's five output files, one
row per stage with its headline figures, printed whatever failed."""

from __future__ import annotations

import json

from benchmarks import suite_summary


def _out(tmp_path, records: list[dict], stages: str, tests: str = ""):
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    (tmp_path / "stages.log").write_text(stages)
    (tmp_path / "tests.log").write_text(tests)
    status = tmp_path / "status.tsv"
    status.write_text("build\tok\t21.0\nsmoke\tfailed rc 1\t9.5\ntransforms\tok\t60.2\ntrain_step\ttimeout after 75 s"
                      "\t75.1\ntests\tok\t100.0\ngrids\tok\t50.0\nmnist\tskipped: no time left\t0.0\nqm9\tok\t30.0\n")
    return status


def test_every_stage_has_a_row_with_its_figures(tmp_path):
    records = [
        {"stage": "smoke", "name": "kernel_smoke", "target": "sphcnn_analysis", "rel_err": 2e-7, "ok": True},
        {"stage": "smoke", "name": "kernel_smoke", "target": "sphcnn_mixing_gradient", "rel_err": 0.3, "ok": False},
        {"stage": "smoke", "name": "kernel_smoke", "target": "sphcnn_affine_gradient", "ok": False,
         "reason": "not covered"},
        {"stage": "transforms", "name": "n64", "backend": "ffi", "op": "forward", "ms": 0.031},
        {"stage": "transforms", "name": "n64", "backend": "ffi", "op": "inverse", "ms": 0.029},
        {"stage": "grids", "name": "grids", "case": "era5_359", "backend": "ffi", "real": True, "forward_ms": 1.5,
         "inverse_ms": 1.25},
        {"stage": "grids", "name": "grids", "case": "healpix256", "backend": "ffi", "op": "skipped",
         "reason": "no kernels"},
        {"stage": "grids", "name": "grids", "case": "era5_359", "peer": "s2fft", "forward_ms": 3.0,
         "inverse_ms": 2.5, "real_vs_s2fft": [0.5, 0.5]},
        {"stage": "qm9", "name": "train_step", "model": "qm9_small", "batch": 16, "atoms": 18,
         "steps_per_s": 90.5, "examples_per_s": 1448.0, "first_step_s": 12.0},
    ]
    stages = ("===== build\nsphcnn_kernels backends on cuda: xla, ffi\nCUDA runtime 13.0, driver supports 13.0, "
              "kernels 1f30015fef8b\n===== qm9\nQM9Dataset(data/qm9: 130831 molecules)\n")
    status = _out(tmp_path, records, stages, "==== 280 passed, 2 failed, 1 skipped in 99.0s ====\n")
    text = suite_summary.summary(status, tmp_path)
    rows = text.splitlines()
    assert [row.split()[0] for row in rows[2:] if row[0] != " "] == ["build", "smoke", "transforms", "train_step",
                                                                      "tests", "grids", "mnist", "qm9"]
    assert "CUDA runtime 13.0, driver supports 13.0" in text
    assert "1 of 3 targets match the xla reference (worst relative error 3.0e-01)" in text
    assert "FAILED sphcnn_mixing_gradient: 3.0e-01" in text and "FAILED sphcnn_affine_gradient: not covered" in text
    assert "n64 fwd/inv ms: ffi 0.031/0.029" in text
    assert "era5_359 real fwd/inv ms: ffi 1.50/1.25, s2fft 3.00/2.50 (ours / s2fft 0.50/0.50)" in text
    assert "healpix256 real fwd/inv ms: ffi skipped" in text
    assert "280 passed, 2 failed, 0 errors, 1 skipped" in text
    assert "no results of benchmarks.train_step" in text and "no results of mnist_gpu.sh" in text
    assert "QM9Dataset(data/qm9: 130831 molecules)" in text and "qm9_small batch 16, 18 atoms: 90.5 steps/s" in text


def test_a_record_the_headline_cannot_read_still_gives_the_table(tmp_path):
    status = _out(tmp_path, [{"stage": "transforms", "name": "n64", "op": "forward"}], "")
    text = suite_summary.summary(status, tmp_path)
    assert "transforms" in text and "headline unavailable: KeyError" in text
    suite_summary.main([str(status), str(tmp_path)])
    assert (tmp_path / "summary.txt").read_text() == text
