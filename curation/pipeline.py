"""The DAG: sources → ingest → masks+layers → caption → curate → WebDataset shards, on Ray Data.

Streaming end to end: the driver writes a light work list of source units, Ray Data reads it and
pushes blocks through one actor pool per model stage, and write tasks turn them into shards.
"""
from __future__ import annotations

import importlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from curation.core.config import RunConfig
from curation.core.schema import ROW_SCHEMA, UNIT_SCHEMA
from curation.core.stage import RowStage, Stage, map_kwargs
from curation.finalize import finalize
from curation.layout import OutDir
from curation.runinfo import end_run, start_run
from curation.sink import ShardSink
from curation.worklist import write_units
from stages.caption import Caption
from stages.curate import Curate
from stages.ingest import DedupeRegistry, Ingest, claimed_digests
from stages.masks import MasksAndLayers

log = logging.getLogger(__name__)

#: the row stages after ingest, in the order the data flows
STAGES: tuple[type[RowStage], ...] = (MasksAndLayers, Caption, Curate)
PROJECT_PACKAGES = ("curation", "stages", "curator_model")


@dataclass
class RunResult:
    out: Path
    segment: str
    stats: dict[str, Any]
    seconds: float


def init_ray(cfg: RunConfig) -> None:
    """Join the cluster named by RAY_ADDRESS / ``ray.address``, or start an embedded local Ray."""
    if ray.is_initialized():
        return
    address = cfg.ray_address()
    if address:
        modules = [importlib.import_module(m) for m in PROJECT_PACKAGES]
        ray.init(address=address, runtime_env={"py_modules": modules}, log_to_driver=True)
        return
    # Ray schedules by logical CPUs: give the local node enough for every pool plus the reads to start.
    num_cpus = cfg.ray.num_cpus or max(4, 2 * (os.cpu_count() or 1))
    ray.init(num_cpus=num_cpus, include_dashboard=cfg.ray.dashboard, log_to_driver=True,
             configure_logging=True, logging_level=logging.WARNING)


def build_dataset(cfg: RunConfig, units_path: Path, n_units: int, done_keys: frozenset[str],
                  claimed: dict[str, str]) -> ray.data.Dataset:
    """The lazy Ray Data plan from the work list to the curated rows.

    ``done_keys`` and ``claimed`` (image digests already ingested) carry what earlier segments of a
    resumed run did, so each sample and each image is handled once across the whole output folder.
    """
    blocks = max(1, min(1000, -(-n_units // cfg.ingest.resources.batch_size)))
    ds = ray.data.read_parquet(str(units_path), override_num_blocks=blocks)
    ds = ds.map_batches(
        Ingest, batch_format="pyarrow",
        fn_constructor_kwargs={"cfg": cfg, "done_keys": done_keys, "dedupe": DedupeRegistry.remote(claimed)},
        **map_kwargs(Ingest.resources(cfg)),
    )
    for stage in STAGES:
        ds = ds.map_batches(stage, batch_format="pyarrow", fn_constructor_args=(cfg,), **map_kwargs(stage.resources(cfg)))
    return ds


def check_dataflow(stages: tuple[type[Stage], ...]) -> None:
    """Every column a stage reads must exist by then: in the work list for the first, else written upstream."""
    available = set(UNIT_SCHEMA.names)
    for i, stage in enumerate(stages):
        missing = [c for c in stage.reads if c not in available]
        if missing:
            raise RuntimeError(f"stage {stage.name.value} reads {missing}, which no earlier stage writes")
        unknown = [c for c in stage.writes if c not in ROW_SCHEMA.names]
        if unknown:
            raise RuntimeError(f"stage {stage.name.value} writes {unknown}, which are not row columns")
        available = (set() if i == 0 else available) | set(stage.writes)  # ingest turns units into rows


def run(cfg: RunConfig) -> RunResult:
    """Run the pipeline into ``cfg.run.out``; a rerun into the same folder resumes."""
    started = time.perf_counter()
    check_dataflow((Ingest, *STAGES))
    out = OutDir(Path(cfg.run.out))
    out.create()
    removed = out.remove_torn()
    done = out.done_keys()
    seg = out.next_segment()
    if not cfg.ray_address():  # on a cluster the checkpoints live on the workers, not necessarily here
        for stage in STAGES:
            stage.preflight(cfg)
    start_run(out.run_json, cfg, seg, len(done), removed)
    units_path = out.work / f"units-{seg}.parquet"
    n_units = write_units(cfg, units_path)
    init_ray(cfg)
    ray.data.DataContext.get_current().target_max_block_size = cfg.ray.target_block_mb * 1024 * 1024
    if n_units:
        claimed = claimed_digests([str(out.shards / f"{n}.parquet") for n in out.complete_shards()])
        ds = build_dataset(cfg, units_path, n_units, done, claimed)
        ds.write_datasink(ShardSink(out.shards, seg, cfg.sink))
    stats = finalize(out)
    seconds = time.perf_counter() - started
    end_run(out.run_json, stats, seconds)
    return RunResult(out=out.root, segment=seg, stats=stats, seconds=seconds)
