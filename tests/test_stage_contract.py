"""Stages keep their declared contract, and every backend registry agrees with the config it serves."""

from __future__ import annotations

import copy
import math
import typing

import numpy as np
import pytest

from curation.core.config import CaptionConfig, MasksConfig, RunConfig, SourceConfig
from curation.core.config.masks import DetectorOptions, InpaintOptions
from curation.core.config.sources import FolderSourceConfig
from curation.core.inpaint import INPAINTERS
from curation.core.schema import IMAGE_COLUMNS, OK, table_rows
from curation.pipeline import STAGES, check_dataflow
from curation.worklist import unit_batches
from stages.captioners import CAPTIONERS
from stages.ingest import Ingest
from stages.segmenters import SEGMENTERS
from stages.segmenters.proposals import PROPOSERS
from stages.shadows import DETECTORS
from stages.sources import SOURCES
from tests.conftest import small_config

#: columns any stage may set: whether and why a row was rejected, and what the stage measured
BOOKKEEPING = {"status", "reject_stage", "reject_reason", "reject_detail", "meta"}


def _choices(annotation) -> set[str]:
    return set(typing.get_args(annotation))


@pytest.mark.parametrize(
    "registry, names",
    [
        (
            SOURCES,
            {
                t
                for cls in typing.get_args(typing.get_args(SourceConfig)[0])
                for t in _choices(cls.model_fields["type"].annotation)
            },
        ),
        (SEGMENTERS, _choices(MasksConfig.model_fields["segmenter"].annotation)),
        (CAPTIONERS, _choices(CaptionConfig.model_fields["backend"].annotation)),
        (INPAINTERS, _choices(InpaintOptions.model_fields["backend"].annotation)),
        (DETECTORS, _choices(DetectorOptions.model_fields["backend"].annotation)),
        (PROPOSERS, _choices(FolderSourceConfig.model_fields["proposal_backend"].annotation)),
    ],
    ids=lambda v: getattr(v, "key", ""),
)
def test_every_config_choice_has_a_backend_and_every_backend_imports(registry, names):
    assert set(registry.names()) == names
    for name in registry.names():
        assert callable(registry.get(name))
    with pytest.raises(ValueError, match=registry.key.replace("[", r"\[").replace("]", r"\]")):
        registry.get("no-such-backend")


def test_the_dag_reads_only_what_upstream_writes():
    check_dataflow((Ingest, *STAGES))
    with pytest.raises(RuntimeError, match="reads"):
        check_dataflow(STAGES)  # the row stages alone: nothing wrote the images they read


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is b or (a is not None and b is not None and np.array_equal(a, b))
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _changed(before: dict, after: dict) -> set[str]:
    return {c for c in before if not _same(before[c], after[c])}


def test_each_stage_changes_only_the_columns_it_declares(tmp_path):
    cfg: RunConfig = small_config(tmp_path, curate={"backend": "physical"})
    ingest = Ingest(cfg)
    rows = [r for batch in unit_batches(cfg) for r in ingest.run(table_rows(batch))]
    assert set(rows[0]) >= set(Ingest.writes)
    for stage_cls in STAGES:
        stage = stage_cls(cfg)
        live = [dict(r) for r in rows if r["status"] == OK]
        before = [copy.deepcopy(r) for r in live]  # meta and ann are dicts a stage updates in place
        stage.process_isolated(live)
        for old, new in zip(before, live, strict=True):
            undeclared = _changed(old, new) - set(stage.writes) - BOOKKEEPING
            if new["status"] == OK:  # a stage may empty what it consumed
                undeclared -= {c for c in stage.reads if new[c] is None or (isinstance(new[c], str) and not new[c])}
            else:  # a rejected row drops its pixels
                undeclared -= set(IMAGE_COLUMNS)
            assert not undeclared, f"{stage.name} changed {undeclared}"
        assert any(_changed(o, n) & set(stage.writes) for o, n in zip(before, live, strict=True)), stage.name
        rows = live
