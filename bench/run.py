"""``make bench``: stage throughput, pipeline efficiency, speed-up and memory, measured side by side.

The run config is ``bench/bench.yaml``: the default config (default fill, checks on) with the demo's pool sizes.
For the main workload (synthetic scenes at ``--size`` px) it runs, in one invocation: the sequential loop
(per-stage isolation timings and the baseline) and the real Ray pipeline on the same samples, at N and at
``--mem-factor`` x N units (the speed-up at both, the memory comparison and the fit that splits start-up from the
marginal rate); then the bundled real photos at their own size (loop and pipeline, once); then the other
benchmarks under ``bench/`` that exist. Prints a table and the cluster projection, writes ``bench/results.json``.

    python -m bench.run            # full: 1024 px x 32 scenes and x 128, the real photos
    python -m bench.run --quick    # smoke: 128 px x 8 scenes (+ 4x), no real photos, about a minute
    python -m bench.run --set masks.inpaint.backend=coarse_to_fine   # another config value for every run
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
from bench.pipeline_run import PipelineRun, run_pipeline
from bench.projection import project, projection_table
from bench.sequential import SequentialResult, run_sequential
from bench.workload import Workload
from curation.runinfo import git_revision, versions

RESULTS = Path(__file__).resolve().parent / "results.json"
FULL = {"size": 1024, "units": 32, "real": True}
QUICK = {"size": 128, "units": 8, "real": False}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, no other benchmarks: checks that it runs")
    p.add_argument("--size", type=int, help=f"scene side of the main workload, px (default {FULL['size']})")
    p.add_argument("--units", type=int, help=f"scenes in the main workload, N (default {FULL['units']})")
    p.add_argument(
        "--mem-factor", type=int, default=4, help="second run (loop and pipeline) at this many times N (0: skip)"
    )
    p.add_argument(
        "--real",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also the bundled real photos at their own size (default: not with --quick)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config key set on top of bench/bench.yaml for every run (YAML value), e.g. masks.inpaint.backend=telea",
    )
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
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        p.error(f"--set takes KEY=VALUE, not {bad[0]!r}")
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
    """Sequential loop and pipeline at N, and (``mem_factor`` > 1) both again at mem_factor x N: every figure."""
    tag = work.label.replace(" ", "")
    runs: dict[int, tuple[SequentialResult, PipelineRun | None]] = {}
    stopped = None
    for factor in (1, mem_factor) if mem_factor > 1 else (1,):
        w = work.scaled(factor)
        print(f"[bench] {w.label}: sequential loop ...", flush=True)
        folder = scratch / f"{tag}-x{factor}"
        shutil.rmtree(folder, ignore_errors=True)
        seq = run_sequential(w.config(folder / "pipeline"), folder / "sequential" / "shards")
        print(f"[bench] {w.label}: pipeline ...", flush=True)
        try:
            pipe = run_pipeline(w, folder / "pipeline", folder / "pipeline.log", block_mb, memory_limit=memory_limit)
        except MemoryError as err:  # the finding itself: memory grew with N until the guard stopped it
            if factor == 1:
                raise
            pipe, stopped = None, str(err)
        runs[factor] = (seq, pipe)
    (seq, pipe), (seq_big, big) = runs[1], runs.get(mem_factor, (None, None))
    assert pipe is not None
    out = {
        "workload": {
            "label": work.label,
            "size": work.size,
            "units": work.units,
            "seed": work.seed,
            "real_photos": work.real,
            "mem_factor": mem_factor,
            "block_mb_override": block_mb or None,
        },
        **summarise(work.config(scratch / "config"), seq, pipe, big, cores(), seq_big),
    }
    if stopped:
        out["pipeline_large_stopped"] = stopped
    out["targets"] = headline(out)
    return out


def format_table(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        f"layered-curation benchmark ({res['mode']}), {m['cores']} cores, load average at start "
        f"{m['loadavg_start']:.2f}, at end {m['loadavg_end']:.2f}; config: bench/bench.yaml"
        + (f" with {', '.join(res['overrides'])}" if res["overrides"] else " (the defaults)")
        + f"; fill {res['config']['masks']['inpaint']['backend']}, checks "
        + ("on" if res["config"]["masks"]["quality"]["enabled"] else "off")
    ]
    if m["loadavg_start"] > 0.5 * m["cores"] or m["loadavg_end"] > m["cores"]:
        lines.append(
            "  WARNING: the machine was busy; wall-clock figures are distorted by other work, CPU seconds less so"
        )
    for w in res["workloads"]:
        wl, p = w["workload"], w["pipeline"]
        lines += [
            "",
            f"== {wl['label']} (seed {wl['seed']}) -> {w['samples']} samples (candidate rows), "
            f"{p['accepted']} accepted",
            f"{'step (alone, 1 process)':26s}{'samples/s':>11s}{'CPU s/sample':>14s}{'wall s':>9s}"
            f"   (loop over {w['stages_samples']} samples)",
        ]
        for name, st in w["stages"].items():
            lines.append(
                f"  {name + (' [gpu]' if st['num_gpus'] else ''):24s}{st['samples_per_s']:11.2f}"
                f"{st['cpu_s_per_sample']:14.4f}{st['wall_s']:9.2f}"
            )
        lines.append(f"    {'of which the fill':22s}{'':11s}{w['fill_cpu_s_per_sample']:14.4f}")
        ideal = w["ideal"]
        lines.append(
            f"  {'sum / physical limit':24s}{ideal['samples_per_s']:11.2f}{ideal['cpu_s_per_sample_sum']:14.4f}"
            f"   limit = {ideal['cores']} cores / sum (limited by {ideal['limited_by']})"
        )
        runs = [("N", w["sequential"], p, w["speedup_vs_sequential"])]
        if "pipeline_large" in w:
            runs.append((f"{wl['mem_factor']}N", w["sequential_large"], w["pipeline_large"], w["speedup_at_4n"]))
        for label, sq, r, speedup in runs:
            lines.append(
                f"{label:>3s}: loop {sq['samples']} samples {sq['wall_s']:.1f} s ({sq['samples_per_s']:.2f}/s); "
                f"pipeline {r['run_s']:.1f} s ({r['samples_per_s']:.2f}/s, efficiency {r['efficiency']:.2f}); "
                f"speed-up {speedup:.2f}"
            )
            lines.append(
                f"     CPU of the process tree {r['cpu_s']:.1f} s = {r['cpu_vs_stage_code']:.2f} x the stage code's; "
                f"beyond the stage code {100 * r['orchestration_share']:.0f} %; Ray init {r['ray_init_s']:.1f} s"
            )
            top = ", ".join(f"{k} {v:.1f}" for k, v in list(r["cpu_s_by_process"].items())[:8])
            lines.append(f"     CPU s by process: {top}")
            mem = r["peak_memory"]
            lines.append(
                f"     peak memory: PSS {mem['pss_mb']:.0f} MB over {mem['processes']} processes "
                f"(USS {mem['uss_mb']:.0f}, RSS sum {mem['rss_mb']:.0f})"
            )
        if "steady_state" in w:
            ss = w["steady_state"]
            lines.append(
                f"fit over N and {wl['mem_factor']}N: marginal {ss['samples_per_s']:.2f} samples/s = efficiency "
                f"{ss['efficiency']:.2f}, marginal CPU {ss['cpu_s_per_sample']:.3f} s/sample = "
                f"{ss['cpu_vs_stage_code']:.2f} x the stage code's; start-up {ss['fixed_cpu_s']:.1f} CPU s, "
                f"{ss['fixed_s']:.1f} s inside the run" + ("" if ss["valid"] else "  (NOT valid: N too small)")
            )
            lines.append(
                f"peak memory {wl['mem_factor']}N / N: {w['memory_ratio_large_vs_small']:.2f} "
                f"({w['memory_growth_mb_per_sample']:+.1f} MB per extra sample)"
            )
        if "pipeline_large_stopped" in w:
            lines.append(f"pipeline, {wl['mem_factor']}N: STOPPED, {w['pipeline_large_stopped']}")
        if not w["same_samples"] or not w.get("same_samples_large", True):
            lines.append("WARNING: the loop and the pipeline counted different samples")
    main = res["workloads"][0] if res["workloads"] else None
    if main:
        lines += ["", f"== targets ({main['workload']['label']})"]
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
        "command": " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"cores": cores(), "platform": platform.platform(), "loadavg_start": os.getloadavg()[0]},
        "versions": versions(),
        "git_revision": git_revision(),
        "start": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "workloads": [],
        "extras": {},
        "results_path": str(args.results),
        "overrides": args.overrides,
    }
    limit = int(args.memory_limit * psutil.virtual_memory().total)
    try:
        overrides = tuple(tuple(o.split("=", 1)) for o in args.overrides)
        main_work = Workload(args.size, args.units, args.seed, overrides)
        res["config"] = json.loads(main_work.config(scratch / "config").model_dump_json())
        res["workloads"].append(measure(main_work, args.mem_factor, scratch, args.block_mb, limit))
        if args.real:
            real = Workload(0, 0, args.seed, overrides, real=True)
            res["workloads"].append(measure(real, 0, scratch, args.block_mb, limit))
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
    res["projection"] = project(res)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(res, indent=1))
    print(format_table(res))
    print()
    print(projection_table(res["projection"]))
    return res


if __name__ == "__main__":
    main()
