"""The DAG: sources → ingest → masks+layers → caption → curate → WebDataset shards, on Ray Data.

Streaming end to end: the driver writes a light work list of source units, Ray Data reads it and
pushes blocks through the stages' actor pools, and write tasks turn them into shards. With
``ray.fusion: auto`` consecutive CPU-only stages share one pool (:func:`plan_pools`), so their rows never
leave the actor between them; a GPU stage keeps a pool of its own. Before anything runs, the pools are
checked against what the cluster has (:func:`check_fit`): a pool that can never be placed fails at
start, naming its config key, instead of stalling the run.

While it runs, the stage actors and the sink record the pipeline's metrics (:mod:`curation.core.metrics`)
and report to the run's tally (:mod:`curation.progress`), which a :class:`Watcher` (the CLI's terminal)
sees every second; at the end the tally's per-stage figures go to run.json and the report is written.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from curation.core.config import ConfigError, Resources, RunConfig
from curation.core.errorbudget import budget_verdict, find_budget_error
from curation.core.schema import ROW_SCHEMA, UNIT_SCHEMA
from curation.core.stage import RowStage, Stage, chain_class, chain_resources, map_kwargs
from curation.finalize import finalize, merge_stats
from curation.layout import OutDir
from curation.lock import OutLock
from curation.progress import Poller, final_snapshot, start_tally
from curation.raycluster import (
    RAY_PROCESSES,
    cluster_address,
    describe_cluster,
    join,
    reap_leftovers,
    record_processes,
    start_local,
)
from curation.report import write_report
from curation.runinfo import end_run, record_progress, start_run
from curation.sink import ShardSink
from curation.watch import (
    METRICS_REPORT_INTERVAL_MS,
    RayInfo,
    RunStart,
    Watcher,
    loopback_only,
    ray_info,
    ray_output,
    settle_metrics,
)
from curation.worklist import write_units
from stages.caption import Caption
from stages.curate import Curate
from stages.dedupe import DedupeRegistry
from stages.ingest import Ingest
from stages.masks import MasksAndLayers

log = logging.getLogger(__name__)

#: the row stages after ingest, in the order the data flows
STAGES: tuple[type[RowStage], ...] = (MasksAndLayers, Caption, Curate)
#: every stage, in data order
DAG: tuple[type[Stage], ...] = (Ingest, *STAGES)
PROJECT_PACKAGES = ("curation", "stages", "curator_model")


@dataclass(frozen=True)
class Pool:
    """One actor pool of the DAG: the stages its actors run, one after another, and what each actor asks for."""

    stages: tuple[type[Stage], ...]
    resources: Resources

    @property
    def keys(self) -> str:
        """The config keys that set this pool (for error messages)."""
        return " / ".join(f"{s.name.value}.resources" for s in self.stages)


def plan_pools(cfg: RunConfig) -> list[Pool]:
    """The DAG's actor pools, in data order: with ``ray.fusion: auto``, each run of consecutive stages that
    ask for no GPU becomes one pool; otherwise (and for every GPU stage) one pool per stage."""
    groups: list[list[type[Stage]]] = []
    for stage in DAG:
        fuse = (
            cfg.ray.fusion == "auto"
            and groups
            and not stage.resources(cfg).num_gpus
            and not groups[-1][-1].resources(cfg).num_gpus
        )
        if fuse:
            groups[-1].append(stage)
        else:
            groups.append([stage])
    return [Pool(tuple(g), chain_resources(tuple(g), cfg)) for g in groups]


def check_fit(pools: list[Pool], total: dict[str, float], largest_node: dict[str, float]) -> None:
    """Raise :class:`ConfigError` when a pool can never start: one actor needs more than any node has, or
    the pools at their minimum size (plus one CPU for the read and write tasks) need more than the cluster."""
    for kind, attr in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
        for pool in pools:
            one = getattr(pool.resources, attr)
            if one > largest_node.get(kind, 0.0):
                raise ConfigError(
                    f"{pool.keys}: one actor asks for {attr} {one:g}, but the largest node of the "
                    f"cluster has {largest_node.get(kind, 0.0):g} {kind}"
                )
        tasks = 1.0 if kind == "CPU" else 0.0
        need = sum(p.resources.concurrency * getattr(p.resources, attr) for p in pools) + tasks
        if need > total.get(kind, 0.0) + 1e-9:
            asks = ", ".join(
                f"{p.keys}: {p.resources.concurrency} x {getattr(p.resources, attr):g}"
                for p in pools
                if getattr(p.resources, attr)
            )
            extra = " + 1 for the read and write tasks" if tasks else ""
            raise ConfigError(
                f"the actor pools need {need:g} {kind} at their minimum size ({asks}{extra}), but the "
                f"cluster has {total.get(kind, 0.0):g}; lower concurrency or {attr} there"
                + (", or raise ray.num_cpus" if kind == "CPU" else "")
            )


def cluster_capacity() -> tuple[dict[str, float], dict[str, float]]:
    """What the running Ray cluster has in all, and on its largest node (CPU and GPU)."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    total = {k: float(ray.cluster_resources().get(k, 0.0)) for k in ("CPU", "GPU")}
    return total, {k: max((float(n.get(k, 0.0)) for n in nodes), default=0.0) for k in ("CPU", "GPU")}


class RunFailed(RuntimeError):
    """The run ended, or was stopped, because its stage code failed (the error budget) or it accepted nothing;
    the message is one line naming the stage and the most common error. OUT stays resumable."""


@dataclass
class RunResult:
    out: Path
    segment: str
    stats: dict[str, Any]
    seconds: float
    progress: dict[str, Any] = field(default_factory=dict)  # the tally's final snapshot of this segment
    ray: RayInfo = field(default_factory=lambda: RayInfo(embedded=False))
    #: where the metrics endpoint still disagreed with the shards' stats at the end (empty: it agreed)
    metrics_left: list[str] = field(default_factory=list)
    #: why the run failed although it ran to the end (the error budget, nothing accepted); None: it succeeded
    failure: str | None = None


def init_ray(cfg: RunConfig, verbose: bool = True, processes: Path | None = None) -> RayInfo:
    """Join the cluster named by RAY_ADDRESS / ``ray.address``, or start a fresh embedded local Ray (never one
    found on the machine: :mod:`curation.raycluster`). Without ``verbose``, Ray's own log lines stay in its log
    files instead of the terminal. An embedded Ray's processes are listed in ``processes``, for the next run to
    end them if this driver is killed."""
    ray_output(verbose)
    if ray.is_initialized():
        return ray_info(embedded=False)
    address = cluster_address(cfg)
    if address:
        modules = [importlib.import_module(m) for m in PROJECT_PACKAGES]
        context = join(
            address,
            runtime_env={"py_modules": modules},
            log_to_driver=verbose,
            logging_level=logging.INFO if verbose else logging.ERROR,
        )
        return ray_info(embedded=False, context=context, cluster=describe_cluster(False, address))
    # Ray schedules by logical CPUs: give the local node enough for every pool plus the reads to start.
    num_cpus = cfg.ray.num_cpus or max(4, 2 * (os.cpu_count() or 1))
    # no idle workers started ahead of need (the raylet reads this from its environment): the pools, reads and
    # writes start the workers they use, and a prestarted one that nothing claims is a Python process importing
    # Ray on the cores the stages need
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
    if not cfg.ray.listen_all_interfaces:
        loopback_only()
    context = start_local(
        num_cpus=num_cpus,
        include_dashboard=cfg.ray.dashboard,
        log_to_driver=verbose,
        configure_logging=True,
        logging_level=logging.WARNING if verbose else logging.ERROR,
        _metrics_export_port=cfg.ray.metrics_export_port,
        _system_config={"metrics_report_interval_ms": METRICS_REPORT_INTERVAL_MS},
    )
    if processes is not None:
        record_processes(processes)
    return ray_info(embedded=True, context=context, cluster=describe_cluster(True, None))


def build_dataset(
    cfg: RunConfig, units_path: Path, n_units: int, done_keys: frozenset[str], out: OutDir, seg: str, tally: Any = None
) -> ray.data.Dataset:
    """The lazy Ray Data plan from the work list to the curated rows.

    ``done_keys`` and the digests in ``out``'s shards carry what earlier segments of a resumed run did, so
    each sample and each image is handled once across the whole output folder; ``tally`` is the run's
    progress actor.
    """
    # named: an operator can find it (@ray.remote made the class an ActorClass; Ray's typing keeps the class)
    registry = DedupeRegistry.options(name=f"dedupe:{out.root.resolve()}:{seg}")  # type: ignore[attr-defined]
    blocks = max(1, min(1000, -(-n_units // cfg.ingest.resources.batch_size)))
    # one read task at a time: units are light, and every extra reader is a worker process (memory, start-up)
    ds = ray.data.read_parquet(str(units_path), override_num_blocks=blocks, concurrency=1)
    options = {Ingest.name.value: {"done_keys": done_keys, "dedupe": registry.remote(out.claimed_digests)}}
    for pool in plan_pools(cfg):
        ds = ds.map_batches(
            chain_class(pool.stages),
            batch_format="pyarrow",
            fn_constructor_kwargs={"cfg": cfg, "options": options, "tally": tally},
            **map_kwargs(pool.resources),
        )
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


def out_dir(cfg: RunConfig) -> OutDir:
    """The run's output folder, refused at once when ``run.out`` names a file or lies below one."""
    out = OutDir(Path(cfg.run.out))
    if out.root.exists() and not out.root.is_dir():
        raise ConfigError(f"run.out: {out.root} is a file, not a folder")
    above = next((p for p in out.root.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise ConfigError(f"run.out: {out.root} lies below {above}, which is a file, not a folder")
    return out


def run(cfg: RunConfig, watcher: Watcher | None = None, verbose: bool = True) -> RunResult:
    """Run the pipeline into ``cfg.run.out``; a rerun into the same folder resumes. ``watcher`` follows it;
    without ``verbose`` Ray's own log lines stay out of the terminal."""
    started = time.perf_counter()
    check_dataflow(DAG)
    out = out_dir(cfg)
    try:
        out.create()
    except OSError as err:
        raise ConfigError(f"run.out: cannot create {err.filename or out.root}: {err.strerror or err}") from None
    with OutLock(out.root) as lock:  # before anything in OUT is touched: a second run stops here
        return _run_segment(cfg, out, started, lock.token, watcher, verbose)


def _run_segment(
    cfg: RunConfig, out: OutDir, started: float, owner: str, watcher: Watcher | None, verbose: bool
) -> RunResult:
    """One segment of a run into ``out``, whose lock the caller holds."""
    reaped = reap_leftovers(out.work / RAY_PROCESSES)  # what a killed run's embedded Ray left running
    if reaped:
        log.warning("ended %d processes of the embedded Ray of a killed run into %s", reaped, out.root)
    removed = out.remove_torn()
    done = out.done_keys()
    seg = out.next_segment()
    units_path = out.work / f"units-{seg}.parquet"
    n_units = write_units(cfg, units_path)  # before Ray starts: a missing source is a one-line error
    if not cluster_address(cfg):  # on a cluster the checkpoints live on the workers, not necessarily here
        for stage in STAGES:
            stage.preflight(cfg)
    info = init_ray(cfg, verbose, out.work / RAY_PROCESSES)
    pools = plan_pools(cfg)
    if cfg.ray.check_resources:
        check_fit(pools, *cluster_capacity())
    start_run(out.run_json, cfg, seg, len(done), removed)
    tally = start_tally([s.name.value for s in DAG], n_units)
    if watcher:
        watcher.started(RunStart(seg, n_units, pools, info))
    ctx = ray.data.DataContext.get_current()
    ctx.target_max_block_size = cfg.ray.target_block_mb * 1024 * 1024
    # the work list is one file the driver just wrote: Ray Data's v2 parquet reader would start actors to
    # read its footer, which cost more CPU at start-up than reading the whole list
    ctx.use_datasource_v2 = False
    ctx.execution_options.preserve_order = cfg.sink.deterministic
    if n_units:
        ds = build_dataset(cfg, units_path, n_units, done, out, seg, tally)
        try:
            with Poller(tally, watcher.progress) if watcher else nullcontext():
                ds.write_datasink(ShardSink(out.shards, seg, cfg.sink, owner, tally), concurrency=cfg.sink.concurrency)
        except Exception as exc:
            spent = find_budget_error(exc)
            if spent is None:
                raise
            ray.kill(tally)
            end_run(out.run_json, merge_stats(out), time.perf_counter() - started, f"stopped: {spent}")
            raise RunFailed(f"stopped: {spent}") from exc
    segment_stats = merge_stats(out, seg)
    progress = final_snapshot(tally, segment_stats["ingested"])
    ray.kill(tally)  # its worker process would outlive the run in a driver that runs again (tests, notebooks)
    stats = finalize(out)
    seconds = time.perf_counter() - started
    # judged over every segment of OUT: a resume that had nothing left to do must not turn a failed run into a
    # success (the rows its stage code failed on are recorded, so the resume does not retry them)
    failure = budget_verdict(
        out.index_rows(),
        [s.name.value for s in DAG],
        cfg.run.max_error_fraction,
        cfg.run.error_budget_min_rows,
        stats["accepted"],
    )
    record_progress(out.run_json, progress)
    end_run(out.run_json, stats, seconds, failure)
    write_report(out)
    return RunResult(
        out=out.root,
        segment=seg,
        stats=stats,
        seconds=seconds,
        progress=progress,
        ray=info,
        metrics_left=settle_metrics(info, segment_stats, STAGES[-1].name.value),
        failure=failure,
    )
