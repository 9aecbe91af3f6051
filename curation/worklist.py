"""The work list: every source's units streamed into one parquet file that Ray Data reads.

Units are light (an image reference and its annotations, no pixels), so the driver lists even a huge
dataset in constant memory; row groups are sized for the ingest batch.
"""
from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from curation.core.config import RunConfig
from curation.core.schema import UNIT_SCHEMA
from stages.sources import build_source


def unit_batches(cfg: RunConfig) -> Iterator[pa.Table]:
    """Every source's units (up to ``run.limit``) as tables of at most one ingest batch, source by source."""
    batch = cfg.ingest.resources.batch_size
    remaining = cfg.run.limit
    total = 0
    for src_cfg in cfg.sources:
        source = build_source(src_cfg)
        units = source.units() if remaining is None else islice(source.units(), remaining - total)
        chunk: list[dict[str, str]] = []
        for unit in units:
            chunk.append({"source": source.name, "unit_id": unit.unit_id, "ref": json.dumps(unit.ref)})
            if len(chunk) == batch:
                total += len(chunk)
                yield pa.Table.from_pylist(chunk, schema=UNIT_SCHEMA)
                chunk = []
        if chunk:
            total += len(chunk)
            yield pa.Table.from_pylist(chunk, schema=UNIT_SCHEMA)
        if remaining is not None and total >= remaining:
            break


def write_units(cfg: RunConfig, path: Path) -> int:
    """Stream the work list into a parquet file, one row group per ingest batch; returns the unit count."""
    total = 0
    with pq.ParquetWriter(path, UNIT_SCHEMA) as writer:
        for table in unit_batches(cfg):
            writer.write_table(table, row_group_size=cfg.ingest.resources.batch_size)
            total += table.num_rows
    return total
