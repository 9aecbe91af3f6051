"""A bounded sample of rejected rows keeps thumbnails of its layers, so that false rejects can be reviewed.

:func:`curation.core.schema.reject` drops a row's images (blocks stay small) but sets them aside until the
stage's batch ends. Then :class:`RejectSampler` turns the images of the first few rejects of each
(stage, reason) into small PNGs in the row's ``thumbnails`` column, which the sink keeps in the shard's
index (so in ``rejects.parquet``), and lets the others go. The bound holds for the whole run when the
pipeline passes its tally (one actor counts the grants), else per sampler.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from curation.core.imageio import decode_png, encode_png
from curation.core.schema import LAYER_MEMBERS, REJECTED, SET_ASIDE, Row

#: where a layer the stage had not produced yet comes from (the source's clean plate and annotation masks)
FALLBACK = {"background": "clean", "mask": "ann_mask", "effect": "ann_effect"}


def shrink(image: np.ndarray, px: int) -> np.ndarray:
    """``image`` with its longer side at most ``px`` (area-averaged; RGBA premultiplied, so no fringes)."""
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    h, w = image.shape[:2]
    scale = px / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float32) / 255
        small = cv2.resize(
            np.concatenate([image[..., :3] * alpha, alpha * 255], axis=2), size, interpolation=cv2.INTER_AREA
        )
        a = small[..., 3:] / 255
        rgb = np.where(a > 0, small[..., :3] / np.maximum(a, 1e-6), 0)
        return np.clip(np.concatenate([rgb, small[..., 3:]], axis=2) + 0.5, 0, 255).astype(np.uint8)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def thumbnails(images: dict[str, np.ndarray], px: int) -> dict[str, bytes | None]:
    """PNG thumbnails of a row's layers (each member of :data:`LAYER_MEMBERS`, ``None`` where absent)."""
    out: dict[str, bytes | None] = {}
    for member in LAYER_MEMBERS:
        image = images.get(member)
        if image is None:
            image = images.get(FALLBACK.get(member, ""))
        out[member] = None if image is None else encode_png(shrink(image, px), compression=6)
    return out


class RejectSampler:
    """Thumbnails for at most ``per_reason`` rejects of each reason of one stage; called after each batch.

    ``tally`` (the run's progress actor) grants the places, so the bound holds across all actors; a reason
    whose places are gone is not asked about again.
    """

    def __init__(self, stage: str, per_reason: int, px: int, tally: Any = None):
        self.stage, self.per_reason, self.px, self.tally = stage, per_reason, px, tally
        self.kept: Counter[str] = Counter()
        self.full: set[str] = set()

    def __call__(self, rows: list[Row]) -> None:
        wanted: dict[str, list[tuple[Row, dict]]] = defaultdict(list)
        for row in rows:
            aside = row.pop(SET_ASIDE, None)
            if aside is not None and row["status"] == REJECTED and row["reject_reason"] not in self.full:
                wanted[row["reject_reason"]].append((row, aside))
        for reason, items in wanted.items():
            granted = self._grant(reason, len(items))
            for row, aside in items[:granted]:
                row["thumbnails"] = thumbnails(aside, self.px)
            if granted < len(items):
                self.full.add(reason)

    def _grant(self, reason: str, n: int) -> int:
        """How many of ``n`` rejects may keep thumbnails: a review aid, so a tally out of reach grants none
        rather than failing the batch."""
        if self.tally is not None:
            try:
                return ray.get(self.tally.claim.remote(self.stage, reason, n, self.per_reason))
            except ray.exceptions.RayActorError:
                return 0
        granted = max(0, min(n, self.per_reason - self.kept[reason]))
        self.kept[reason] += granted
        return granted


def reject_samples(index: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """The rows of an index table that kept thumbnails, by ``stage/reason``: key, source, detail, score and
    the decoded layers (``None`` where absent)."""
    if "thumbnails" not in index.column_names or index.num_rows == 0:
        return {}
    kept = index.filter(pc.is_valid(index["thumbnails"]))
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in kept.select(
        ["key", "source", "reject_stage", "reject_reason", "reject_detail", "score", "thumbnails"]
    ).to_pylist():
        layers = {
            m: None if row["thumbnails"].get(m) is None else decode_png(row["thumbnails"][m]) for m in LAYER_MEMBERS
        }
        out[f"{row['reject_stage']}/{row['reject_reason']}"].append({**row, "thumbnails": layers})
    return dict(out)
