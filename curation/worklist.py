"""The work list: every source's units streamed into one parquet file that Ray Data reads.

Units are light (an image reference and its annotations, no pixels), so the driver lists even a huge
dataset in little memory (the unit ids of one source are kept, to reject a repeated one as
``key_collision``); row groups are sized for the ingest batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.core.config import ConfigError, RunConfig
from curation.core.reasons import Reason
from curation.core.schema import UNIT_SCHEMA
from curation.quota import quota_units
from stages.sources import build_source
from stages.sources.base import Unit, bad_unit


def _checked(units: Iterator[Unit], where: str) -> Iterator[Unit]:
    """A source's units; a source that cannot be listed (a missing folder, a bad manifest header) becomes a
    :class:`ConfigError` naming it: a user's mistake, found before Ray starts."""
    try:
        yield from units
    except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def unit_batches(cfg: RunConfig) -> Iterator[pa.Table]:
    """Every source's units (those its quota takes; up to ``run.limit`` in all) as tables of at most one ingest
    batch, source by source; a source that yields no unit at all is a :class:`ConfigError` (an empty run is a
    mistake, not a success)."""
    batch = cfg.ingest.resources.batch_size
    remaining = cfg.run.limit
    total = 0
    for i, src_cfg in enumerate(cfg.sources):
        source = build_source(src_cfg)
        units = _checked(quota_units(source, src_cfg, f"sources.{i}"), f"sources.{i} ({source.name})")
        units = units if remaining is None else islice(units, remaining - total)
        chunk: list[dict[str, str]] = []
        seen: set[str] = set()
        n = -1
        for n, unit in enumerate(units):
            if unit.unit_id in seen:  # its keys would be the earlier unit's: the second must not pass as it
                unit = bad_unit(
                    f"{unit.unit_id}~{n}",
                    f"unit id {unit.unit_id!r} repeats an earlier unit of "
                    f"source {source.name!r}, so their keys would collide",
                    unit.ref,
                    Reason.KEY_COLLISION,
                )
            seen.add(unit.unit_id)
            chunk.append({"source": source.name, "unit_id": unit.unit_id, "ref": json.dumps(unit.ref)})
            if len(chunk) == batch:
                total += len(chunk)
                yield pa.Table.from_pylist(chunk, schema=UNIT_SCHEMA)
                chunk = []
        if n < 0 and (remaining is None or total < remaining):
            raise ConfigError(
                f"sources.{i} ({source.name}): the source yields no unit at all (an empty folder "
                "or manifest?); nothing to curate"
            )
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
