"""From raw timings to the figures the issue asks for: per-stage cost, ideal, efficiency, speed-up, memory."""

from __future__ import annotations

from typing import Any

from bench.pipeline_run import PipelineRun
from bench.sequential import SequentialResult
from curation.core.config import RunConfig
from curation.pipeline import STAGES

MB = 1e6

#: the targets table (issue 23): figure -> (what it is, how it is compared, target)
TARGETS: dict[str, tuple[str, str, float]] = {
    "marginal_efficiency": ("marginal efficiency (N-4N slope) vs the CPU ideal", ">=", 0.9),
    "speedup_at_4n": ("speed-up over the sequential loop at 4N", ">=", 1.7),
    "startup_cpu_s": ("fixed start-up cost, CPU s (N-4N fit)", "<=", 6.0),
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


def _loop(seq: SequentialResult) -> dict[str, Any]:
    return {
        "samples": seq.rows,
        "wall_s": seq.wall,
        "cpu_s": sum(t.cpu for t in seq.stages.values()),
        "samples_per_s": seq.rows / seq.wall,
        "stage_construction_s": seq.startup,
    }


def summarise(
    cfg: RunConfig,
    seq: SequentialResult,
    pipe: PipelineRun,
    big: PipelineRun | None,
    cores: int,
    seq_big: SequentialResult | None = None,
) -> dict[str, Any]:
    """Every figure for one workload (``big``, ``seq_big``: the pipeline and the loop on the same workload at a
    multiple of the units; the per-stage figures come from the larger loop)."""
    ref = seq_big or seq
    stages = per_stage(ref, cfg)
    ideal = ideal_throughput(stages, cores)
    out: dict[str, Any] = {
        "samples": seq.rows,
        "units": seq.units,
        "accepted_sequential": seq.accepted,
        "stages": stages,
        "stages_samples": ref.rows,
        "fill_cpu_s_per_sample": ref.fill.cpu / ref.rows,
        "fill_share": ref.fill.calls / ref.rows,  # samples whose background is filled (no clean plate)
        "ideal": ideal,
        "shard_write_mb_s": ref.shard_bytes / MB / ref.stages["sink"].wall,
        "sequential": _loop(seq),
        "pipeline": _pipe(pipe, ideal),
        "same_samples": pipe.rows == seq.rows,
        "speedup_vs_sequential": seq.wall / pipe.run_s,
        "speedup_vs_sequential_incl_ray_init": seq.wall / (pipe.run_s + pipe.ray_init_s),
    }
    if seq_big is not None:
        out["sequential_large"] = _loop(seq_big)
    if big is not None and seq_big is not None:
        out["speedup_at_4n"] = seq_big.wall / big.run_s
        out["speedup_at_4n_incl_ray_init"] = seq_big.wall / (big.run_s + big.ray_init_s)
        out["same_samples_large"] = big.rows == seq_big.rows
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
        # what the process tree spent beyond the stage code (Ray, Arrow, start-up), as a share of all its CPU
        "orchestration_share": 1 - run.rows * ideal["cpu_s_per_sample_sum"] / run.usage.cpu_s,
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
    """The targets table from one workload's figures: value, target and whether it is met, per figure (those of
    the 4N runs only when they happened)."""
    fit = w.get("steady_state", {})
    values = {
        "marginal_efficiency": fit.get("efficiency"),
        "speedup_at_4n": w.get("speedup_at_4n"),
        "startup_cpu_s": fit.get("fixed_cpu_s"),
        "memory_4n_over_n": w.get("memory_ratio_large_vs_small"),
    }
    out = {}
    for key, (label, op, target) in TARGETS.items():
        value = values[key]
        if value is not None:
            met = value >= target if op == ">=" else value <= target
            out[key] = {"figure": label, "value": round(value, 3), "target": f"{op} {target}", "met": met}
    beside = {
        "efficiency_at_n": ("pipeline efficiency vs the CPU ideal at N", w["pipeline"]["efficiency"]),
        "efficiency_at_4n": (
            "pipeline efficiency vs the CPU ideal at 4N",
            w.get("pipeline_large", {}).get("efficiency"),
        ),
        "speedup_at_n": ("speed-up over the sequential loop at N", w["speedup_vs_sequential"]),
        "orchestration_share_at_4n": (
            "share of all CPU spent beyond the stage code at 4N",
            w.get("pipeline_large", {}).get("orchestration_share"),
        ),
    }
    for key, (label, value) in beside.items():
        if value is not None:
            out[key] = {"figure": label, "value": round(value, 3)}
    return out
