"""What every model stage shares: a class loaded once per Ray actor that processes the ``ok`` rows of a batch.

Rejected rows pass through untouched; an exception for one row rejects that row (``stage_error``)
instead of killing the batch, so a single bad sample never costs the run.
"""
from __future__ import annotations

import logging
import time
import traceback
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import pyarrow as pa
from ray.data import ActorPoolStrategy

from curation.config import Resources, RunConfig
from curation.schema import Reason, Row, is_ok, reject, rows_to_table, update_meta

log = logging.getLogger(__name__)


class Stage(ABC):
    """One step of the DAG. Subclasses load their model in ``__init__`` and implement :meth:`process`."""

    name: ClassVar[str]

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    @staticmethod
    @abstractmethod
    def resources(cfg: RunConfig) -> Resources:
        """The stage's resource declaration, read from its section of the run config."""

    @staticmethod
    def preflight(cfg: RunConfig) -> None:
        """Check on the driver, before Ray starts, what would otherwise fail in every actor (a missing
        checkpoint, say); raise with a clear message. Stages without such a dependency need nothing here."""

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
            log.warning("%s: batch failed, retrying row by row\n%s", self.name, traceback.format_exc())
            for row in rows:
                try:
                    self.process([row])
                except Exception as exc:  # noqa: BLE001 - a property of this row
                    reject(row, self.name, Reason.STAGE_ERROR, f"{type(exc).__name__}: {exc}")
        per_row = (time.perf_counter() - started) / len(rows)
        for row in rows:
            if is_ok(row):
                update_meta(row, "timings", {self.name: round(per_row, 5)})


class StageActor:
    """The Ray-facing callable: pyarrow batch in, pyarrow batch out, with the stage built once per actor."""

    def __init__(self, stage_cls: type[Stage], cfg_json: str):
        self.stage = stage_cls(RunConfig.model_validate_json(cfg_json))

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        self.stage.process_isolated([r for r in rows if is_ok(r)])
        return rows_to_table(rows)


def map_kwargs(res: Resources) -> dict[str, Any]:
    """Ray Data ``map_batches`` arguments for a stage's resource declaration."""
    kwargs: dict[str, Any] = dict(batch_size=res.batch_size, num_cpus=res.num_cpus,
                                  compute=ActorPoolStrategy(size=res.concurrency))
    if res.num_gpus:
        kwargs["num_gpus"] = res.num_gpus
    return kwargs
