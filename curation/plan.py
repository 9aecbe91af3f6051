"""``curate plan CONFIG``: what a run would do, where, and whether it fits, without running it.

It lists the work (source units per source, keys an earlier run into the same folder already did), the
actor pools as the run would make them (stages fused per ``ray.fusion``, what each actor asks for, its
batch size), the cluster's capacity and the same fit check the run makes at start. The capacity of an
embedded local Ray is computed as the run would size it (no Ray started); with ``ray.address`` /
``RAY_ADDRESS`` the plan joins the cluster only to read its resources.

A plan is a list of :class:`Section` (a title and its lines), so other figures (per-source quotas, say)
add a section without touching the rest.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from curation.core.config import ConfigError, RunConfig, load_config
from curation.layout import OutDir


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)


@dataclass
class Plan:
    units_by_source: dict[str, int]
    done_keys: int
    pools: list  # curation.pipeline.Pool
    total: dict[str, float]
    largest_node: dict[str, float]
    where: str
    fit_error: str | None
    sections: list[Section] = field(default_factory=list)

    @property
    def units(self) -> int:
        return sum(self.units_by_source.values())

    @property
    def fits(self) -> bool:
        return self.fit_error is None


def work_list(cfg: RunConfig) -> dict[str, int]:
    """Source units per source name, listed exactly as the run lists them (``run.limit`` included)."""
    from curation.worklist import write_units

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "units.parquet"
        write_units(cfg, path)
        sources = pq.read_table(path, columns=["source"]).column("source").to_pylist()
    return dict(Counter(sources))


def local_capacity(cfg: RunConfig) -> tuple[dict[str, float], dict[str, float]]:
    """What the embedded local Ray would have: its logical CPUs as :func:`curation.pipeline.init_ray` sets
    them, and the GPUs Ray would detect (``CUDA_VISIBLE_DEVICES`` respected)."""
    cpus = float(cfg.ray.num_cpus or max(4, 2 * (os.cpu_count() or 1)))
    gpus = float(_gpus())
    total = {"CPU": cpus, "GPU": gpus}
    return total, dict(total)


def _gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def cluster_capacity_of(address: str) -> tuple[dict[str, float], dict[str, float]]:
    """Join the cluster at ``address`` only to read what it has, then leave."""
    import ray

    from curation.pipeline import cluster_capacity

    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        return cluster_capacity()
    finally:
        ray.shutdown()


def make_plan(cfg: RunConfig) -> Plan:
    from curation.pipeline import check_fit, plan_pools

    by_source = work_list(cfg)
    out = OutDir(Path(cfg.run.out))
    done = len(out.done_keys()) if out.shards.is_dir() else 0
    pools = plan_pools(cfg)
    address = cfg.ray_address()
    total, largest = cluster_capacity_of(address) if address else local_capacity(cfg)
    try:
        check_fit(pools, total, largest)
        error = None
    except ConfigError as err:
        error = str(err)
    where = f"the cluster at {address}" if address else "an embedded local Ray (started by the run)"
    return Plan(by_source, done, pools, total, largest, where, error, quota_sections(cfg))


def quota_sections(cfg: RunConfig) -> list[Section]:
    """Per source with a quota (``max_units`` / ``max_samples``): what it lists and what the quota takes."""
    from curation.quota import plan_quotas

    if not any(s.max_units is not None or s.max_samples is not None for s in cfg.sources):
        return []

    def counts(found: int | None, cap: int | None, taken: int | None, what: str) -> str:
        known = "?" if found is None else str(found)
        return (
            f"{known} {what}"
            + (f", quota {cap}" if cap is not None else "")
            + (f" -> {taken} taken" if taken is not None else "")
        )

    lines = [
        f"  {q.source:<16} {counts(q.units_found, q.max_units, q.units_selected, 'units')}; "
        f"{counts(q.samples_found, q.max_samples, q.samples_selected, 'samples')}"
        + (f"; {q.bad_entries} unreadable entries (reject rows)" if q.bad_entries else "")
        for q in plan_quotas(cfg)
    ]
    return [Section("quotas (deterministic by hash: a rerun takes the same units)", lines)]


def describe(plan: Plan, cfg: RunConfig) -> list[Section]:
    """The plan as titled lines, in the order a user reads them: the work, the pools, the fit."""
    limit = f" (run.limit {cfg.run.limit})" if cfg.run.limit else ""
    work = Section("work list", [f"{plan.units} source units{limit}"])
    work.lines += [f"  {name:<16} {n:>8} units" for name, n in plan.units_by_source.items()]
    work.lines.append(
        f"output {cfg.run.out}: "
        + (
            f"{plan.done_keys} keys already done there (a run resumes: they are skipped)"
            if plan.done_keys
            else "nothing done there yet"
        )
    )
    pools = Section("actor pools" + (" (ray.fusion: auto)" if cfg.ray.fusion == "auto" else ""))
    for pool in plan.pools:
        r = pool.resources
        size = f"{r.concurrency}" + (f"..{r.max_concurrency}" if r.max_concurrency not in (None, r.concurrency) else "")
        pools.lines.append(
            f"  {'+'.join(s.name.value for s in pool.stages):<26} x{size:<6} {r.num_cpus:g} CPU"
            + (f", {r.num_gpus:g} GPU" if r.num_gpus else "")
            + f" each, batch {r.batch_size}"
        )
    total, node = plan.total, plan.largest_node
    fit = Section(
        "fit",
        [
            f"where: {plan.where}",
            f"capacity: {total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU "
            f"(largest node {node.get('CPU', 0):g} CPU, {node.get('GPU', 0):g} GPU)",
        ],
    )
    fit.lines.append(
        "fits: the pools at their minimum size can start" if plan.fits else f"DOES NOT FIT: {plan.fit_error}"
    )
    if not cfg.ray.check_resources:
        fit.lines.append("(ray.check_resources is off: the run would not check this, and would wait for resources)")
    return [work, pools, fit, *plan.sections]


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, {"run.out": str(args.out) if args.out else None, "run.limit": args.limit})
        plan = make_plan(cfg)
    except ConfigError as err:
        print(f"curate plan: {err}", file=sys.stderr)
        return 2
    sections = describe(plan, cfg)
    if args.json:
        print(
            json.dumps(
                {
                    "units": plan.units,
                    "units_by_source": plan.units_by_source,
                    "done_keys": plan.done_keys,
                    "pools": [
                        {"stages": [s.name.value for s in p.stages], **p.resources.model_dump()} for p in plan.pools
                    ],
                    "capacity": plan.total,
                    "largest_node": plan.largest_node,
                    "fits": plan.fits,
                    "fit_error": plan.fit_error,
                    "sections": {s.title: s.lines for s in sections},
                },
                indent=1,
            )
        )
    else:
        for section in sections:
            print(f"{section.title}:")
            for line in section.lines:
                print(f"  {line}")
    return 0 if plan.fits else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="what a run would do, where, and whether it fits, without running it")
    p.add_argument("config", type=Path, help="run config YAML")
    p.add_argument("--out", type=Path, help="output folder (run.out): counts the keys a resume would skip")
    p.add_argument("--limit", type=int, help="at most this many source units (run.limit)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)
