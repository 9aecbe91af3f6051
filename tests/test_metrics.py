"""The pipeline's metrics on the local Ray's Prometheus endpoint: there while a run goes, equal to stats.json at
its end; and the names Ray shows for the stage pools."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from curation.cli import main
from curation.core import metrics
from curation.core.stage import chain_class
from curation.scrape import Scraped, mismatches, parse, scrape
from stages.caption import Caption
from stages.curate import Curate
from stages.masks import MasksAndLayers

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _totals(got: Scraped) -> dict[str, float]:
    return {"rows": sum(got.rows.values()), "shards": got.shards, "bytes": got.bytes}


def test_metrics_endpoint_during_and_at_end_of_a_run(tmp_path: Path) -> None:
    """`curate run --hold` with a fixed metrics port: a scrape before the run has finished shows the pipeline's
    series growing, the scrape at its end has every metric with the totals of stats.json."""
    port = _free_port()
    out = tmp_path / "out"
    config = {
        "run": {"out": str(out)},
        "ray": {"metrics_export_port": port, "num_cpus": 4},
        "sources": [{"type": "synthetic", "name": "synth", "count": 24, "size": 96, "seed": 5, "paired_fraction": 0.5}],
        "ingest": {"resources": {"batch_size": 4}},
        "masks": {"resources": {"batch_size": 4}},
        "sink": {"shard_size": 8},
        "report": {"rejects_per_reason": 2, "thumbnail_px": 48},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "curation.cli", "run", str(tmp_path / "run.yaml"), "--hold"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    holding = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("holding the local Ray"):
                holding.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}/metrics"
    during: list[Scraped] = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while not holding.is_set():
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            if not (out / "stats.json").exists():  # the dataset has not ended yet
                try:
                    got = scrape(url)
                except OSError:
                    got = None  # the metrics agent is not up yet
                if got is not None and got.rows:
                    during.append(got)
            time.sleep(0.3)
        end = scrape(url)
        import psutil

        listening = {c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port}
        assert listening == {"127.0.0.1"}, listening  # not on every interface (ray.listen_all_interfaces: false)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0, "".join(lines)
    stats = json.loads((out / "stats.json").read_text())

    assert during, "no pipeline series on the endpoint while the run was going:\n" + "".join(lines)
    first = _totals(during[0])
    assert 0 < first["rows"] <= _totals(end)["rows"]

    # counters and histograms only: every series is still there after the stage actors have exited
    assert set(metrics.NAMES) <= end.present, end.present
    assert {status for _, status, _ in end.rows} == {"ok", "rejected"}  # index.parquet's vocabulary
    assert mismatches(end, stats, Curate.name.value) == []
    assert stats["rejected"] > 0 and stats["shards"] >= 2  # the comparison covers rejects and several shards
    progress = json.loads((out / "run.json").read_text())["history"][-1]["progress"]
    assert dict(end.batches) == {s: p["batches"] for s, p in progress["stages"].items() if p["batches"]}
    index = pq.read_table(out / "index.parquet")
    assert end.scores == sum(1 for v in index.column("score").to_pylist() if v is not None and math.isfinite(v)) > 0
    summary = "".join(lines)
    assert "final values exported" in summary and url in summary

    # the reject sample: thumbnails for at most rejects_per_reason rows of each reason, over the whole run
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    kept: dict[str, int] = {}
    for r in rejects:
        if r["thumbnails"] is not None:
            kept[r["reject_reason"]] = kept.get(r["reject_reason"], 0) + 1
            assert r["thumbnails"]["composite"].startswith(b"\x89PNG")
    assert kept and all(0 < n <= 2 for n in kept.values())
    assert set(kept) == {r["reject_reason"] for r in rejects}
    page = (out / "report.html").read_text()
    for heading in ("Curator score", "Throughput and time per stage", "Rejects by reason", "Run history", "Config"):
        assert heading in page
    assert "Not shown:" not in page
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.html").read_text() == page


def test_parse_sums_series_over_workers() -> None:
    text = """# HELP ray_curation_rows_total rows
# TYPE ray_curation_rows_total counter
ray_curation_rows_total{WorkerId="a",stage="masks",status="ok",reason=""} 3.0
ray_curation_rows_total{WorkerId="b",stage="masks",status="ok",reason=""} 4.0
ray_curation_rows_total{WorkerId="b",stage="masks",status="rejected",reason="empty_mask"} 1.0
# TYPE ray_curation_shards_written_total counter
ray_curation_shards_written_total{WorkerId="c"} 2.0
"""
    got = parse(text)
    assert got.rows[("masks", "ok", "")] == 7 and got.rows[("masks", "rejected", "empty_mask")] == 1
    assert got.shards == 2 and got.present == {metrics.ROWS, metrics.SHARDS}
    stats = {"ingested": 8, "accepted": 7, "shards": 2, "tar_bytes": 0, "by_reason": {"masks/empty_mask": 1}}
    assert mismatches(got, stats, "masks") == []
    assert mismatches(got, {**stats, "accepted": 6}, "masks") == ["accepted: metrics 7, stats 6"]


def test_stage_pools_are_named_after_their_stages() -> None:
    """Ray Data shows ``MapBatches(<class name>)`` in its progress, the dashboard and ``ps``."""
    assert chain_class((MasksAndLayers,)).__name__ == "masks"
    assert chain_class((MasksAndLayers, Caption, Curate)).__name__ == "masks+caption+curate"


def test_grafana_dashboard_queries_every_pipeline_metric() -> None:
    """manifests/grafana/curation.json asks for the names the pipeline exports (as Ray prefixes them)."""
    dashboard = json.loads((REPO / "manifests" / "grafana" / "curation.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|count|sum)$", "", n) for e in exprs for n in re.findall(r"ray_(curation_\w+)", e)}
    assert used == set(metrics.NAMES)
