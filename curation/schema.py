"""The row that flows through the DAG: one candidate instance, accepted or rejected.

Every stage reads and writes rows of exactly this schema, so Ray Data blocks from any stage
concatenate without schema drift. Images travel as ``.npy`` blobs (shape + dtype + raw bytes):
a memcpy to pack, no compression cost between stages, and an empty blob means "absent".
"""
from __future__ import annotations

import json
from enum import Enum
from typing import Any

import numpy as np
import pyarrow as pa

from curation.imageio import from_blob, to_blob

OK = "ok"
REJECTED = "rejected"

#: Image columns: inputs from the source, then the layers that stage 2 produces.
INPUT_IMAGES = ("composite", "clean", "ann_mask", "ann_effect")
LAYER_IMAGES = ("background", "foreground", "mask", "effect")
IMAGE_COLUMNS = INPUT_IMAGES + LAYER_IMAGES
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

#: Columns kept in the per-shard parquet index (no pixels).
INDEX_COLUMNS = [f.name for f in ROW_SCHEMA if f.name not in IMAGE_COLUMNS] + ["shard"]

Row = dict[str, Any]


class Reason(str, Enum):
    """Reject reason codes. A code names what is wrong with the input, not where the code failed."""

    # ingest: reading and validating files
    MISSING_FILE = "missing_file"
    EMPTY_FILE = "empty_file"
    NOT_IMAGE = "not_image"
    DECODE_ERROR = "decode_error"
    TRUNCATED = "truncated"
    TOO_MANY_PIXELS = "too_many_pixels"
    UNSUPPORTED_MODE = "unsupported_mode"
    SIZE_MISMATCH = "size_mismatch"
    BAD_MANIFEST_ROW = "bad_manifest_row"
    DUPLICATE_IMAGE = "duplicate_image"
    BAD_ANNOTATION = "bad_annotation"
    # ingest: instance selection
    CROWD = "crowd"
    CATEGORY_EXCLUDED = "category_excluded"
    AREA_TOO_SMALL = "area_too_small"
    AREA_TOO_LARGE = "area_too_large"
    TOO_SMALL = "too_small"
    TOUCHES_BORDER = "touches_border"
    OCCLUDED = "occluded"
    NO_INSTANCES = "no_instances"
    # masks + layers
    EMPTY_MASK = "empty_mask"
    MASK_FAILED = "mask_failed"
    EFFECT_DETACHED = "effect_detached"
    ALPHA_OUT_OF_RANGE = "alpha_out_of_range"
    LOW_RECOMPOSITE_PSNR = "low_recomposite_psnr"
    # caption
    EMPTY_CAPTION = "empty_caption"
    # curate
    LOW_CURATOR_SCORE = "low_curator_score"
    # any stage: an exception escaped the stage code for this row
    STAGE_ERROR = "stage_error"


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


def reject(row: Row, stage: str, reason: Reason, detail: str = "") -> Row:
    """Mark a row rejected; later stages pass it through untouched. Pixels are dropped to keep blocks small."""
    row.update(status=REJECTED, reject_stage=stage, reject_reason=Reason(reason).value, reject_detail=detail[:500])
    for c in IMAGE_COLUMNS:
        row[c] = b""
    return row


def is_ok(row: Row) -> bool:
    return row["status"] == OK


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
