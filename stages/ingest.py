"""Stage 1, ingest: source units → validated candidate rows, one per instance.

Decode and validate (done by the adapters through ``curation.imageio``), cap the size, drop duplicate
images, select non-occluded whole instances, and skip keys a previous run already finished.
Every exclusion stays in the stream as a rejected row with a reason.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import ray

from curation.config import RunConfig
from curation.imageio import ImageError
from curation.schema import Reason, Row, get_image, get_json, is_ok, new_row, reject, rows_to_table, set_image, update_meta
from stages.selection import select_instances
from stages.sources import Source, Unit, build_source

STAGE = "ingest"
UNIT_SCHEMA = pa.schema([("source", pa.string()), ("unit_id", pa.string()), ("ref", pa.string())])


@ray.remote(num_cpus=0)
class DedupeRegistry:
    """Cluster-wide record of image content hashes, so duplicates are caught across ingest workers."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}

    def claim(self, digest: str, key: str) -> str:
        """The key that first claimed ``digest`` (``key`` itself if it is the first)."""
        return self.first.setdefault(digest, key)


def _downscale(rows: list[Row], max_side: int) -> float:
    """Shrink every image of a unit so its long side is at most ``max_side``; returns the scale."""
    comp = get_image(rows[0], "composite")
    if comp is None:
        return 1.0
    h, w = comp.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    for row in rows:
        for col in ("composite", "clean"):
            img = get_image(row, col)
            if img is not None:
                set_image(row, col, cv2.resize(img, size, interpolation=cv2.INTER_AREA))
        for col in ("ann_mask", "ann_effect"):
            m = get_image(row, col)
            if m is not None:
                set_image(row, col, cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool))
        ann = get_json(row, "ann")
        if "bbox" in ann:
            ann["bbox"] = [v * scale for v in ann["bbox"]]
            row["ann"] = json.dumps(ann)
    return scale


class Ingest:
    """Ray callable: a batch of units in, a batch of candidate rows out (one unit may give many rows)."""

    def __init__(self, cfg_json: str, done_keys: frozenset[str] = frozenset(), dedupe: Any = None):
        run_cfg = RunConfig.model_validate_json(cfg_json)
        self.cfg = run_cfg.ingest
        self.sources: dict[str, Source] = {s.name: build_source(s) for s in run_cfg.sources}
        self.done_keys = done_keys
        self.dedupe = dedupe

    def _load(self, source: Source, unit: Unit) -> list[Row]:
        try:
            rows = source.load(unit, self.cfg.max_pixels)
        except ImageError as err:
            return [reject(new_row(source.unit_key(unit), source.name, json.dumps(unit.ref)), STAGE, Reason(err.reason), err.detail)]
        except (KeyError, TypeError, ValueError) as err:
            return [reject(new_row(source.unit_key(unit), source.name, json.dumps(unit.ref)), STAGE,
                           Reason.BAD_MANIFEST_ROW, f"{type(err).__name__}: {err}")]
        if not rows:
            return [reject(new_row(source.unit_key(unit), source.name, json.dumps(unit.ref)), STAGE,
                           Reason.NO_INSTANCES, "the image has no annotated instances")]
        return rows

    def _is_duplicate(self, rows: list[Row]) -> str | None:
        comp = get_image(rows[0], "composite")
        if comp is None or self.dedupe is None:
            return None
        digest = hashlib.sha1(comp.tobytes() + str(comp.shape).encode()).hexdigest()
        first = ray.get(self.dedupe.claim.remote(digest, rows[0]["key"]))
        return None if first == rows[0]["key"] else first

    def ingest_unit(self, source: Source, unit: Unit) -> list[Row]:
        started = time.perf_counter()
        rows = [r for r in self._load(source, unit) if r["key"] not in self.done_keys]
        live = [r for r in rows if is_ok(r)]
        if live:
            scale = _downscale(live, self.cfg.max_side)
            first = self._is_duplicate(live) if self.cfg.dedupe else None
            if first is not None:
                for r in live:
                    reject(r, STAGE, Reason.DUPLICATE_IMAGE, f"same pixels as {first}")
            else:
                select_instances(live, self.cfg.selection)
            for r in live:
                if is_ok(r):
                    update_meta(r, STAGE, {"scale": round(scale, 5)})
                    update_meta(r, "timings", {STAGE: round(time.perf_counter() - started, 5)})
        return rows

    def __call__(self, batch: pa.Table) -> pa.Table:
        out: list[Row] = []
        for u in batch.to_pylist():
            source = self.sources.get(u["source"])
            unit = Unit(unit_id=u["unit_id"], ref=json.loads(u["ref"]))
            if source is None:
                out.append(reject(new_row(f"{u['source']}-{u['unit_id']}", u["source"], u["ref"]), STAGE,
                                  Reason.BAD_MANIFEST_ROW, f"no source named {u['source']!r} in the run config"))
                continue
            out.extend(self.ingest_unit(source, unit))
        return rows_to_table(out)
