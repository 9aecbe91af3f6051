"""``make bench``: stage throughput, pipeline efficiency, speed-up and memory, measured side by side.

For each workload (synthetic scenes at ``--size`` px, and a larger ``--big-size`` variant) it runs, in
this order and in one invocation: the sequential loop (per-stage isolation timings and the baseline),
the real Ray pipeline on the same samples, and (main workload only) the pipeline again at
``--mem-factor`` times the units, for the memory comparison and the start-up fit. Then the other
benchmarks under ``bench/`` that exist. Prints a table and writes ``bench/results.json``.

    python -m bench.run            # full: 512 px x 256 scenes (+ 4x), 1024 px x 48 scenes
    python -m bench.run --quick    # smoke: 128 px x 8 scenes (+ 4x), 256 px x 4 scenes, about a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import extras
from bench.metrics import headline, summarise
from bench.pipeline_run import run_pipeline
from bench.sequential import run_sequential
from bench.workload import Workload
from curation.runinfo import git_revision, versions

RESULTS = Path(__file__).resolve().parent / "results.json"
FULL = {"size": 512, "units": 256, "big_size": 1024, "big_units": 48}
QUICK = {"size": 128, "units": 8, "big_size": 256, "big_units": 4}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, no other benchmarks: checks that it runs")
    p.add_argument("--size", type=int, help=f"scene side of the main workload, px (default {FULL['size']})")
    p.add_argument("--units", type=int, help=f"scenes in the main workload, N (default {FULL['units']})")
    p.add_argument("--mem-factor", type=int, default=4, help="memory run at this many times N (0: skip)")
    p.add_argument(
        "--big-size", type=int, help=f"scene side of the large-image variant (default {FULL['big_size']}; 0: skip)"
    )
    p.add_argument("--big-units", type=int, help=f"scenes in the large-image variant (default {FULL['big_units']})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--block-mb",
        type=float,
        default=0.0,
        help="set Ray Data's target_max_block_size for the pipeline runs (MiB; 0: leave the pipeline's own)",
    )
    p.add_argument(
        "--memory-limit",
        type=float,
        default=0.75,
        help="stop a pipeline run whose memory passes this fraction of the machine's RAM",
    )
    p.add_argument(
        "--extras",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run bench/{ingest_coco,caption_bench,sam_cpu}.py when present (default: not with --quick)",
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON results")
    p.add_argument("--scratch", type=Path, help="folder for the runs' shards (default: a temporary folder, removed)")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.extras is None:
        args.extras = not args.quick
    return args


def cores() -> int:
    """CPUs this process may run on (the machine's ideal is computed for these)."""
    return len(os.sched_getaffinity(0))


def measure(work: Workload, mem_factor: int, scratch: Path, block_mb: float, memory_limit: int) -> dict[str, Any]:
    """Sequential loop, pipeline at N, pipeline at mem_factor x N; every figure for ``work``."""
    tag = f"{work.size}px-{work.units}"
    print(f"[bench] {work.label}: sequential loop ...", flush=True)
    cfg = work.config(scratch / f"{tag}-pipeline")
    shutil.rmtree(scratch / f"{tag}-sequential", ignore_errors=True)
    seq = run_sequential(cfg, scratch / f"{tag}-sequential" / "shards")
    print(f"[bench] {work.label}: pipeline ...", flush=True)
    pipe = run_pipeline(
        work, scratch / f"{tag}-pipeline", scratch / f"{tag}-pipeline.log", block_mb, memory_limit=memory_limit
    )
    big, stopped = None, None
    if mem_factor > 1:
        large = Workload(work.size, work.units * mem_factor, work.seed)
        print(f"[bench] {large.label}: pipeline (memory) ...", flush=True)
        try:
            big = run_pipeline(
                large,
                scratch / f"{tag}-x{mem_factor}",
                scratch / f"{tag}-x{mem_factor}.log",
                block_mb,
                memory_limit=memory_limit,
            )
        except MemoryError as err:  # the finding itself: memory grew with N until the guard stopped it
            stopped = str(err)
    out = {
        "workload": {
            "size": work.size,
            "units": work.units,
            "seed": work.seed,
            "mem_factor": mem_factor,
            "block_mb_override": block_mb or None,
        },
        **summarise(cfg, seq, pipe, big, cores()),
    }
    if stopped:
        out["pipeline_large_stopped"] = stopped
    out["targets"] = headline(out)
    return out


def format_table(res: dict[str, Any]) -> str:
    lines = [
        f"layered-curation benchmark ({res['mode']}), {res['machine']['cores']} cores, "
        f"load average at start {res['machine']['loadavg_start']:.2f}, at end {res['machine']['loadavg_end']:.2f}"
    ]
    if res["machine"]["loadavg_start"] > 0.5 * res["machine"]["cores"]:
        lines.append("  WARNING: the machine was busy before the run; the figures are distorted by other work")
    for w in res["workloads"]:
        wl, p = w["workload"], w["pipeline"]
        lines += [
            "",
            f"== synthetic {wl['size']} px, {wl['units']} scenes (seed {wl['seed']}) -> {w['samples']} samples "
            f"(candidate rows), {p['accepted']} accepted",
            f"{'step (alone, 1 process)':26s}{'samples/s':>11s}{'CPU s/sample':>14s}{'wall s':>9s}",
        ]
        for name, s in w["stages"].items():
            lines.append(
                f"  {name + (' [gpu]' if s['num_gpus'] else ''):24s}{s['samples_per_s']:11.2f}"
                f"{s['cpu_s_per_sample']:14.4f}{s['wall_s']:9.2f}"
            )
        ideal = w["ideal"]
        lines.append(
            f"  {'sum / ideal':24s}{ideal['samples_per_s']:11.2f}{ideal['cpu_s_per_sample_sum']:14.4f}"
            f"   ideal = {ideal['cores']} cores / sum (limited by {ideal['limited_by']})"
        )
        lines.append(f"  shard write (sink alone): {w['shard_write_mb_s']:.1f} MB/s")
        sq = w["sequential"]
        lines.append(f"sequential loop            {sq['samples_per_s']:11.2f} samples/s   {sq['wall_s']:.1f} s")
        runs = [("pipeline, N", p)] + (
            [(f"pipeline, {wl['mem_factor']}N", w["pipeline_large"])] if "pipeline_large" in w else []
        )
        for label, r in runs:
            lines.append(
                f"{label:26s}{r['samples_per_s']:11.2f} samples/s   {r['run_s']:.1f} s  efficiency "
                f"{r['efficiency']:.2f}  output {r['output_mb_s']:.1f} MB/s"
            )
            lines.append(
                f"{'':26s}CPU of the whole process tree: {r['cpu_s_per_sample']:.3f} s/sample "
                f"= {r['cpu_vs_stage_code']:.2f} x the stage code's (Ray init and start-up included)"
            )
            top = ", ".join(f"{k} {v:.1f}" for k, v in list(r["cpu_s_by_process"].items())[:5])
            lines.append(f"{'':26s}CPU s by process: {top}")
            m = r["peak_memory"]
            lines.append(
                f"{'':26s}peak memory: PSS {m['pss_mb']:.0f} MB, USS {m['uss_mb']:.0f} MB, RSS sum "
                f"{m['rss_mb']:.0f} MB over {m['processes']} processes (Ray Data blocks <= "
                f"{r['target_max_block_mb']:.0f} MiB)"
            )
        if "steady_state" in w and not w["steady_state"]["valid"]:
            lines.append(
                f"{'pipeline, steady state':26s}not measurable: start-up swamps the N/{wl['mem_factor']}N "
                "difference at this N"
            )
            lines.append(f"start-up: Ray init {p['ray_init_s']:.1f} s (outside the run)")
            lines.append(f"peak memory {wl['mem_factor']}N / N: {w['memory_ratio_large_vs_small']:.2f}")
        elif "steady_state" in w:
            ss = w["steady_state"]
            lines.append(
                f"{'pipeline, steady state':26s}{ss['samples_per_s']:11.2f} samples/s   efficiency "
                f"{ss['efficiency']:.2f}  (fit over N and {wl['mem_factor']}N)"
            )
            lines.append(
                f"{'':26s}marginal CPU {ss['cpu_s_per_sample']:.3f} s/sample = {ss['cpu_vs_stage_code']:.2f} x "
                f"the stage code's; start-up CPU {ss['fixed_cpu_s']:.1f} s"
            )
            lines.append(
                f"start-up: Ray init {p['ray_init_s']:.1f} s (outside the run), fixed cost inside the run "
                f"{ss['fixed_s']:.1f} s (actor pools, first blocks, finalize)"
            )
            lines.append(
                f"peak memory {wl['mem_factor']}N / N: {w['memory_ratio_large_vs_small']:.2f} "
                f"({w['memory_growth_mb_per_sample']:+.1f} MB per extra sample)"
            )
        else:
            lines.append(f"start-up: Ray init {p['ray_init_s']:.1f} s (outside the run)")
        if "pipeline_large_stopped" in w:
            lines.append(f"pipeline, {wl['mem_factor']}N: STOPPED, {w['pipeline_large_stopped']}")
        lines.append(
            f"speed-up over the sequential loop: {w['speedup_vs_sequential']:.2f} "
            f"({w['speedup_vs_sequential_incl_ray_init']:.2f} counting Ray init)"
            + ("" if w["same_samples"] else "  WARNING: sample counts differ")
        )
    main = res["workloads"][0] if res["workloads"] else None
    if main:
        lines += ["", f"== the issue-15 table ({main['workload']['size']} px, N = {main['samples']} samples)"]
        for t in main["targets"].values():
            verdict = "" if "target" not in t else f"  target {t['target']}: {'met' if t['met'] else 'NOT met'}"
            lines.append(f"  {t['figure']:58s}{t['value']:8.2f}{verdict}")
    if res["extras"]:
        lines += ["", "== other benchmarks"]
        for stem, e in res["extras"].items():
            if not e["ok"]:
                lines.append(f"  {extras.EXTRAS[stem]}: FAILED {e['error']}")
                continue
            figures = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in e["results"].items()
                if isinstance(v, (int, float, str))
            )
            lines.append(f"  {extras.EXTRAS[stem]} ({e['wall_s']:.0f} s): {figures}")
    lines.append(f"\ntotal {res['wall_s']:.0f} s; results in {res['results_path']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="curation-bench-"))
    res: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "command": " ".join(["python -m bench.run", *(argv or sys.argv[1:])]),
        "machine": {"cores": cores(), "platform": platform.platform(), "loadavg_start": os.getloadavg()[0]},
        "versions": versions(),
        "git_revision": git_revision(),
        "start": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "workloads": [],
        "extras": {},
        "results_path": str(args.results),
    }
    limit = int(args.memory_limit * psutil.virtual_memory().total)
    try:
        main_work = Workload(args.size, args.units, args.seed)
        res["workloads"].append(measure(main_work, args.mem_factor, scratch, args.block_mb, limit))
        if args.big_size:
            big_work = Workload(args.big_size, args.big_units, args.seed)
            res["workloads"].append(measure(big_work, 0, scratch, args.block_mb, limit))
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.extras:
        for stem in extras.available():
            print(f"[bench] {extras.EXTRAS[stem]} ...", flush=True)
            res["extras"][stem] = extras.run_extra(stem)
    res["machine"]["loadavg_end"] = os.getloadavg()[0]
    res["wall_s"] = time.perf_counter() - started
    res["targets"] = res["workloads"][0]["targets"] if res["workloads"] else {}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(res, indent=1))
    print(format_table(res))
    return res


if __name__ == "__main__":
    main()
