"""From raw timings to the figures the issue asks for: per-stage cost, ideal, efficiency, speed-up, memory."""

from __future__ import annotations

from typing import Any

from bench.pipeline_run import PipelineRun
from bench.sequential import SequentialResult
from curation.core.config import RunConfig
from curation.pipeline import STAGES

MB = 1e6

#: the issue-15 table: figure -> (what it is, how it is compared, target)
TARGETS: dict[str, tuple[str, str, float]] = {
    "efficiency_at_n": ("pipeline efficiency vs the CPU ideal at N", ">=", 0.85),
    "speedup_vs_sequential": ("speed-up over the sequential loop (N)", ">=", 1.7),
    "cpu_vs_stage_code_at_n": ("pipeline CPU per sample / stage-code CPU per sample (N)", "<=", 1.15),
    "memory_4n_over_n": ("peak memory 4N / N", "<=", 1.1),
}


def stage_gpus(cfg: RunConfig) -> dict[str, float]:
    """GPUs each step asks for (ingest and the sink are CPU work)."""
    return {
        "ingest": cfg.ingest.resources.num_gpus,
        **{s.name.value: s.resources(cfg).num_gpus for s in STAGES},
        "sink": 0.0,
    }


def per_stage(seq: SequentialResult, cfg: RunConfig) -> dict[str, dict[str, float]]:
    """Each step alone: samples/s it sustains in one process, and CPU seconds it spends per sample."""
    gpus = stage_gpus(cfg)
    return {
        name: {
            "samples_per_s": seq.rows / t.wall,
            "cpu_s_per_sample": t.cpu / seq.rows,
            "wall_s": t.wall,
            "cpu_s": t.cpu,
            "calls": t.calls,
            "num_gpus": gpus[name],
        }
        for name, t in seq.stages.items()
    }


def ideal_throughput(stages: dict[str, dict[str, float]], cores: int) -> dict[str, Any]:
    """Best samples/s this machine allows: all cores busy on stage code, or the slowest GPU-pinned stage."""
    cpu_sum = sum(s["cpu_s_per_sample"] for s in stages.values() if not s["num_gpus"])
    cpu_bound = cores / cpu_sum
    gpu = {n: s["samples_per_s"] for n, s in stages.items() if s["num_gpus"]}
    bound = min([cpu_bound, *gpu.values()])
    limit = "cpu" if bound == cpu_bound else min(gpu, key=gpu.__getitem__)
    return {"samples_per_s": bound, "cpu_s_per_sample_sum": cpu_sum, "cores": cores, "limited_by": limit}


def steady_state(small: PipelineRun, large: PipelineRun) -> dict[str, float]:
    """Fit ``run_s = fixed + rows / rate`` (and the same for CPU seconds) through two run sizes.

    The marginal rate and CPU per sample are the pipeline without its start-up; the fixed parts are the
    start-up (actor pools importing their stages, first blocks, finalize).
    """
    rate = (large.rows - small.rows) / (large.run_s - small.run_s)
    cpu = (large.usage.cpu_s - small.usage.cpu_s) / (large.rows - small.rows)
    return {
        "samples_per_s": rate,
        "fixed_s": small.run_s - small.rows / rate,
        "cpu_s_per_sample": cpu,
        "fixed_cpu_s": small.usage.cpu_s - small.rows * cpu,
    }


def summarise(
    cfg: RunConfig, seq: SequentialResult, pipe: PipelineRun, big: PipelineRun | None, cores: int
) -> dict[str, Any]:
    """Every figure for one workload (``big``: the same workload at a multiple of the units, for memory)."""
    stages = per_stage(seq, cfg)
    ideal = ideal_throughput(stages, cores)
    out: dict[str, Any] = {
        "samples": seq.rows,
        "units": seq.units,
        "accepted_sequential": seq.accepted,
        "stages": stages,
        "ideal": ideal,
        "shard_write_mb_s": seq.shard_bytes / MB / seq.stages["sink"].wall,
        "sequential": {"wall_s": seq.wall, "samples_per_s": seq.rows / seq.wall, "stage_construction_s": seq.startup},
        "pipeline": _pipe(pipe, ideal),
        "same_samples": pipe.rows == seq.rows,
        "speedup_vs_sequential": seq.wall / pipe.run_s,
        "speedup_vs_sequential_incl_ray_init": seq.wall / (pipe.run_s + pipe.ray_init_s),
    }
    if big is not None:
        fit = steady_state(pipe, big)
        out["pipeline_large"] = _pipe(big, ideal)
        out["steady_state"] = {
            **fit,
            "efficiency": fit["samples_per_s"] / ideal["samples_per_s"],
            "cpu_vs_stage_code": fit["cpu_s_per_sample"] / ideal["cpu_s_per_sample_sum"],
            # at a small N the start-up's jitter swamps the difference between the runs
            "valid": fit["samples_per_s"] > 0 and fit["fixed_s"] >= 0 and fit["cpu_s_per_sample"] > 0,
        }
        out["memory_ratio_large_vs_small"] = big.usage.pss_bytes / pipe.usage.pss_bytes
        out["memory_growth_mb_per_sample"] = (big.usage.pss_bytes - pipe.usage.pss_bytes) / MB / (big.rows - pipe.rows)
    return out


def _pipe(run: PipelineRun, ideal: dict[str, Any]) -> dict[str, Any]:
    return {
        "units": run.units,
        "samples": run.rows,
        "accepted": run.accepted,
        "run_s": run.run_s,
        "ray_init_s": run.ray_init_s,
        "target_max_block_mb": run.target_max_block_size / 2**20,
        "process_s": run.process_s,
        "samples_per_s": run.throughput,
        "efficiency": run.throughput / ideal["samples_per_s"],
        "output_mb_s": run.tar_bytes / MB / run.run_s,
        "cpu_s": run.usage.cpu_s,
        "cpu_s_per_sample": run.usage.cpu_s / run.rows,
        "cpu_vs_stage_code": run.usage.cpu_s / run.rows / ideal["cpu_s_per_sample_sum"],
        "cpu_s_by_process": {k: round(v, 2) for k, v in run.usage.cpu_by_name().items()},
        "tar_bytes": run.tar_bytes,
        "peak_memory": {
            "pss_mb": run.usage.pss_bytes / MB,
            "uss_mb": run.usage.uss_bytes / MB,
            "rss_mb": run.usage.rss_bytes / MB,
            "processes": run.usage.processes,
            "samples": run.usage.samples,
            "top_pss_mb": {k: round(v / MB, 1) for k, v in run.usage.top.items()},
            "timeline_s_pss_uss_mb": run.usage.timeline,
        },
    }


def headline(w: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's table from one workload's figures: value, target and whether it is met, per figure
    (the memory ratio only when the 4N run happened)."""
    values = {
        "efficiency_at_n": w["pipeline"]["efficiency"],
        "speedup_vs_sequential": w["speedup_vs_sequential"],
        "cpu_vs_stage_code_at_n": w["pipeline"]["cpu_vs_stage_code"],
        "memory_4n_over_n": w.get("memory_ratio_large_vs_small"),
    }
    out = {}
    for key, (label, op, target) in TARGETS.items():
        value = values[key]
        if value is not None:
            met = value >= target if op == ">=" else value <= target
            out[key] = {"figure": label, "value": round(value, 3), "target": f"{op} {target}", "met": met}
    if "pipeline_large" in w:
        out["efficiency_at_4n"] = {
            "figure": "pipeline efficiency vs the CPU ideal at 4N",
            "value": round(w["pipeline_large"]["efficiency"], 3),
        }
    return out
