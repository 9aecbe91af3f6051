"""The baseline: the same stage code, one process, one sample batch after another, no Ray.

A plain loop over Python rows: ``Ingest.run`` on each work-list batch of ``ingest.resources.batch_size``
units, each row stage's ``run`` on lists of its configured ``batch_size`` rows, ``write_shard`` on
``shard_size`` rows; nothing is converted to Arrow. The loop doubles as the per-stage isolation
measurement: one stage runs at a time, and its wall and CPU seconds (all threads of the process) are
summed per stage. What the pipeline spends beyond this is orchestration: Ray, Arrow where rows leave an
actor, and start-up.
The only thing left out is the cluster-wide duplicate registry (a Ray actor); its hash check costs
about a millisecond per image.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.core.config import RunConfig
from curation.core.inpaint import ExportedInpainter
from curation.core.schema import Row, table_rows
from curation.pipeline import STAGES
from curation.sink import write_shard
from curation.worklist import unit_batches
from stages.ingest import Ingest
from stages.masks import MasksAndLayers


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
    fill: StageTime = field(default_factory=StageTime)  # the background fill inside stage 2 (a part of masks)


class TimedFill:
    """Stage 2's inpainter, its calls timed: the part of stage 2 that a GPU fill would take off the CPU."""

    def __init__(self, inpainter: Any, timing: StageTime):
        self.inpainter, self.timing, self.name = inpainter, timing, inpainter.name

    def __call__(self, image: Any, region: Any) -> Any:
        return self.timing.timed(self.inpainter, image, region)


def run_sequential(cfg: RunConfig, shards_dir: Path) -> SequentialResult:
    """Push the workload through every stage and the sink in this process; return the timings."""
    started = time.perf_counter()
    ingest = Ingest(cfg)
    actors = [(s.name.value, s(cfg), s.resources(cfg).batch_size) for s in STAGES]
    res = SequentialResult(units=0, rows=0, accepted=0, wall=0.0, startup=time.perf_counter() - started)
    for _, actor, _ in actors:
        if isinstance(actor, MasksAndLayers) and not isinstance(actor.inpainter, ExportedInpainter):
            actor.inpainter = TimedFill(actor.inpainter, res.fill)  # a learned fill is timed with its stage only
    res.stages = {"ingest": StageTime(), **{name: StageTime() for name, _, _ in actors}, "sink": StageTime()}
    buffers: list[list[Row]] = [[] for _ in range(len(actors) + 1)]

    def write(rows: list[Row]) -> None:
        stats = res.stages["sink"].timed(write_shard, shards_dir, f"seq-{res.shards:06d}", rows, cfg.sink)
        res.stages["sink"].rows_in += len(rows)
        res.shard_bytes += stats["tar_bytes"]
        res.accepted += stats["accepted"]
        res.shards += 1

    def push(level: int, rows: list[Row], flush: bool = False) -> None:
        """Queue ``rows`` for stage ``level`` and run that stage on every full batch (all of it when flushing)."""
        queued = buffers[level] + rows
        size = actors[level][2] if level < len(actors) else cfg.sink.shard_size
        while len(queued) >= size or (flush and queued):
            batch, queued = queued[:size], queued[size:]
            if level == len(actors):
                write(batch)
            else:
                name, actor, _ = actors[level]
                res.stages[name].rows_in += len(batch)
                push(level + 1, res.stages[name].timed(actor.run, batch))
        buffers[level] = queued

    for units in unit_batches(cfg):
        res.units += units.num_rows
        rows = res.stages["ingest"].timed(ingest.run, table_rows(units))
        res.stages["ingest"].rows_in += units.num_rows
        res.rows += len(rows)
        push(0, rows)
    for level in range(len(actors) + 1):
        push(level, [], flush=True)
    res.wall = time.perf_counter() - started
    return res
