"""The baseline: the same stage code, one process, one sample batch after another, no Ray.

Each stage is called exactly as its Ray actor calls it (``Ingest`` on a pyarrow table of units,
each row stage on row tables of the stage's configured ``batch_size``, ``write_shard`` on
``shard_size`` rows), so the loop doubles as the per-stage isolation measurement: one stage runs at
a time, and its wall and CPU seconds (all threads of the process) are summed per stage.
The only thing left out is the cluster-wide duplicate registry (a Ray actor); its hash check costs
about a millisecond per image.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from curation.core.config import RunConfig
from curation.pipeline import STAGES
from curation.sink import write_shard
from curation.worklist import unit_batches
from stages.ingest import Ingest


@dataclass
class StageTime:
    """Seconds one stage spent, wall and CPU (every thread of the process), over all its calls."""

    wall: float = 0.0
    cpu: float = 0.0
    calls: int = 0
    rows_in: int = 0

    def timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        self.wall += time.perf_counter() - w
        self.cpu += time.process_time() - c
        self.calls += 1
        return out


@dataclass
class SequentialResult:
    units: int
    rows: int  # candidate rows out of ingest: the pipeline's "samples"
    accepted: int
    wall: float  # the whole loop, construction of the stages included
    startup: float  # constructing the stages (loading their models)
    stages: dict[str, StageTime] = field(default_factory=dict)
    shard_bytes: int = 0
    shards: int = 0


def run_sequential(cfg: RunConfig, shards_dir: Path) -> SequentialResult:
    """Push the workload through every stage and the sink in this process; return the timings."""
    started = time.perf_counter()
    ingest = Ingest(cfg)
    actors = [(s.name.value, s(cfg), s.resources(cfg).batch_size) for s in STAGES]
    res = SequentialResult(units=0, rows=0, accepted=0, wall=0.0, startup=time.perf_counter() - started)
    res.stages = {"ingest": StageTime(), **{name: StageTime() for name, _, _ in actors}, "sink": StageTime()}
    buffers: list[list[pa.Table]] = [[] for _ in range(len(actors) + 1)]

    def write(rows: list[dict[str, Any]]) -> None:
        stats = res.stages["sink"].timed(write_shard, shards_dir, f"seq-{res.shards:06d}", rows, cfg.sink.png_compression)
        res.stages["sink"].rows_in += len(rows)
        res.shard_bytes += stats["tar_bytes"]
        res.accepted += stats["accepted"]
        res.shards += 1

    def push(level: int, table: pa.Table | None, flush: bool = False) -> None:
        """Queue ``table`` for stage ``level`` and run that stage on every full batch (all of it when flushing)."""
        if table is not None and table.num_rows:
            buffers[level].append(table)
        queued = pa.concat_tables(buffers[level]) if buffers[level] else None
        size = actors[level][2] if level < len(actors) else cfg.sink.shard_size
        while queued is not None and (queued.num_rows >= size or (flush and queued.num_rows)):
            batch, queued = queued.slice(0, size), queued.slice(size)
            if level == len(actors):
                write(batch.to_pylist())
            else:
                name, actor, _ = actors[level]
                res.stages[name].rows_in += batch.num_rows
                push(level + 1, res.stages[name].timed(actor, batch))
        buffers[level] = [queued] if queued is not None and queued.num_rows else []

    for units in unit_batches(cfg):
        res.units += units.num_rows
        rows = res.stages["ingest"].timed(ingest, units)
        res.stages["ingest"].rows_in += units.num_rows
        res.rows += rows.num_rows
        push(0, rows)
    for level in range(len(actors) + 1):
        push(level, None, flush=True)
    res.wall = time.perf_counter() - started
    return res


