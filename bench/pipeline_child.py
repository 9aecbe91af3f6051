"""One end-to-end run of the real pipeline in a fresh process, so that its memory can be measured alone.

``python -m bench.pipeline_child WORKLOAD_JSON OUT RESULT [BLOCK_MB]`` starts the embedded Ray, runs
:func:`curation.pipeline.run` on the benchmark workload (:meth:`bench.workload.Workload.to_json`) and writes its
timings to the JSON file RESULT
(a file, not stdout: Ray forwards worker output to stdout). BLOCK_MB, when given, sets Ray Data's
``target_max_block_size`` (default 128 MiB), the knob that bounds what each map task holds.
A fresh process per run keeps one run's Ray workers and caches out of the next run's peak.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import ray.data

from bench.workload import Workload
from curation.pipeline import init_ray, run


def main(argv: list[str]) -> None:
    work, out, result_path = Workload.from_json(argv[0]), Path(argv[1]), Path(argv[2])
    block_mb = float(argv[3]) if len(argv) > 3 else 0.0
    cfg = work.config(out)
    started = time.perf_counter()
    init_ray(cfg)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    if block_mb:
        ctx.target_max_block_size = int(block_mb * 2**20)
    ray_init = time.perf_counter() - started
    cpu_total = float(ray.cluster_resources().get("CPU", 0))
    result = run(cfg)
    result_path.write_text(
        json.dumps(
            {
                "ray_init_s": ray_init,
                "run_s": result.seconds,
                "stats": result.stats,
                "ray_logical_cpus": cpu_total,
                "target_max_block_size": ctx.target_max_block_size,
            }
        )
    )
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
