"""What every stage shares: a class that Ray builds once per actor and calls with a batch of rows.

A stage names itself, declares the columns it reads and writes, and takes its resources from its own
section of the run config, so the DAG can be checked before anything runs. Its work is :meth:`Stage.run`:
rows in, rows out, as plain dicts (see :mod:`curation.core.schema`). Row stages (masks, caption, curate)
fill in columns of ``ok`` rows; rejected rows pass through untouched, and an exception for one row
rejects that row (``stage_error``) instead of killing the batch.

Consecutive stages can share one actor (:class:`StageChain`): rows then pass from stage to stage as the
same Python objects, and become an Arrow table only where they leave the actor. The chain measures each
stage's batches on its own (:mod:`curation.core.metrics`) and keeps thumbnails of a sample of each stage's
rejects (:mod:`curation.core.rejects`), so a fused actor reports like separate ones. It also keeps each
stage's error budget (:mod:`curation.core.errorbudget`): stage code that raises on too many rows stops the run.
"""

from __future__ import annotations

import copy
import logging
import time
import traceback
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import pyarrow as pa
from ray.data import ActorPoolStrategy

from curation.core.config import Resources, RunConfig
from curation.core.errorbudget import ErrorBudget
from curation.core.metrics import BatchOutcome, record_batch
from curation.core.reasons import Reason, StageName
from curation.core.rejects import RejectSampler
from curation.core.schema import Row, is_ok, reject, rows_to_table, table_rows, update_meta

log = logging.getLogger(__name__)


class Stage(ABC):
    """One step of the DAG; models load in ``__init__``. Called with an Arrow batch, it is a Ray callable."""

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

    @staticmethod  # noqa: B027 - an optional hook: most stages have nothing to check
    def preflight(cfg: RunConfig) -> None:
        """Check on the driver, before Ray starts, what would otherwise fail in every actor (a missing
        checkpoint, say); raise with a clear message. Stages without such a dependency need nothing here."""

    @abstractmethod
    def run(self, rows: list[Row]) -> list[Row]:
        """The rows this batch becomes (row stages change them in place and return them)."""

    def inputs(self, rows: list[Row]) -> int:
        """How many inputs of this batch the stage works on (ingest: every source unit)."""
        return len(rows)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """One Ray Data batch in, the rows it becomes out (in :data:`curation.core.schema.ROW_SCHEMA`)."""
        return rows_to_table(self.run(table_rows(batch)))


def _snapshot(row: Row) -> Row:
    """A copy that a stage's changes to ``row`` cannot reach: images are read-only and replaced, never written
    into, so they are shared; the parsed JSON columns (``ann``, ``meta``) are changed in place, so they are copied."""
    return {k: copy.deepcopy(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}


class RowStage(Stage):
    """A stage that works row by row on candidates (masks, caption, curate): one row in, the same row out."""

    @abstractmethod
    def process(self, rows: list[Row]) -> None:
        """Fill in this stage's columns on ``rows`` (all ``ok``) in place, or ``reject`` them."""

    def process_isolated(self, rows: list[Row]) -> None:
        """Run :meth:`process` on the batch; if it raises, retry row by row and reject only the culprits.

        Each retry starts from the row as it was before the batch: the failed attempt may already have
        consumed a row's inputs (a stage empties what it has used) or half filled in its outputs.
        """
        if not rows:
            return
        started = time.perf_counter()
        before = [_snapshot(row) for row in rows]
        try:
            self.process(rows)
        except Exception:  # noqa: BLE001 - isolate the failing rows below
            log.warning("%s: batch failed, retrying row by row\n%s", self.name.value, traceback.format_exc())
            for row, fresh in zip(rows, before, strict=True):
                row.clear()
                row.update(fresh)
                try:
                    self.process([row])
                except Exception as exc:  # noqa: BLE001 - a property of this row
                    reject(row, self.name, Reason.STAGE_ERROR, f"{type(exc).__name__}: {exc}")
        per_row = (time.perf_counter() - started) / len(rows)
        for row in rows:
            if is_ok(row):
                update_meta(row, "timings", {self.name.value: round(per_row, 5)})

    def run(self, rows: list[Row]) -> list[Row]:
        self.process_isolated([r for r in rows if is_ok(r)])
        return rows

    def inputs(self, rows: list[Row]) -> int:
        """The live rows: those an earlier stage rejected pass through untouched."""
        return sum(1 for r in rows if is_ok(r))


class StageChain:
    """Consecutive stages in one actor: the batch is converted from Arrow once on the way in and once on the
    way out, and each stage in between gets the previous one's rows in chunks of its own ``batch_size``.

    ``options`` are extra constructor arguments by stage name (ingest's resume keys and dedupe registry);
    ``tally`` is the run's progress actor, which the metrics and the reject sample report to (optional).
    Build it with :func:`chain_class`, which names it after its stages (the name Ray Data shows).
    """

    stages: ClassVar[tuple[type[Stage], ...]]

    def __init__(self, cfg: RunConfig, options: dict[str, dict[str, Any]] | None = None, tally: Any = None):
        self.steps = [
            (s(cfg, **(options or {}).get(s.name.value, {})), s.resources(cfg).batch_size) for s in self.stages
        ]
        self.samplers = [
            RejectSampler(s.name.value, cfg.report.rejects_per_reason, cfg.report.thumbnail_px, tally)
            for s in self.stages
        ]
        self.budgets = [
            ErrorBudget(s.name.value, cfg.run.max_error_fraction, cfg.run.error_budget_min_rows) for s in self.stages
        ]
        self.tally = tally

    def run(self, rows: list[Row]) -> list[Row]:
        for i, ((stage, batch_size), sampler, budget) in enumerate(
            zip(self.steps, self.samplers, self.budgets, strict=True)
        ):
            if i == 0:  # the chain's input batch is already the first stage's batch
                rows = self._measured(stage, sampler, budget, rows)
            else:
                rows = [
                    r
                    for start in range(0, len(rows), batch_size)
                    for r in self._measured(stage, sampler, budget, rows[start : start + batch_size])
                ]
        return rows

    def _measured(self, stage: Stage, sampler: RejectSampler, budget: ErrorBudget, rows: list[Row]) -> list[Row]:
        """``stage.run(rows)``, recorded as one batch of that stage; its rejects keep thumbnails while places last.
        Raises :class:`~curation.core.errorbudget.ErrorBudgetExceeded` once the stage's code has failed on too
        many of this actor's rows (after recording the batch, so the metrics show what happened)."""
        inputs = stage.inputs(rows)
        if not inputs:  # nothing for this stage: every row was rejected upstream
            return rows
        started, clock = time.time(), time.perf_counter()
        rows = stage.run(rows)
        seconds = time.perf_counter() - clock
        sampler(rows)
        record_batch(
            BatchOutcome.of(stage.name.value, inputs, rows, started, seconds, scored="score" in stage.writes),
            self.tally,
        )
        budget.add(inputs, rows)
        return rows

    def __call__(self, batch: pa.Table) -> pa.Table:
        return rows_to_table(self.run(table_rows(batch)))


def chain_class(stages: tuple[type[Stage], ...]) -> type[StageChain]:
    """A :class:`StageChain` subclass for ``stages``, named after them as rows record them (``masks``, or
    ``ingest+masks+caption+curate`` for a fused pool): Ray shows ``MapBatches(masks)`` in its progress, in
    the dashboard, and in ``ps`` as the actor's process title ``ray::MapWorker(MapBatches(masks))``."""
    return type("+".join(s.name.value for s in stages), (StageChain,), {"stages": tuple(stages)})


def chain_resources(stages: tuple[type[Stage], ...], cfg: RunConfig) -> Resources:
    """What one actor running ``stages`` asks for: the most any of them asks (they run one after another),
    the first stage's batch size (the chain's input), and the largest pool any of them declares."""
    res = [s.resources(cfg) for s in stages]
    return Resources(
        num_cpus=max(r.num_cpus for r in res),
        num_gpus=max(r.num_gpus for r in res),
        batch_size=res[0].batch_size,
        concurrency=max(r.concurrency for r in res),
        max_concurrency=max(r.max_concurrency or r.concurrency for r in res),
    )


def map_kwargs(res: Resources) -> dict[str, Any]:
    """Ray Data ``map_batches`` arguments for a resource declaration (a fixed or an autoscaling pool)."""
    pool = (
        ActorPoolStrategy(size=res.concurrency)
        if res.max_concurrency in (None, res.concurrency)
        else ActorPoolStrategy(min_size=res.concurrency, max_size=res.max_concurrency)
    )
    kwargs: dict[str, Any] = dict(batch_size=res.batch_size, num_cpus=res.num_cpus, compute=pool)
    if res.num_gpus:
        kwargs["num_gpus"] = res.num_gpus
    return kwargs
