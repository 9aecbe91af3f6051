"""Stage 2's CPU seconds per sample on real photos at their own size, with a run's config (default: the
defaults): what the masks+layers stage will cost a cluster per sample, where the fill is most of it.

The photos (default: the bundled real photos, 570 to 1800 px, reduced by ingest to ``ingest.max_side``) go
through stage 1 as a ``folder`` source (object proposals), then each candidate row through stage 2 alone,
timed by ``time.process_time`` (this process's CPU, every thread: other load on a shared machine does not
inflate it). Printed per photo size (the ingested photo's long side): samples, mean, p90 and max CPU s.

    python -m curation.eval_stage2 [--config run.yaml] [--json out.json] [photo ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from curation.core.config import MasksConfig, RunConfig, load_config
from curation.core.data import BUNDLED, DESOBAV2


def bundled_photos() -> list[Path]:
    """The bundled real photos at real size: the SAM and plaza photos and the DESOBAv2 composites."""
    return sorted(BUNDLED.glob("*.jpg")) + sorted(DESOBAV2.glob("*/composite.png"))


def measure(settings: dict[str, Any], photos: list[Path]) -> list[dict[str, Any]]:
    """Stage 1 and 2 of a run configured by ``settings`` (a run config's data; ``sources`` and ``run.out``
    are replaced) on ``photos``. One record per candidate sample: its photo, the photo's long side after
    ingest, stage 2's CPU s, and whether stage 2 kept it (else its reject reason)."""
    from curation.core.schema import is_ok, require_image, table_rows
    from curation.worklist import unit_batches
    from stages.ingest import Ingest
    from stages.masks import MasksAndLayers

    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "photos.txt"
        listing.write_text("".join(f"{p.resolve()}\n" for p in photos))
        data = {**settings, "sources": [{"type": "folder", "name": "photos", "list_file": str(listing)}]}
        data["run"] = {**data.get("run", {}), "out": str(Path(tmp) / "out")}
        cfg = RunConfig.model_validate(data)
        ingest, stage = Ingest(cfg), MasksAndLayers(cfg)
        records = []
        for units in unit_batches(cfg):
            for row in ingest.run(table_rows(units)):
                if not is_ok(row):
                    continue
                side = max(require_image(row, "composite").shape[:2])
                started = time.process_time()
                (out,) = stage.run([row])
                records.append(
                    {
                        "photo": str(row.get("source_ref", "")),
                        "side": side,
                        "cpu_seconds": time.process_time() - started,
                        "status": "ok" if is_ok(out) else str(out.get("reject_reason")),
                    }
                )
    return records


def summary(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per photo size (and ``all``): samples, mean, p90 and max of stage 2's CPU s per sample."""
    groups: dict[str, list[float]] = {"all": [r["cpu_seconds"] for r in records]}
    for r in records:
        groups.setdefault(f"{r['side']} px", []).append(r["cpu_seconds"])
    return {
        k: {
            "samples": len(v),
            "mean": round(float(np.mean(v)), 3),
            "p90": round(float(np.percentile(v, 90)), 3),
            "max": round(float(np.max(v)), 3),
        }
        for k, v in groups.items()
        if v
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m curation.eval_stage2", description=__doc__.splitlines()[0])
    p.add_argument("photos", nargs="*", type=Path, help="photos to measure (default: the bundled real photos)")
    p.add_argument("--config", help="a run config whose stage 1 and 2 settings to use (default: the defaults)")
    p.add_argument("--json", help="also write every sample's record here")
    args = p.parse_args(argv)
    settings = load_config(args.config).model_dump(mode="json") if args.config else {}
    records = measure(settings, args.photos or bundled_photos())
    table = summary(records)
    backend = MasksConfig.model_validate(settings.get("masks", {})).inpaint.backend
    print(f"stage 2 ({backend} fill), CPU s per sample:")
    print(f"{'photo size':>12} {'samples':>8} {'mean':>7} {'p90':>7} {'max':>7}")
    for k, v in table.items():
        print(f"{k:>12} {v['samples']:>8} {v['mean']:>7.3f} {v['p90']:>7.3f} {v['max']:>7.3f}")
    kept = sum(r["status"] == "ok" for r in records)
    print(f"kept by stage 2: {kept} of {len(records)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": table, "samples": records}, indent=1))


if __name__ == "__main__":
    main()
