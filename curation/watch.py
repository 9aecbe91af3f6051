"""What a run tells whoever watches it: where its Ray shows it (dashboard, metrics endpoint, logs), who follows
its progress (:class:`Watcher`), how quiet Ray is on the terminal, and the metrics endpoint's last word.

The pipeline (:mod:`curation.pipeline`) passes these around; the terminal (:mod:`curation.console`) prints them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import ray

from curation.scrape import wait_until_final

log = logging.getLogger(__name__)

#: how often the embedded Ray's workers export their metrics (Ray's default: 10 s), so that a short local run
#: shows progress in Prometheus and its last values reach the endpoint soon after it ends
METRICS_REPORT_INTERVAL_MS = 2000


@dataclass
class RayInfo:
    """Where to watch the run: the dashboard (None when off), this node's Prometheus endpoint, Ray's logs."""

    embedded: bool  # started by this run: it ends with the driver
    dashboard_url: str | None = None
    metrics_url: str | None = None
    logs: str | None = None
    cluster: str = ""  # which Ray this is, in one line (curation.raycluster.describe_cluster)


@dataclass
class RunStart:
    segment: str
    units: int
    pools: list[Any]  # the run's actor pools (curation.pipeline.Pool)
    ray: RayInfo


class Watcher(Protocol):
    """Who follows a run (the CLI's terminal): told where it runs, then the tally's snapshot every second."""

    def started(self, run: RunStart) -> None: ...

    def progress(self, snapshot: dict[str, Any]) -> None: ...


def ray_info(embedded: bool, context: Any = None, cluster: str = "") -> RayInfo:
    """The running Ray's URLs (``context``: what ``ray.init`` returned, when this process called it)."""
    node = ray._private.worker.global_worker.node  # the driver's node: where its metrics agent and logs are
    if context is not None:
        port, url = context.address_info.get("metrics_export_port"), context.dashboard_url
    else:
        port, url = getattr(node, "metrics_export_port", None), None
    return RayInfo(
        embedded=embedded,
        cluster=cluster,
        dashboard_url=f"http://{url}" if url else None,
        metrics_url=f"http://127.0.0.1:{port}/metrics" if port else None,
        logs=str(Path(node.get_session_dir_path()) / "logs") if node else None,
    )


def loopback_only() -> None:
    """Keep the embedded local Ray, its metrics endpoint included, on 127.0.0.1. Ray binds that endpoint to every
    interface unless the node's IP is the loopback one, and turns a loopback node IP into the machine's reachable
    address unless its single-machine switch is on (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``). Ray reads the
    switch when it is imported: set in the environment for the processes it starts, and on the constant here."""
    from ray._private import ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def ray_output(verbose: bool) -> None:
    """Ray Data's progress bars, INFO lines and warnings on the terminal only when ``verbose`` (they stay in
    ray-data.log); errors always."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = verbose
    ctx.print_on_execution_start = verbose
    for handler in logging.getLogger("ray.data").handlers:
        if handler.name == "console":
            handler.setLevel(logging.INFO if verbose else logging.ERROR)


def settle_metrics(info: RayInfo, segment_stats: dict[str, Any], last_stage: str) -> list[str]:
    """Wait until the embedded Ray's endpoint shows the segment's final counts (it ends with this process, and
    workers export every few seconds); what still differs (empty: it agrees, or there is nothing to wait for)."""
    if not (info.embedded and info.metrics_url):
        return []
    left = wait_until_final(
        info.metrics_url, segment_stats, last_stage, timeout=3 * METRICS_REPORT_INTERVAL_MS / 1000 + 5
    )
    if left:
        log.warning("the metrics endpoint %s still differs from the shards' stats: %s", info.metrics_url, left)
    return left
