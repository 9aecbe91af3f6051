"""The row that flows through the DAG: one candidate instance, accepted or rejected.

Inside a stage a row is a plain dict: images are numpy arrays (``None`` when absent) and ``ann`` / ``meta``
are parsed dicts, so stages that run in one actor hand rows to each other with nothing converted.
Only where rows cross between actors do they become an Arrow table of exactly :data:`ROW_SCHEMA`
(:func:`rows_to_table`, :func:`table_rows`), so blocks from any stage concatenate without schema drift.

In the table an image is a ``.npy`` blob (shape + dtype + raw bytes): one memcpy to pack, no compression
cost, and read back as a numpy view of the Arrow buffer without a copy. The photo column (``composite``)
is dictionary-encoded in one chunk per photo: the instances of one photo carry one copy of it, not one
each, and a block that Ray cuts out of a batch carries only the photos of its own rows. So is ``ann_instances``,
the photo's annotated instances as one label image (``curation/core/instance_labels.py``), which all its rows share.
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
INPUT_IMAGES = ("composite", "clean", "ann_mask", "ann_effect", "ann_instances")
LAYER_IMAGES = ("background", "foreground", "mask", "effect")
IMAGE_COLUMNS = INPUT_IMAGES + LAYER_IMAGES
#: the image that all instances of one source image share (stored once per photo between actors)
PHOTO_COLUMN = "composite"
#: the columns stored once per photo between actors: the photo, and its annotated instances' label image
PER_PHOTO_COLUMNS = (PHOTO_COLUMN, "ann_instances")
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
        *[
            (c, pa.dictionary(pa.int32(), pa.large_binary()) if c in PER_PHOTO_COLUMNS else pa.large_binary())
            for c in IMAGE_COLUMNS
        ],
        *[(c, pa.string()) for c in CAPTION_COLUMNS],
        ("psnr", pa.float64()),
        ("score", pa.float64()),
        # small PNGs of the layers of a bounded sample of rejected rows, for review (curation.core.rejects)
        ("thumbnails", pa.struct([(m, pa.binary()) for m in LAYER_MEMBERS])),
    ]
)

#: The work list the driver writes and ingest reads: one source unit (an image and its annotations) per row.
UNIT_SCHEMA = pa.schema([("source", pa.string()), ("unit_id", pa.string()), ("ref", pa.string())])

#: Columns kept in the per-shard parquet index (no pixels).
INDEX_COLUMNS = [f.name for f in ROW_SCHEMA if f.name not in IMAGE_COLUMNS] + ["shard"]

Row = dict[str, Any]
#: columns that hold JSON in the table and parsed dicts in a row
JSON_COLUMNS = ("ann", "meta")
#: the key under which :func:`reject` sets a rejected row's images aside until its stage's batch ends
SET_ASIDE = "_rejected_images"


def new_row(key: str, source: str, source_ref: str, **fields: Any) -> Row:
    """A fresh ``ok`` row with every schema column present (images are kept as given, not copied)."""
    row: Row = {f.name: None for f in ROW_SCHEMA}
    row.update(
        key=key,
        source=source,
        source_ref=source_ref,
        label="",
        status=OK,
        reject_stage="",
        reject_reason="",
        reject_detail="",
        ann={},
        meta={},
        psnr=float("nan"),
        score=float("nan"),
    )
    for c in CAPTION_COLUMNS:
        row[c] = ""
    for name, value in fields.items():
        if name in IMAGE_COLUMNS:
            set_image(row, name, value)
        else:
            row[name] = value
    return row


def reject(row: Row, stage: StageName, reason: Reason, detail: str = "") -> Row:
    """Mark a row rejected; later stages pass it through untouched. Its images leave the row, so blocks stay
    small; they are set aside (:data:`SET_ASIDE`) until the stage's batch ends, when a bounded sample of the
    rejects keeps thumbnails of them for review (:class:`curation.core.rejects.RejectSampler`)."""
    row.update(
        status=REJECTED,
        reject_stage=StageName(stage).value,
        reject_reason=Reason(reason).value,
        reject_detail=detail[:500],
    )
    aside = {c: row[c] for c in IMAGE_COLUMNS if row[c] is not None}
    if aside:
        row[SET_ASIDE] = aside
    for c in IMAGE_COLUMNS:
        row[c] = None
    return row


def is_ok(row: Row) -> bool:
    return row["status"] == OK


def get_image(row: Row, column: str) -> np.ndarray | None:
    """The image in ``column`` (read-only: rows may share it), or ``None``."""
    return row[column]


def require_image(row: Row, column: str) -> np.ndarray:
    """The image in ``column`` of a row whose stage has produced it: a missing one is a bug upstream, named here."""
    image = row[column]
    if image is None:
        raise ValueError(f"row {row['key']!r} has no {column!r} image")
    return image


def set_image(row: Row, column: str, array: np.ndarray | None) -> None:
    """Put ``array`` in ``column`` as a read-only view: rows that share a photo cannot change it for each other."""
    if array is not None:
        array = array.view()
        array.flags.writeable = False
    row[column] = array


def get_json(row: Row, column: str) -> dict[str, Any]:
    return row[column]


def update_meta(row: Row, stage: str | StageName, values: dict[str, Any]) -> None:
    """Record what ``stage`` measured/used under ``meta[stage]``."""
    row["meta"].setdefault(getattr(stage, "value", stage), {}).update(values)


# -- rows <-> Arrow: only where rows cross between actors ------------------------------------------------


def from_blob(blob: bytes | memoryview | np.ndarray | None) -> np.ndarray | None:
    """A ``.npy`` blob as an array that shares the blob's memory (read-only when the blob is)."""
    if blob is None or len(blob) == 0:
        return None
    raw = np.frombuffer(blob, np.uint8)
    shape, dtype, start = _parse_header(raw[:_HEADER_PEEK].tobytes())
    array = raw[start : start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize].view(dtype).reshape(shape)
    array.flags.writeable = False
    return array


_HEADER_PEEK = 256  # an image's .npy header (version 1: 10 bytes + a short dict, padded to 64) fits easily
_headers: dict[bytes, tuple[tuple[int, ...], np.dtype, int]] = {}
_packed: dict[tuple[tuple[int, ...], str], bytes] = {}


def _parse_header(head: bytes) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` blob from its first bytes (cached: images repeat shapes)."""
    major = head[6]
    size_end = 10 if major == 1 else 12
    length = size_end + int.from_bytes(head[8:size_end], "little")
    key = head[:length]
    if key not in _headers:
        fp = io.BytesIO(key)
        version = np.lib.format.read_magic(fp)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fp)
        if fortran:
            raise ValueError("Fortran-ordered .npy blobs are not produced here")
        _headers[key] = (shape, dtype, length)
    return _headers[key]


def _header(array: np.ndarray) -> bytes:
    """The ``.npy`` header np.save would write for a C-contiguous ``array`` (cached per shape and dtype)."""
    key = (array.shape, array.dtype.str)
    if key not in _packed:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
        _packed[key] = buf.getvalue()
    return _packed[key]


def image_identity(array: np.ndarray) -> tuple[Any, ...]:
    """Equal for two arrays that show the same memory the same way (the photo that instances share)."""
    return array.__array_interface__["data"][0], array.shape, array.strides, array.dtype.str


def _blobs(arrays: list[np.ndarray | None]) -> pa.LargeBinaryArray:
    """``.npy`` blobs of ``arrays`` in one Arrow buffer (one memcpy each); ``None`` becomes a null."""
    present = [(i, np.ascontiguousarray(a)) for i, a in enumerate(arrays) if a is not None]
    offsets = np.zeros(len(arrays) + 1, np.int64)
    for i, array in present:
        offsets[i + 1] = len(_header(array)) + array.nbytes
    np.cumsum(offsets, out=offsets)
    data = np.empty(int(offsets[-1]), np.uint8)
    for i, array in present:
        head = _header(array)
        data[offsets[i] : offsets[i] + len(head)] = np.frombuffer(head, np.uint8)
        data[offsets[i] + len(head) : offsets[i + 1]] = array.reshape(-1).view(np.uint8)
    valid = None if len(present) == len(arrays) else pa.array([a is not None for a in arrays]).buffers()[1]
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(arrays), [valid, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def photo_column(values: list[np.ndarray | None], name: str = PHOTO_COLUMN) -> pa.ChunkedArray:
    """A per-photo column (:data:`PER_PHOTO_COLUMNS`): one dictionary-encoded chunk per run of consecutive rows
    that show the same image (the instances of a unit come one after another), so each photo's image is packed
    once and travels with its rows. ``None`` (a rejected row) joins the current run as a null."""
    chunks: list[pa.DictionaryArray] = []
    run: list[np.ndarray | None] = []
    photo: np.ndarray | None = None

    def close() -> None:
        if run:
            blob = _blobs([] if photo is None else [photo])
            chunks.append(
                pa.DictionaryArray.from_arrays(pa.array([None if v is None else 0 for v in run], pa.int32()), blob)
            )

    for value in values:
        if value is not None and photo is not None and image_identity(value) != image_identity(photo):
            close()
            run, photo = [], None
        run.append(value)
        photo = value if value is not None else photo
    close()
    return pa.chunked_array(chunks, ROW_SCHEMA.field(name).type)


def image_values(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray | None]:
    """An image column as arrays that view the Arrow buffers (no copy); rows that share an entry share the array."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out: list[np.ndarray | None] = []
    for chunk in chunks:
        if pa.types.is_dictionary(chunk.type):
            entries = _blob_arrays(chunk.dictionary)
            out.extend(None if i is None else entries[i] for i in chunk.indices.to_pylist())
        else:
            out.extend(_blob_arrays(chunk))
    return out


def _blob_arrays(blobs: pa.Array) -> list[np.ndarray | None]:
    """Every blob of a (large_)binary array as an array over its data buffer."""
    if len(blobs) == 0:
        return []
    offset_type = np.int64 if pa.types.is_large_binary(blobs.type) else np.int32
    _, offsets_buf, data_buf = blobs.buffers()
    offsets = np.frombuffer(offsets_buf, offset_type)[blobs.offset : blobs.offset + len(blobs) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    valid = blobs.is_valid().to_numpy(zero_copy_only=False)
    return [from_blob(data[s:e]) if ok else None for s, e, ok in zip(offsets[:-1], offsets[1:], valid, strict=True)]


def rows_to_table(rows: list[Row]) -> pa.Table:
    """Rows as a :data:`ROW_SCHEMA` table: images packed (each distinct photo once), JSON dumped once."""
    columns = []
    for field in ROW_SCHEMA:
        values = [row.get(field.name) for row in rows]  # a row read from an older table may lack a column
        if field.name in PER_PHOTO_COLUMNS:
            columns.append(photo_column(values, field.name))
        elif field.name in IMAGE_COLUMNS:
            columns.append(_blobs(values))
        elif field.name in JSON_COLUMNS:
            columns.append(pa.array([json.dumps(v) for v in values], field.type))
        else:
            columns.append(pa.array(values, field.type))
    return pa.Table.from_arrays(columns, schema=ROW_SCHEMA)


def table_rows(table: pa.Table) -> list[Row]:
    """A table's rows as dicts (images as views of the table's buffers, JSON parsed once); any schema."""
    columns: dict[str, list[Any]] = {}
    for name in table.column_names:
        column = table.column(name)
        if name in IMAGE_COLUMNS:
            columns[name] = image_values(column)
        elif name in JSON_COLUMNS:
            columns[name] = [json.loads(v or "{}") for v in column.to_pylist()]
        else:
            columns[name] = column.to_pylist()
    if not columns:
        return []
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
