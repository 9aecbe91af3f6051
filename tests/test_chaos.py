"""The small version of ``make chaos``: random kills of stage actors, Ray workers and a worker node during a run
on a local three-node cluster end with 0 rows lost, 0 duplicated and verify OK (tests/fixtures/chaos.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_a_run_survives_random_kills_of_actors_workers_and_a_node(tmp_path):
    out, report = tmp_path / "out", tmp_path / "chaos.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fixtures.chaos",
            "--out",
            str(out),
            "--units",
            "24",
            "--every",
            "1.5",
            "--seed",
            "1",
            "--report",
            str(report),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=500,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    summary = json.loads(report.read_text())
    assert proc.returncode == 0, (summary, proc.stdout[-2000:], proc.stderr[-3000:])
    assert summary["lost"] == 0 and summary["duplicated"] == 0 and summary["unexpected"] == 0
    assert summary["verify"] == "OK"
    assert summary["kills"].get("worker node") == 1 and summary["kills_survived"] >= 3, summary
