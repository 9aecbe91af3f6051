"""The pipeline's metrics read back from a Prometheus endpoint, and checked against the shards' stats.

The local Ray's metrics agent serves every worker's series at ``http://127.0.0.1:PORT/metrics``; workers
export every ``metrics_report_interval_ms`` and when they exit, so the last batches of a run reach the
endpoint a moment after the dataset ends. :func:`wait_until_final` waits for that, so that a scrape at
the end of a run (Prometheus, or ``curate run --hold``) sees the run's final numbers.
"""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from curation.core import metrics as m


@dataclass
class Scraped:
    """The pipeline's series summed over workers: rows by (stage, status, reason), batches and seconds by stage,
    scores observed, shards and bytes written, and which metric names were there at all."""

    rows: dict[tuple[str, str, str], float] = field(default_factory=lambda: defaultdict(float))
    batches: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    scores: float = 0.0
    shards: float = 0.0
    bytes: float = 0.0
    present: set[str] = field(default_factory=set)


def parse(text: str) -> Scraped:
    out = Scraped()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removeprefix(m.EXPORT_PREFIX)
            base = next((n for n in m.NAMES if name == n or name.startswith(n + "_")), None)
            if base is None:
                continue
            out.present.add(base)
            labels = sample.labels
            if name == m.ROWS:
                out.rows[(labels["stage"], labels["status"], labels.get("reason", ""))] += sample.value
            elif name == m.BATCH_SECONDS + "_count":
                out.batches[labels["stage"]] += sample.value
            elif name == m.CURATOR_SCORE + "_count":
                out.scores += sample.value
            elif name == m.SHARDS:
                out.shards += sample.value
            elif name == m.BYTES:
                out.bytes += sample.value
    return out


def scrape(url: str, timeout: float = 5.0) -> Scraped:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse(response.read().decode())


def mismatches(got: Scraped, stats: dict[str, Any], last_stage: str) -> list[str]:
    """Where the scraped totals differ from the shards' stats (``ingested``, ``accepted``, ``by_reason``,
    ``shards``, ``tar_bytes`` of the same run segment); empty when they agree."""
    have: dict[str, float] = defaultdict(float, {"shards": got.shards, "bytes": got.bytes})
    for (stage, status, reason), n in got.rows.items():
        if status == "rejected":
            have[f"rejected {stage}/{reason}"] += n
        elif stage != last_stage:
            continue  # passed on to the next stage, not yet a row of the output
        else:
            have["accepted"] += n
        have["ingested"] += n
    want = {
        "ingested": stats["ingested"],
        "accepted": stats["accepted"],
        "shards": stats["shards"],
        "bytes": stats["tar_bytes"],
        **{f"rejected {k}": v for k, v in stats["by_reason"].items()},
    }
    return [
        f"{k}: metrics {have.get(k, 0):g}, stats {want.get(k, 0):g}"
        for k in sorted(set(want) | set(have))
        if have.get(k, 0) != want.get(k, 0)
    ]


def wait_until_final(url: str, stats: dict[str, Any], last_stage: str, timeout: float) -> list[str]:
    """Poll ``url`` until its totals equal ``stats`` (or ``timeout`` seconds); the mismatches left."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            left = mismatches(scrape(url), stats, last_stage)
        except OSError as err:
            left = [f"{url}: {err}"]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)
