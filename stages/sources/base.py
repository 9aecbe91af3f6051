"""The interface every source adapter implements.

A source is read in two steps so that a huge dataset never sits in one process: the driver streams
light :class:`Unit` descriptions (an image and its annotations, no pixels) into a parquet work list,
and ingest workers turn each unit into candidate rows with :meth:`Source.load`.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from curation.core.config import SourceConfig
from curation.core.reasons import Reason
from curation.core.schema import Row, get_image, get_json, image_identity, set_image

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def key_part(value: object) -> str:
    """One part of a key: kept when it is letters, digits, ``_`` and ``-`` only (keys stay as earlier runs wrote
    them); otherwise made so and suffixed with a hash of the original, so that ``a.b`` and ``a_b`` stay apart."""
    text = str(value)
    if text and not _KEY_UNSAFE.search(text):
        return text
    return f"{_KEY_UNSAFE.sub('_', text).strip('_') or 'x'}_{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def make_key(*parts: object) -> str:
    """A deterministic, dot-free WebDataset key from source name, image id and instance id; ids that had to be
    changed carry a hash of what they were. A repeated unit id is caught where the work list is written
    (``key_collision``)."""
    return "-".join(key_part(p) for p in parts)


def path_id(relpath: str) -> str:
    """A unit id for a file path: readable, and unique even where sanitising makes two paths alike."""
    return f"{_KEY_UNSAFE.sub('_', relpath).strip('_')}_{hashlib.sha1(relpath.encode()).hexdigest()[:8]}"


#: the ``Unit.ref`` key that marks an entry the driver could not understand (becomes ``bad_manifest_row``)
MANIFEST_ERROR = "manifest_error"


@dataclass
class Unit:
    """One image's worth of work: an id unique within its source and a JSON-serialisable reference."""

    unit_id: str
    ref: dict[str, Any] = field(default_factory=dict)


def bad_unit(unit_id: str, detail: str, entry: Any = None, reason: Reason = Reason.BAD_MANIFEST_ROW) -> Unit:
    """A manifest entry that cannot be used: it still travels as a unit so that it ends as a rejected row."""
    raw = json.dumps(entry, default=str)[:300] if entry is not None else ""
    return Unit(unit_id=unit_id, ref={MANIFEST_ERROR: detail, "entry": raw, "reason": reason.value})


def fit_size(h: int, w: int, max_side: int | None) -> tuple[int, int, float]:
    """``(h, w, scale)`` after shrinking so that the long side is at most ``max_side`` (never enlarges)."""
    if max_side is None or max(h, w) <= max_side:
        return h, w, 1.0
    scale = max_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale)), scale


def resize_image(image: np.ndarray, h: int, w: int) -> np.ndarray:
    return image if image.shape[:2] == (h, w) else cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def resize_mask(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour for binary masks: a mask stays a mask."""
    if mask.shape[:2] == (h, w):
        return mask.astype(bool)
    return cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def downscale_rows(rows: list[Row], max_side: int | None) -> float:
    """Shrink every image of a unit's rows in place (long side <= ``max_side``); returns the scale.

    An image that several rows share (the photo of a multi-instance unit) is shrunk once and stays shared.
    """
    comp = get_image(rows[0], "composite") if rows else None
    if comp is None:
        return 1.0
    h, w, scale = fit_size(comp.shape[0], comp.shape[1], max_side)
    if scale == 1.0:
        return 1.0
    done: dict[tuple, np.ndarray] = {}

    def shrink(image: np.ndarray, resize: Callable[[np.ndarray, int, int], np.ndarray]) -> np.ndarray:
        key = (image_identity(image), resize)
        if key not in done:
            done[key] = resize(image, h, w)
        return done[key]

    for row in rows:
        for col, resize in (
            ("composite", resize_image),
            ("clean", resize_image),
            ("ann_mask", resize_mask),
            ("ann_effect", resize_mask),
        ):
            img = get_image(row, col)
            if img is not None:
                set_image(row, col, shrink(img, resize))
        ann = get_json(row, "ann")
        if "bbox" in ann:
            ann["bbox"] = [round(v * scale, 2) for v in ann["bbox"]]
    return scale


class Source(ABC):
    name: str

    @abstractmethod
    def __init__(self, cfg: SourceConfig):
        """Every adapter is built from its validated ``sources:`` entry (:func:`stages.sources.build_source`)."""

    @abstractmethod
    def units(self) -> Iterator[Unit]:
        """Stream the source's units without decoding pixels."""

    @abstractmethod
    def load(self, unit: Unit, max_pixels: int) -> list[Row]:
        """Decode one unit into candidate rows (one per instance).

        Bad files raise :class:`curation.core.imageio.ImageError`; ingest records them as rejected rows.
        """

    def load_scaled(self, unit: Unit, max_pixels: int, max_side: int | None) -> tuple[list[Row], float]:
        """Candidate rows with images already shrunk to ``max_side``, and the scale applied.

        The default shrinks what :meth:`load` returns; adapters whose units carry many instances override
        it to shrink the photo before building rows, so a large photo is never copied once per instance.
        """
        rows = self.load(unit, max_pixels)
        return rows, downscale_rows([r for r in rows if r["status"] == "ok"], max_side)

    def expected_keys(self, unit: Unit) -> list[str] | None:
        """The keys the unit's rows will have, when the unit says so without decoding (None: known only after
        :meth:`load`, as for proposals). A resumed run skips a unit whose keys are all done before reading it."""
        return None

    def unit_key(self, unit: Unit) -> str:
        """The key of the row that stands for a whole unit when the unit itself is rejected."""
        return make_key(self.name, unit.unit_id)
