"""The pipeline's own metrics, recorded where the work happens: in the stage actors (per stage, also when
stages share an actor) and in the sink's write tasks.

Ray exports them from every worker to its node's metrics agent, which serves them to Prometheus with
Ray's ``ray_`` prefix (``ray_curation_rows_total``), one series per worker: sum over ``WorkerId`` for the
run's totals. Only counters and histograms: a rate of them (rows per second, per busy second) outlives the
actors that recorded them, where a gauge would vanish with its actor. ``status`` is ``ok`` or ``rejected``, as
in index.parquet. A finished worker's counters stay on the agent, so at the end of a run the sums equal
``stats.json`` (each worker flushes when it exits, or every ``metrics_report_interval_ms``).

A batch also goes to the run's progress tally (an actor the driver reads for its progress lines and
run.json), when the pipeline passes one; the tally is any object with the methods called here.
"""

from __future__ import annotations

import math
import time
from collections import Counter as Tally
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ray.util import metrics

from curation.core.schema import OK, Row

ROWS = "curation_rows_total"
BATCH_SECONDS = "curation_stage_batch_seconds"
CURATOR_SCORE = "curation_curator_score"
SHARDS = "curation_shards_written_total"
BYTES = "curation_bytes_written_total"
#: every metric the pipeline records
NAMES = (ROWS, BATCH_SECONDS, CURATOR_SCORE, SHARDS, BYTES)
#: the prefix Ray's exporter puts before each name
EXPORT_PREFIX = "ray_"

#: a batch takes from milliseconds (caption offline) to minutes (a VLM on a large batch)
BATCH_BOUNDARIES = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0]
SCORE_BOUNDARIES = [round(0.05 * i, 2) for i in range(1, 20)]


@cache
def _registry() -> dict[str, Any]:
    """The metric objects, built once per process (a worker registers each with Ray's exporter once)."""
    return {
        ROWS: metrics.Counter(
            ROWS,
            "rows a stage finished: ok (passed on) or rejected, with the reason",
            tag_keys=("stage", "status", "reason"),
        ),
        BATCH_SECONDS: metrics.Histogram(
            BATCH_SECONDS, "seconds a stage spent on one batch", boundaries=BATCH_BOUNDARIES, tag_keys=("stage",)
        ),
        CURATOR_SCORE: metrics.Histogram(
            CURATOR_SCORE,
            "the curator's score of each row it scored",
            boundaries=SCORE_BOUNDARIES,
            tag_keys=("status",),
        ),
        SHARDS: metrics.Counter(SHARDS, "complete shards written"),
        BYTES: metrics.Counter(BYTES, "bytes of the written shards' tars"),
    }


@dataclass
class BatchOutcome:
    """What one stage did with one batch: its inputs (units for ingest, live rows for the others), the rows it
    passed on and those it rejected by reason, and when it ran (wall clock)."""

    stage: str
    inputs: int
    accepted: int = 0
    rejected: Tally[str] = field(default_factory=Tally)
    scores: list[tuple[float, str]] = field(default_factory=list)
    started: float = 0.0
    seconds: float = 0.0

    @classmethod
    def of(cls, stage: str, inputs: int, rows: list[Row], started: float, seconds: float, scored: bool) -> BatchOutcome:
        """The outcome from the rows the stage returned: those still ``ok`` and those it rejected itself
        (rows an earlier stage rejected passed through untouched and are not its work)."""
        out = cls(stage, inputs, started=started, seconds=seconds)
        for row in rows:
            if row["status"] == OK:
                out.accepted += 1
            elif row["reject_stage"] == stage:
                out.rejected[row["reject_reason"]] += 1
            else:
                continue
            if scored and row["score"] is not None and math.isfinite(row["score"]):
                out.scores.append((float(row["score"]), row["status"]))
        return out


def record_batch(outcome: BatchOutcome, tally: Any = None) -> None:
    """Record one stage batch in Ray's metrics (and the run's tally, fire and forget)."""
    m = _registry()
    stage = {"stage": outcome.stage}
    if outcome.accepted:
        m[ROWS].inc(outcome.accepted, tags={**stage, "status": OK, "reason": ""})
    for reason, n in outcome.rejected.items():
        m[ROWS].inc(n, tags={**stage, "status": "rejected", "reason": reason})
    m[BATCH_SECONDS].observe(outcome.seconds, tags=stage)
    for score, status in outcome.scores:
        m[CURATOR_SCORE].observe(score, tags={"status": status})
    if tally is not None:
        tally.add_batch.remote(
            outcome.stage, outcome.inputs, outcome.accepted, dict(outcome.rejected), outcome.started, outcome.seconds
        )


def record_shard(stats: dict[str, Any], tally: Any = None) -> None:
    """Record a shard the sink has just written completely (``stats`` as its ``_stats.json`` says)."""
    if not stats.get("shard"):
        return
    m = _registry()
    m[SHARDS].inc(1)
    m[BYTES].inc(stats["tar_bytes"])
    if tally is not None:
        tally.add_shard.remote(stats["accepted"], stats["ingested"], stats["tar_bytes"], time.time())
