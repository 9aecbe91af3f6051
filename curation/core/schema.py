"""The row that flows through the DAG: one candidate instance, accepted or rejected.

Every stage reads and writes rows of exactly this schema, so Ray Data blocks from any stage
concatenate without schema drift. Images travel as ``.npy`` blobs (shape + dtype + raw bytes):
a memcpy to pack, no compression cost between stages, and an empty blob means "absent".
"""
from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pyarrow as pa

from curation.core.reasons import Reason, StageName

OK = "ok"
REJECTED = "rejected"

#: Image columns: inputs from the source, then the layers that stage 2 produces.
INPUT_IMAGES = ("composite", "clean", "ann_mask", "ann_effect")
LAYER_IMAGES = ("background", "foreground", "mask", "effect")
IMAGE_COLUMNS = INPUT_IMAGES + LAYER_IMAGES
#: The image members of a written sample, in the order they are written (a :class:`Triplet`'s fields).
LAYER_MEMBERS = ("composite", "background", "foreground", "mask", "effect")
CAPTION_COLUMNS = ("caption_composite", "caption_foreground", "caption_background")

ROW_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("source", pa.string()),
        ("source_ref", pa.string()),
        ("label", pa.string()),
        ("status", pa.string()),
        ("reject_stage", pa.string()),
        ("reject_reason", pa.string()),
        ("reject_detail", pa.string()),
        ("ann", pa.string()),  # json: what the source annotated (bbox xywh, category, ids, points)
        ("meta", pa.string()),  # json: what the stages measured and which backends they used
        *[(c, pa.large_binary()) for c in IMAGE_COLUMNS],
        *[(c, pa.string()) for c in CAPTION_COLUMNS],
        ("psnr", pa.float64()),
        ("score", pa.float64()),
    ]
)

#: The work list the driver writes and ingest reads: one source unit (an image and its annotations) per row.
UNIT_SCHEMA = pa.schema([("source", pa.string()), ("unit_id", pa.string()), ("ref", pa.string())])

#: Columns kept in the per-shard parquet index (no pixels).
INDEX_COLUMNS = [f.name for f in ROW_SCHEMA if f.name not in IMAGE_COLUMNS] + ["shard"]

Row = dict[str, Any]


def new_row(key: str, source: str, source_ref: str, **fields: Any) -> Row:
    """A fresh ``ok`` row with every schema column present."""
    row: Row = {f.name: None for f in ROW_SCHEMA}
    row.update(
        key=key, source=source, source_ref=source_ref, label="", status=OK,
        reject_stage="", reject_reason="", reject_detail="", ann="{}", meta="{}",
        psnr=float("nan"), score=float("nan"),
    )
    for c in IMAGE_COLUMNS:
        row[c] = b""
    for c in CAPTION_COLUMNS:
        row[c] = ""
    for name, value in fields.items():
        if name in IMAGE_COLUMNS:
            set_image(row, name, value)
        elif name in ("ann", "meta"):
            row[name] = json.dumps(value)
        else:
            row[name] = value
    return row


def reject(row: Row, stage: StageName, reason: Reason, detail: str = "") -> Row:
    """Mark a row rejected; later stages pass it through untouched. Pixels are dropped to keep blocks small."""
    row.update(status=REJECTED, reject_stage=StageName(stage).value, reject_reason=Reason(reason).value, reject_detail=detail[:500])
    for c in IMAGE_COLUMNS:
        row[c] = b""
    return row


def is_ok(row: Row) -> bool:
    return row["status"] == OK


def to_blob(array: np.ndarray | None) -> bytes:
    """Pack an array as ``.npy`` bytes (shape and dtype included); ``None`` packs as empty bytes."""
    if array is None:
        return b""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def from_blob(blob: bytes | None) -> np.ndarray | None:
    if not blob:
        return None
    return np.load(io.BytesIO(blob), allow_pickle=False)


def get_image(row: Row, column: str) -> np.ndarray | None:
    return from_blob(row[column])


def set_image(row: Row, column: str, array: np.ndarray | None) -> None:
    row[column] = to_blob(array)


def get_json(row: Row, column: str) -> dict[str, Any]:
    return json.loads(row[column] or "{}")


def update_meta(row: Row, stage: str, values: dict[str, Any]) -> None:
    """Record what ``stage`` measured/used under ``meta[stage]``."""
    meta = get_json(row, "meta")
    meta.setdefault(stage, {}).update(values)
    row["meta"] = json.dumps(meta)


def rows_to_table(rows: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
