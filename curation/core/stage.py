"""What every stage shares: a class that Ray builds once per actor and calls with a batch of rows.

A stage names itself, declares the columns it reads and writes, and takes its resources from its own
section of the run config, so the DAG can be checked before anything runs. Row stages (masks, caption,
curate) fill in columns of ``ok`` rows; rejected rows pass through untouched, and an exception for one
row rejects that row (``stage_error``) instead of killing the batch.
"""
from __future__ import annotations

import logging
import time
import traceback
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import pyarrow as pa
from ray.data import ActorPoolStrategy

from curation.core.config import Resources, RunConfig
from curation.core.reasons import Reason, StageName
from curation.core.schema import Row, is_ok, reject, rows_to_table, update_meta

log = logging.getLogger(__name__)


class Stage(ABC):
    """One step of the DAG and the Ray callable that runs it; models load in ``__init__``."""

    name: ClassVar[StageName]
    #: the columns this stage reads from its input batch, and the row columns it fills in. Besides these a
    #: stage may set the bookkeeping columns (status, reject_*, meta) and empty a column it has consumed.
    reads: ClassVar[tuple[str, ...]]
    writes: ClassVar[tuple[str, ...]]

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    @classmethod
    def resources(cls, cfg: RunConfig) -> Resources:
        """The stage's resource declaration: ``resources`` in its own section of the run config."""
        return getattr(cfg, cls.name.value).resources

    @staticmethod
    def preflight(cfg: RunConfig) -> None:
        """Check on the driver, before Ray starts, what would otherwise fail in every actor (a missing
        checkpoint, say); raise with a clear message. Stages without such a dependency need nothing here."""

    @abstractmethod
    def __call__(self, batch: pa.Table) -> pa.Table:
        """One Ray Data batch in, the rows it becomes out (in :data:`curation.core.schema.ROW_SCHEMA`)."""


class RowStage(Stage):
    """A stage that works row by row on candidates (masks, caption, curate): one row in, the same row out."""

    @abstractmethod
    def process(self, rows: list[Row]) -> None:
        """Fill in this stage's columns on ``rows`` (all ``ok``) in place, or ``reject`` them."""

    def process_isolated(self, rows: list[Row]) -> None:
        """Run :meth:`process` on the batch; if it raises, retry row by row and reject only the culprits."""
        if not rows:
            return
        started = time.perf_counter()
        try:
            self.process(rows)
        except Exception:  # noqa: BLE001 - isolate the failing rows below
            log.warning("%s: batch failed, retrying row by row\n%s", self.name.value, traceback.format_exc())
            for row in rows:
                try:
                    self.process([row])
                except Exception as exc:  # noqa: BLE001 - a property of this row
                    reject(row, self.name, Reason.STAGE_ERROR, f"{type(exc).__name__}: {exc}")
        per_row = (time.perf_counter() - started) / len(rows)
        for row in rows:
            if is_ok(row):
                update_meta(row, "timings", {self.name.value: round(per_row, 5)})

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        self.process_isolated([r for r in rows if is_ok(r)])
        return rows_to_table(rows)


def map_kwargs(res: Resources) -> dict[str, Any]:
    """Ray Data ``map_batches`` arguments for a stage's resource declaration."""
    kwargs: dict[str, Any] = dict(batch_size=res.batch_size, num_cpus=res.num_cpus,
                                  compute=ActorPoolStrategy(size=res.concurrency))
    if res.num_gpus:
        kwargs["num_gpus"] = res.num_gpus
    return kwargs
