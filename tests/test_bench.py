"""`make bench`: the figures' arithmetic, one real quick run end to end, and the GPU script's CPU smoke."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.memory import TreeUsage
from bench.metrics import ideal_throughput, steady_state
from bench.pipeline_run import PipelineRun
from bench.projection import project
from tests.conftest import REPO


def _stage(cpu: float, per_s: float, gpus: float = 0.0) -> dict[str, float]:
    return {"cpu_s_per_sample": cpu, "samples_per_s": per_s, "num_gpus": gpus}


def test_ideal_is_cores_over_cpu_cost_or_the_slowest_gpu_stage():
    cpu_only = {"a": _stage(0.1, 10), "b": _stage(0.3, 3.3)}
    assert ideal_throughput(cpu_only, cores=2)["samples_per_s"] == pytest.approx(5.0)
    with_gpu = {"a": _stage(0.1, 10), "sam": _stage(0.05, 2.0, gpus=1)}
    ideal = ideal_throughput(with_gpu, cores=2)
    assert ideal["samples_per_s"] == pytest.approx(2.0) and ideal["limited_by"] == "sam"
    assert ideal["cpu_s_per_sample_sum"] == pytest.approx(0.1)  # a GPU stage's time is not CPU work here


def test_steady_state_fit_separates_fixed_cost_from_rate():
    def run(rows: int, seconds: float, cpu_s: float) -> PipelineRun:
        return PipelineRun(
            units=rows,
            rows=rows,
            accepted=rows,
            tar_bytes=0,
            target_max_block_size=0,
            ray_init_s=0.0,
            run_s=seconds,
            process_s=seconds,
            usage=TreeUsage(cpu_by_pid={1: cpu_s / 2, 2: cpu_s / 2}),
        )

    fit = steady_state(run(100, 15.0, 20.0), run(400, 45.0, 50.0))  # 5 s + 10 samples/s; 10 CPU s + 0.1 s each
    assert fit["samples_per_s"] == pytest.approx(10.0) and fit["fixed_s"] == pytest.approx(5.0)
    assert fit["cpu_s_per_sample"] == pytest.approx(0.1) and fit["fixed_cpu_s"] == pytest.approx(10.0)


def test_quick_bench_runs_the_real_pipeline_and_writes_results(tmp_path):
    results = tmp_path / "results.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        "--quick",
        "--units",
        "3",
        "--size",
        "96",
        "--mem-factor",
        "0",
        "--no-real",
        "--set",
        "masks.inpaint.backend=telea",
        "--results",
        str(results),
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads(results.read_text())
    (w,) = res["workloads"]
    assert set(w["stages"]) == {"ingest", "masks", "caption", "curate", "sink"}
    assert all(s["cpu_s_per_sample"] > 0 and s["samples_per_s"] > 0 for s in w["stages"].values())
    assert w["same_samples"] and w["pipeline"]["samples"] == w["samples"] > 0
    assert w["pipeline"]["peak_memory"]["pss_mb"] > 100  # driver + Ray workers, not just the driver's imports
    assert 0 < w["pipeline"]["efficiency"] and w["speedup_vs_sequential"] > 0
    assert w["pipeline"]["cpu_vs_stage_code"] > 1  # the tree also starts Ray and imports the stages
    assert (
        res["overrides"] == ["masks.inpaint.backend=telea"] and res["config"]["masks"]["inpaint"]["backend"] == "telea"
    )
    assert res["config"]["masks"]["quality"]["enabled"]  # bench.yaml pins nothing of stage 2: the checks are on
    assert "speed-up" in done.stdout and "CPU cores per GPU" in done.stdout


def test_projection_follows_the_measured_cpu_and_gpu_figures(tmp_path):
    w = {
        "workload": {"label": "1024px x 4"},
        "ideal": {"cpu_s_per_sample_sum": 0.8},
        "fill_cpu_s_per_sample": 0.3,
        "fill_share": 0.5,
        "pipeline": {"accepted": 50, "samples": 100, "cpu_vs_stage_code": 1.5},
        "steady_state": {"valid": True, "cpu_vs_stage_code": 1.25},
    }
    p = project({"workloads": [w]}, triplets=48_000, hours=2.0, gpu_results=tmp_path / "none.json")
    assert p["samples"] == pytest.approx(96_000) and p["orchestration_factor"] == pytest.approx(1.25)
    on_cpu, on_gpu = p["scenarios"]["fill on CPU"], p["scenarios"]["fill on GPU"]
    assert on_cpu["cpu_s_per_sample"] == pytest.approx(1.0) and on_gpu["cpu_s_per_sample"] == pytest.approx(0.625)
    assert on_cpu["gpu_s_per_sample"] == pytest.approx(0.22)
    assert on_gpu["gpu_s_per_sample"] == pytest.approx(0.22 + 0.5 / p["gpu"]["fill_windows_per_s"])
    assert on_cpu["gpus"] == 3 and on_cpu["cores_per_gpu"] == pytest.approx(1.0 / 0.22)  # 96K x 0.22 s / 7200 s
    assert "assumed" in p["gpu"]["fill_source"]


def test_gpu_bench_cpu_smoke(tmp_path):
    results = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, "bench/gpu_bench.py", "--cpu-smoke", "--results", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads(results.read_text())
    assert res["fill"]["windows_per_s"] > 0 and res["fill"]["window_px"] == 64
    for model, figure in (("sam", "images_per_s"), ("vlm", "tokens_per_s"), ("fill", "windows_per_s")):
        assert {int(b) for b in res[model]["batches"]} == {1, 2}
        assert all(b[figure] > 0 for b in res[model]["batches"].values())
