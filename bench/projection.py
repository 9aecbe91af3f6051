"""The cluster projection in docs/bench.md, computed from a ``make bench`` run: how many GPUs, and how many CPU cores
per GPU, curate a target number of triplets in a stated time, with stage 2's fill on the CPU and on the GPU.

The CPU side is measured by the run (per-stage CPU s/sample of the main workload, times the measured marginal
orchestration factor). The GPU side is not measured here unless ``bench/gpu_results.json`` holds a run of
``bench/gpu_bench.py`` on a GPU; otherwise it uses the published / estimated per-sample figures below, and the
fill's GPU throughput is an assumption, named as such in the output.

    python -m bench.projection                        # from bench/results.json (+ gpu_results.json if present)
    python -m bench.projection --hours 4 --triplets 48000
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
GPU_RESULTS = BENCH / "gpu_results.json"

#: A100-seconds per sample when no GPU run is at hand: SAM vit_h image encoder (published: about 0.15 s per
#: 1024-px image, segment-anything.com FAQ; counted once per sample, conservative), and a ~2B VLM writing three
#: captions (an estimate from an A100's published compute and memory bandwidth: docs/bench.md)
PUBLISHED_GPU_S = {"sam": 0.15, "vlm": 0.07}
#: ASSUMED windows/s of a LaMa-class fill (big-lama size, 512-px windows, batches of 16) on one A100: nothing
#: measured it; `bench/gpu_bench.py` on a GPU replaces it (its ``fill.windows_per_s``)
ASSUMED_FILL_WINDOWS_PER_S = 40.0


def gpu_figures(gpu_results: Path = GPU_RESULTS) -> dict[str, Any]:
    """GPU seconds per sample of each GPU model, and where each figure comes from."""
    out: dict[str, Any] = {
        "sam_s": PUBLISHED_GPU_S["sam"],
        "vlm_s": PUBLISHED_GPU_S["vlm"],
        "fill_windows_per_s": ASSUMED_FILL_WINDOWS_PER_S,
        "gpu": "A100 (published figures and estimates)",
        "fill_source": "assumed (no GPU measurement)",
        "models_source": "published (SAM) / estimated (VLM)",
    }
    if gpu_results.exists():
        res = json.loads(gpu_results.read_text())
        if res.get("mode") == "gpu":
            best = max(res["sam"]["batches"].values(), key=lambda b: b["images_per_s"])
            vlm = max(res["vlm"]["batches"].values(), key=lambda b: b["images_per_s"])
            out |= {
                "sam_s": 1 / best["images_per_s"],
                "vlm_s": 3 / vlm["images_per_s"],  # three captions per sample
                "gpu": res["device"],
                "models_source": f"measured by bench/gpu_bench.py on {res['device']}",
            }
            if "fill" in res:
                out["fill_windows_per_s"] = res["fill"]["windows_per_s"]
                out["fill_source"] = f"measured by bench/gpu_bench.py on {res['device']}"
    return out


def project(results: dict[str, Any], triplets: int = 48_000, hours: float = 2.0, gpu_results: Path = GPU_RESULTS):
    """The projection from a results dict of ``bench.run`` (its first workload)."""
    w = results["workloads"][0]
    run = w.get("pipeline_large", w["pipeline"])
    stage_sum = w["ideal"]["cpu_s_per_sample_sum"]
    fit = w.get("steady_state", {})
    factor = max(1.0, fit["cpu_vs_stage_code"] if fit.get("valid") else run["cpu_vs_stage_code"])
    accept = run["accepted"] / run["samples"]
    samples = triplets / accept
    gpu = gpu_figures(gpu_results)
    models_s = gpu["sam_s"] + gpu["vlm_s"]
    fill_share = w.get("fill_share", 1.0)
    scenarios = {}
    for name, cpu_s, gpu_s in (
        ("fill on CPU", stage_sum * factor, models_s),
        (
            "fill on GPU",
            (stage_sum - w["fill_cpu_s_per_sample"]) * factor,
            models_s + fill_share / gpu["fill_windows_per_s"],
        ),
    ):
        gpus = math.ceil(samples * gpu_s / (hours * 3600))
        per_gpu = cpu_s / gpu_s
        scenarios[name] = {
            "cpu_s_per_sample": cpu_s,
            "gpu_s_per_sample": gpu_s,
            "cores_per_gpu": per_gpu,
            "gpus": gpus,
            "cores": math.ceil(gpus * per_gpu),
            "hours_on_gpus": samples * gpu_s / gpus / 3600,
        }
    return {
        "triplets": triplets,
        "hours": hours,
        "workload": w["workload"]["label"],
        "fill": results.get("config", {}).get("masks", {}).get("inpaint", {}).get("backend"),
        "acceptance": accept,
        "samples": samples,
        "stage_cpu_s_per_sample": stage_sum,
        "fill_cpu_s_per_sample": w["fill_cpu_s_per_sample"],
        "fill_share": fill_share,
        "orchestration_factor": factor,
        "gpu": gpu,
        "scenarios": scenarios,
        "git_revision": results.get("git_revision"),
    }


def projection_table(p: dict[str, Any]) -> str:
    """The projection as the markdown docs/bench.md shows."""
    g = p["gpu"]
    lines = [
        f"{p['triplets']:,} triplets in {p['hours']:g} h, from the bench run at {p['git_revision'] or '?'} "
        f"({p['workload']}, fill `{p['fill']}`): {p['acceptance']:.2f} of the samples accepted there, so "
        f"{p['samples']:,.0f} samples; stage code {p['stage_cpu_s_per_sample']:.3f} CPU s/sample (the fill "
        f"{p['fill_cpu_s_per_sample']:.3f}, on {p['fill_share']:.0%} of the samples) x {p['orchestration_factor']:.2f} "
        f"(measured marginal orchestration). GPU: {g['gpu']}; SAM {g['sam_s']:.3f} + VLM {g['vlm_s']:.3f} GPU-s/sample "
        f"({g['models_source']}); learned fill {g['fill_windows_per_s']:g} windows/s per GPU ({g['fill_source']}).",
        "",
        "| | CPU s/sample | GPU s/sample | CPU cores per GPU | GPUs | CPU cores in all |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in p["scenarios"].items():
        lines.append(
            f"| {name} | {s['cpu_s_per_sample']:.3f} | {s['gpu_s_per_sample']:.3f} | {s['cores_per_gpu']:.1f} | "
            f"{s['gpus']} | {s['cores']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="bench.projection", description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=BENCH / "results.json")
    ap.add_argument("--gpu-results", type=Path, default=GPU_RESULTS)
    ap.add_argument("--triplets", type=int, default=48_000)
    ap.add_argument("--hours", type=float, default=2.0)
    args = ap.parse_args(argv)
    p = project(json.loads(args.results.read_text()), args.triplets, args.hours, args.gpu_results)
    print(projection_table(p))
    return p


if __name__ == "__main__":
    main()
