"""Ingest throughput and peak memory on a synthetic COCO-format annotation file of 100K instances.

    python bench/ingest_coco.py [--instances 100000] [--per-image 10] [--size 320x240]

Writes the dataset to a temp dir (image files are a small pool that the entries share, the annotation
file is full size), then, in a fresh child process so that its peak RSS is the run's own, runs the real
stage-1 code path: the driver streaming ``units()`` into the parquet work list and the ``Ingest`` callable over
every work-list batch (decode, masks, downscale, selection; no Ray, no dedupe
actor). A second child only does ``json.load`` on the same file, for comparison with the
non-streaming way of reading it. ``main()`` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _ingest_child(ann: str, images: str, work: str, out: Any) -> None:
    import pyarrow.parquet as pq

    from curation.core.config import parse_config
    from curation.core.schema import table_rows
    from curation.worklist import write_units
    from stages.ingest import Ingest

    cfg = parse_config(
        {
            "run": {"out": work},
            "sources": [{"type": "coco", "name": "coco", "annotations": ann, "images": images, "index_dir": work}],
            "ingest": {"resources": {"batch_size": 16}},
        }
    )
    ingest = Ingest(cfg)
    import_rss = _peak_rss_mib()
    units_path = Path(work) / "units.parquet"
    t0 = time.perf_counter()
    n_units = write_units(cfg, units_path)
    t1 = time.perf_counter()
    units_rss = _peak_rss_mib()
    rows = accepted = 0
    reasons: dict[str, int] = {}
    pf = pq.ParquetFile(units_path)
    for i in range(pf.num_row_groups):
        for r in ingest.run(table_rows(pf.read_row_group(i))):  # as the fused actor runs it
            rows += 1
            accepted += r["status"] == "ok"
            if r["reject_reason"]:
                reasons[r["reject_reason"]] = reasons.get(r["reject_reason"], 0) + 1
    t2 = time.perf_counter()
    out.put(
        {
            "units": n_units,
            "import_rss_mib": import_rss,
            "units_rss_mib": units_rss,
            "rows": rows,
            "accepted": accepted,
            "reasons": reasons,
            "units_seconds": t1 - t0,
            "load_seconds": t2 - t1,
            "peak_rss_mib": _peak_rss_mib(),
            "work_list_mib": units_path.stat().st_size / 2**20,
        }
    )


def _json_load_child(ann: str, out: Any) -> None:
    t0 = time.perf_counter()
    with open(ann) as f:
        data = json.load(f)
    out.put(
        {"seconds": time.perf_counter() - t0, "annotations": len(data["annotations"]), "peak_rss_mib": _peak_rss_mib()}
    )


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    result = q.get()
    p.join()
    return result


def main(
    instances: int = 100_000, per_image: int = 10, size: tuple[int, int] = (320, 240), distinct_files: int = 200
) -> dict[str, Any]:
    from devdata.coco_synth import write_dataset

    with tempfile.TemporaryDirectory(prefix="bench-ingest-coco-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        ann = write_dataset(
            root / "coco",
            n_images=instances // per_image,
            objects_per_image=per_image,
            size=size,
            seed=0,
            distinct_files=distinct_files,
        )
        gen_s = time.perf_counter() - t0
        (root / "work").mkdir()
        run = _in_child(_ingest_child, str(ann), str(root / "coco" / "val2017"), str(root / "work"))
        baseline = _in_child(_json_load_child, str(ann))
        total = run["units_seconds"] + run["load_seconds"]
        return {
            "instances": instances,
            "images": instances // per_image,
            "image_size": f"{size[0]}x{size[1]}",
            "annotation_file_mib": round(ann.stat().st_size / 2**20, 1),
            "generate_seconds": round(gen_s, 1),
            "rows": run["rows"],
            "accepted": run["accepted"],
            "reject_reasons": run["reasons"],
            "units_seconds": round(run["units_seconds"], 2),
            "units_rows_per_s": round(run["rows"] / run["units_seconds"]),
            "load_seconds": round(run["load_seconds"], 2),
            "load_rows_per_s": round(run["rows"] / run["load_seconds"]),
            "rows_per_s": round(run["rows"] / total),
            "peak_rss_mib": round(run["peak_rss_mib"], 1),
            "rss_after_imports_mib": round(run["import_rss_mib"], 1),
            "peak_rss_after_units_mib": round(run["units_rss_mib"], 1),
            "work_list_mib": round(run["work_list_mib"], 1),
            "json_load_peak_rss_mib": round(baseline["peak_rss_mib"], 1),
            "json_load_seconds": round(baseline["seconds"], 2),
        }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--per-image", type=int, default=10)
    ap.add_argument("--size", default="320x240", help="WxH of the photos")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    result = main(args.instances, args.per_image, (w, h))
    for k, v in result.items():
        print(f"{k:24s} {v}")
