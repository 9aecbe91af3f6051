"""Stage 1, ingest: source units → validated candidate rows, one per instance.

Decode and validate (done by the adapters through ``curation.core.imageio``), cap the size, drop duplicate
images, select non-occluded whole instances, and skip keys a previous run already finished.
Every exclusion stays in the stream as a rejected row with a reason; no input makes the stage raise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from typing import Any

import numpy as np
import ray

from curation.core.config import RunConfig
from curation.core.imageio import ImageError
from curation.core.instance_labels import label_image
from curation.core.schema import (
    ROW_SCHEMA,
    UNIT_SCHEMA,
    Reason,
    Row,
    StageName,
    get_image,
    get_json,
    is_ok,
    new_row,
    reject,
    require_image,
    set_image,
    update_meta,
)
from curation.core.stage import Stage
from stages.selection import select_instances
from stages.sources import Source, Unit, build_source, make_key
from stages.sources.base import MANIFEST_ERROR
from stages.sources.coco_json import AnnotationError

log = logging.getLogger(__name__)


def attach_photo_instances(rows: list[Row]) -> None:
    """Give each row of one photo the label image of the photo's annotated instances (crowd regions left out: no
    one object's shadow) and its own label in it (``curation/core/instance_labels.py``); one array for all."""
    masks = [None if get_json(r, "ann").get("iscrowd") else get_image(r, "ann_mask") for r in rows]
    labels, ids = label_image(masks)
    if labels is None:
        return
    for row, k in zip(rows, ids, strict=True):
        if k:
            set_image(row, "ann_instances", labels)
            get_json(row, "ann")["photo_instance"] = k


def content_digest(image: np.ndarray) -> str:
    """Hash of the decoded pixels and their shape: the same photo re-encoded or renamed still matches."""
    return hashlib.sha1(str(image.shape).encode() + np.ascontiguousarray(image).tobytes()).hexdigest()


class Ingest(Stage):
    """A batch of source units in, a batch of candidate rows out (one unit may give many rows).

    ``done_keys`` are skipped (a resumed run); ``dedupe`` is the run's
    :class:`~stages.dedupe.DedupeRegistry` handle.
    """

    name = StageName.INGEST
    reads = tuple(UNIT_SCHEMA.names)
    writes = tuple(f.name for f in ROW_SCHEMA if f.name not in ("psnr", "score"))

    def __init__(self, cfg: RunConfig, done_keys: frozenset[str] = frozenset(), dedupe: Any = None):
        super().__init__(cfg)
        self.sources: dict[str, Source] = {s.name: build_source(s) for s in cfg.sources}
        self.done_keys = done_keys
        self.dedupe = dedupe

    def _load(self, source: Source, unit: Unit) -> tuple[list[Row], float]:
        """The unit's candidate rows (downscaled) and the scale; any failure becomes one rejected row."""

        def failed(reason: Reason, detail: str) -> tuple[list[Row], float]:
            ref = json.dumps(unit.ref, default=str)[:2000]
            return [reject(new_row(source.unit_key(unit), source.name, ref), self.name, reason, detail)], 1.0

        if MANIFEST_ERROR in unit.ref:
            return failed(
                Reason(unit.ref.get("reason", Reason.BAD_MANIFEST_ROW)),
                f"{unit.ref[MANIFEST_ERROR]} (entry: {unit.ref.get('entry', '')})",
            )
        try:
            rows, scale = source.load_scaled(unit, self.cfg.ingest.max_pixels, self.cfg.ingest.max_side)
        except ImageError as err:
            return failed(Reason(err.reason), err.detail)
        except AnnotationError as err:
            return failed(Reason.BAD_ANNOTATION, str(err))
        except (KeyError, TypeError, ValueError) as err:
            return failed(Reason.BAD_MANIFEST_ROW, f"{type(err).__name__}: {err}")
        except Exception as err:  # noqa: BLE001 - one bad unit must not cost the run
            log.warning("ingest %s/%s failed\n%s", source.name, unit.unit_id, traceback.format_exc())
            return failed(Reason.STAGE_ERROR, f"{type(err).__name__}: {err}")
        if not rows:
            return failed(Reason.NO_INSTANCES, "the image has no annotated or proposed instances")
        return rows, scale

    def _duplicate_of(self, digest: str, key: str) -> str | None:
        if self.dedupe is None:
            return None
        first = ray.get(self.dedupe.claim.remote(digest, key))
        return None if first == key else first

    def ingest_unit(self, source: Source, unit: Unit) -> list[Row]:
        """The unit's rows less those a previous run finished; those are dropped only after selection, so
        an instance already written still counts as an occluder of its neighbours. A unit whose keys are
        all done (when its source knows them beforehand) is skipped before it is decoded."""
        if not self.done_keys:
            return self._select(source, unit)
        if MANIFEST_ERROR not in unit.ref:
            expected = source.expected_keys(unit)
            if expected and self.done_keys.issuperset(expected):  # all done: not even read
                return []
        return [r for r in self._select(source, unit) if r["key"] not in self.done_keys]

    def _select(self, source: Source, unit: Unit) -> list[Row]:
        started = time.perf_counter()
        rows, scale = self._load(source, unit)
        live = [r for r in rows if is_ok(r)]
        if not live:
            return rows
        values: dict[str, Any] = {"scale": round(scale, 5)}
        if self.cfg.ingest.dedupe:
            values.update(digest=content_digest(require_image(live[0], "composite")), unit=source.unit_key(unit))
            first = self._duplicate_of(values["digest"], values["unit"])
            if first is not None:
                for r in live:
                    update_meta(r, self.name, values)
                    reject(r, self.name, Reason.DUPLICATE_IMAGE, f"same pixels as {first}")
                return rows
        attach_photo_instances(live)  # before selection: a rejected instance still shows where the light comes from
        select_instances(live, self.cfg.ingest.selection)
        elapsed = round(time.perf_counter() - started, 5)
        for r in live:
            update_meta(r, self.name, values)
            if is_ok(r):
                update_meta(r, "timings", {self.name.value: elapsed})
        return rows

    def run(self, units: list[Row]) -> list[Row]:
        """Work-list rows (source, unit_id, ref) in, candidate rows out."""
        out: list[Row] = []
        for u in units:
            source = self.sources.get(u["source"])
            if source is None:
                out.append(
                    reject(
                        new_row(make_key(u["source"], u["unit_id"]), u["source"], u["ref"]),
                        self.name,
                        Reason.BAD_MANIFEST_ROW,
                        f"no source named {u['source']!r} in the run config",
                    )
                )
                continue
            out.extend(self.ingest_unit(source, Unit(unit_id=u["unit_id"], ref=json.loads(u["ref"]))))
        return out
