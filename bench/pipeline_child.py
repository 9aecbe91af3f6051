"""One end-to-end run of the real pipeline in a fresh process, so that its memory can be measured alone.

``python -m bench.pipeline_child SIZE UNITS SEED OUT RESULT [BLOCK_MB]`` starts the embedded Ray, runs
:func:`curation.pipeline.run` on the benchmark workload and writes its timings to the JSON file RESULT
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
    size, units, seed, out, result_path = int(argv[0]), int(argv[1]), int(argv[2]), Path(argv[3]), Path(argv[4])
    block_mb = float(argv[5]) if len(argv) > 5 else 0.0
    cfg = Workload(size, units, seed).config(out)
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
