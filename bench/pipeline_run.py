"""Time and memory of one end-to-end pipeline run, measured from outside its process tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.memory import TreeSampler, TreeUsage
from bench.workload import Workload

REPO = Path(__file__).resolve().parents[1]


@dataclass
class PipelineRun:
    units: int
    rows: int  # candidate rows ingested: the samples
    accepted: int
    tar_bytes: int
    target_max_block_size: int  # Ray Data's block size target the run used, bytes
    ray_init_s: float  # starting the embedded Ray (the part of start-up outside ``run``)
    run_s: float  # curation.pipeline.run: work list, DAG, shards, finalize
    process_s: float  # the child process from spawn to exit (imports and shutdown included)
    usage: TreeUsage  # peak memory and CPU seconds of the process tree

    @property
    def throughput(self) -> float:
        return self.rows / self.run_s


def run_pipeline(
    work: Workload, out: Path, log: Path, block_mb: float = 0.0, interval: float = 0.25, memory_limit: int | None = None
) -> PipelineRun:
    """Run ``bench.pipeline_child`` on ``work`` into ``out`` while sampling its process tree's memory.

    ``block_mb`` > 0 overrides Ray Data's target block size for this run (0: the pipeline as it is).
    ``out`` is emptied first: a rerun into a used folder would resume and skip every sample.
    A run whose process tree passes ``memory_limit`` bytes (PSS) is killed and raises ``MemoryError``.
    """
    shutil.rmtree(out, ignore_errors=True)
    result = log.with_suffix(".json")
    cmd = [
        sys.executable,
        "-m",
        "bench.pipeline_child",
        work.to_json(),
        str(out),
        str(result),
        str(block_mb),
    ]
    started = time.perf_counter()
    with open(log, "w") as logfile:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=logfile, stderr=subprocess.STDOUT)
        with TreeSampler(proc.pid, interval, limit_bytes=memory_limit) as sampler:
            proc.wait()
    if sampler.killed:  # only a limit kills
        assert memory_limit is not None
        raise MemoryError(
            f"pipeline run {work.label} passed {memory_limit / 2**30:.1f} GiB and was stopped; "
            f"peak by process: {sampler.usage.top}"
        )
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"pipeline run {work.label} failed (exit {proc.returncode}); see {log}")
    res: dict[str, Any] = json.loads(result.read_text())
    stats = res["stats"]
    return PipelineRun(
        units=work.units,
        rows=stats["ingested"],
        accepted=stats["accepted"],
        tar_bytes=stats["tar_bytes"],
        target_max_block_size=res["target_max_block_size"],
        ray_init_s=res["ray_init_s"],
        run_s=res["run_s"],
        process_s=time.perf_counter() - started,
        usage=sampler.usage,
    )
