"""Sink: accepted rows → WebDataset shard, every row → the shard's parquet index and stats.

A shard is complete only when its ``_stats.json`` exists: the tar and parquet are written under
temporary names, flushed, renamed into place, and the stats file (with the tar's size, member count and
SHA-256) is written last (:func:`curation.shard_check.commit_shard`). A crash at any point leaves either a
complete shard or files that the next run deletes as torn.

Tar headers are PAX (no length limit on a key) and fixed (mtime, owner): two runs on the same input write
the same bytes.

The tar is written with the standard library's ``tarfile`` in WebDataset's layout (``{key}.{member}``,
members of a sample adjacent): ``import webdataset`` pulls in torch, which would cost every write worker
about 2 CPU-seconds and 380 MB. Readers (``curate verify``, training) use ``webdataset``.
A shard written completely is counted in the run's metrics (:mod:`curation.core.metrics`).
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from ray.data import Datasink

from curation.atomicio import naming
from curation.core.config import SinkConfig
from curation.core.imageio import encode_png
from curation.core.metrics import record_shard
from curation.core.schema import (
    CAPTION_COLUMNS,
    INDEX_COLUMNS,
    JSON_COLUMNS,
    LAYER_MEMBERS,
    OK,
    ROW_SCHEMA,
    Row,
    get_image,
    get_json,
    image_identity,
    table_rows,
)
from curation.lock import holder_token
from curation.shard_check import TAR_FORMAT, commit_shard

DEFAULT_SINK = SinkConfig()  # frozen: one instance serves every call that gives none
INDEX_SCHEMA = pa.schema(
    [ROW_SCHEMA.field(c) for c in INDEX_COLUMNS if c != "shard"] + [pa.field("shard", pa.string())]
)


#: bumped when the fields of the ``{key}.json`` member change
SAMPLE_JSON_VERSION = 1


def _finite(value: float | None) -> float | None:
    """NaN and infinities are not JSON (strict parsers, Arrow's among them, refuse them): null instead."""
    return float(value) if value is not None and math.isfinite(value) else None


def sample_json(row: Row) -> dict[str, Any]:
    """The ``{key}.json`` member: one fixed schema for every source, so schema-inferring readers keep every field.

    Readers such as Hugging Face ``datasets`` and Ray infer one column type from the first samples: a field
    that differs by source would be dropped or retyped. So every top-level field has one type, whatever the
    source (ids are strings, the box is four floats), and what varies by source or backend travels as JSON
    text: ``annotation`` (the source's own fields) and ``meta`` (what each stage measured and used).
    Per-stage timings stay in the shard's index parquet (``meta.timings``): the sample's bytes depend
    only on its inputs, not on how busy the machine was.
    """
    ann = get_json(row, "ann")
    meta = {stage: values for stage, values in get_json(row, "meta").items() if stage != "timings"}
    bbox = ann.get("bbox")
    return {
        "version": SAMPLE_JSON_VERSION,
        "key": row["key"],
        "source": row["source"],
        "source_ref": row["source_ref"],
        "label": row["label"],
        "image_id": str(ann.get("image_id", "")),
        "instance_id": str(ann.get("instance_id", "")),
        "captions": {c.removeprefix("caption_"): row[c] or "" for c in CAPTION_COLUMNS},
        "recomposite_psnr": _finite(row["psnr"]),
        "curator_score": _finite(row["score"]),
        "bbox": None if bbox is None else [float(v) for v in bbox],
        "annotation": json.dumps(ann, sort_keys=True),
        "meta": json.dumps(meta, sort_keys=True),
    }


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """One member with fixed header fields (mtime 0, owner 0/0, no names): the bytes depend on the data only."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


class PngEncoder:
    """PNG for one member of the samples. An image that the previous call encoded is not encoded again: the
    instances of one photo arrive one after another and share its composite (only the last image is kept,
    so a shard's pixels are not held until it ends)."""

    def __init__(self, cfg: SinkConfig):
        self.cfg = cfg
        self.last: tuple[tuple, Any, bytes] | None = None  # (identity, the array kept alive, its PNG)

    def __call__(self, image: Any) -> bytes:
        key = image_identity(image)
        if self.last is None or self.last[0] != key:
            self.last = (key, image, encode_png(image, self.cfg.png_compression, self.cfg.png_filter))
        return self.last[2]


def write_shard(
    shards_dir: Path,
    name: str,
    rows: Iterable[Row],
    cfg: SinkConfig = DEFAULT_SINK,
    still_ours: Callable[[], bool] = lambda: True,
) -> dict[str, Any]:
    """Write one complete shard from a stream of rows; returns its stats (also written as ``_stats.json``).
    ``still_ours``: whether the run that wants this shard still holds the output folder (see ``commit_shard``)."""
    shards_dir.mkdir(parents=True, exist_ok=True)
    tar_tmp, index_tmp = shards_dir / f"{name}.tar.tmp", shards_dir / f"{name}.parquet.tmp"
    index: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    png = {member: PngEncoder(cfg) for member in LAYER_MEMBERS}
    members = 0
    with naming(tar_tmp), tarfile.open(tar_tmp, "w", format=TAR_FORMAT) as tar:
        for row in rows:
            sources[row["source"]] += 1
            if row["status"] == OK:
                for member in LAYER_MEMBERS:
                    _add_member(tar, f"{row['key']}.{member}.png", png[member](get_image(row, member)))
                _add_member(tar, f"{row['key']}.json", json.dumps(sample_json(row)).encode())
                members += len(LAYER_MEMBERS) + 1
            else:
                reasons[f"{row['reject_stage']}/{row['reject_reason']}"] += 1
            entry = {c: json.dumps(row[c]) if c in JSON_COLUMNS else row[c] for c in INDEX_COLUMNS if c != "shard"}
            entry["shard"] = name
            index.append(entry)
    if not index:  # e.g. a resumed run whose rows were all done before: no shard at all
        tar_tmp.unlink()
        return {"shard": None, "ingested": 0, "accepted": 0, "rejected": 0}
    with naming(index_tmp):
        pq.write_table(pa.Table.from_pylist(index, schema=INDEX_SCHEMA), index_tmp)
    accepted = sum(1 for e in index if e["status"] == OK)
    stats = {
        "shard": name,
        "ingested": len(index),
        "accepted": accepted,
        "rejected": len(index) - accepted,
        "by_reason": dict(sorted(reasons.items())),
        "by_source": dict(sorted(sources.items())),
        "tar_members": members,
    }
    return commit_shard(shards_dir, name, stats, still_ours)


def _rows(blocks: Iterable[Any]) -> Iterable[Row]:
    for block in blocks:
        table = block if isinstance(block, pa.Table) else pa.Table.from_pandas(block, preserve_index=False)
        yield from table_rows(table)


class ShardSink(Datasink):
    """Ray Data sink: each write task writes one shard named ``{seg}-{task index:06d}``; ``tally`` is the run's
    progress actor (optional)."""

    def __init__(self, shards_dir: Path, seg: str, cfg: SinkConfig, owner: str | None = None, tally: Any = None):
        self.shards_dir = Path(shards_dir)
        self.seg = seg
        self.cfg = cfg
        self.owner = owner  # the run's lock token (curation.lock): a write that outlives its run marks nothing
        self.tally = tally

    def _still_ours(self) -> bool:
        return self.owner is None or holder_token(self.shards_dir.parent) == self.owner

    @property
    def min_rows_per_write(self) -> int:
        return self.cfg.shard_size

    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
        stats = write_shard(
            self.shards_dir, f"{self.seg}-{ctx.task_idx:06d}", _rows(blocks), self.cfg, self._still_ours
        )
        record_shard(stats, self.tally)
        return stats

    def get_name(self) -> str:
        return "WebDatasetShards"
