"""What an operator runs besides ``curate run``: --version, plan, status (on a run in progress, from another
process), config --schema, init, ``shards | head``; and the run's summary of accept rates per source."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from curation.cli import main
from curation.status import status_lines
from tests.conftest import REPO
from tests.test_operator_faults import curate, write_config


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == "curate 0.1.0"


def test_config_schema_comes_from_the_models(capsys):
    assert main(["config", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"sources", "masks", "curate", "ray", "sink"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False  # strict: a misspelt key is an error, as at run time


def test_plan_lists_the_work_pools_and_fit_without_running(capsys, tmp_path):
    assert main(["plan", str(REPO / "manifests" / "demo.yaml"), "--out", str(tmp_path / "o"), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["units"] == 51 and plan["units_by_source"] == {"synth": 48, "desoba": 3}
    assert plan["fits"] and plan["done_keys"] == 0
    assert [p["stages"] for p in plan["pools"]] == [["ingest", "masks", "caption", "curate"]]
    assert not (tmp_path / "o").exists()  # nothing written, no Ray started
    config = tmp_path / "big.yaml"
    write_config(
        config,
        tmp_path / "o",
        ray={"num_cpus": 2},
        masks={"resources": {"num_cpus": 1, "batch_size": 2, "concurrency": 4}},
    )
    assert main(["plan", str(config)]) == 1
    text = capsys.readouterr().out
    assert "DOES NOT FIT" in text and "masks.resources" in text and "10 source units" in text


def test_init_copies_the_manifests_and_the_dashboard(capsys, tmp_path):
    assert main(["init", str(tmp_path)]) == 0
    assert (tmp_path / "manifests" / "demo.yaml").read_text() == (REPO / "manifests" / "demo.yaml").read_text()
    assert json.loads((tmp_path / "manifests" / "grafana" / "curation.json").read_text())["panels"]
    assert "groups:" in (tmp_path / "manifests" / "prometheus" / "curation-rules.yml").read_text()
    assert main(["init", str(tmp_path)]) == 2  # never overwrites a user's edits
    assert "exists" in capsys.readouterr().err


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory):
    """A ``curate run`` in another process, with ``curate status`` polled while it runs: (out, states seen,
    the run's stdout)."""
    tmp = tmp_path_factory.mktemp("status")
    out = tmp / "out"
    write_config(
        tmp / "run.yaml",
        out,
        sources=[
            {"type": "synthetic", "name": "synth", "count": 14, "size": 96, "seed": 5},
            {"type": "paired", "name": "desoba", "root": "desoba"},
        ],
        masks={"resources": {"num_cpus": 0.5, "batch_size": 2, "concurrency": 1}},
    )
    proc = curate("run", str(tmp / "run.yaml"))
    seen: list[list[str]] = []
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / "run.json").exists():
            seen.append(status_lines(out, width=80))
        time.sleep(0.5)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    return out, seen, stdout


def test_status_follows_a_run_in_progress_from_another_process(watched_run, capsys):
    out, seen, _ = watched_run
    running = [s for s in seen if "running: pid" in s[0] and any(line.startswith("masks") for line in s)]
    assert running, seen[-3:]
    mid = running[len(running) // 2]
    assert any("ETA" in line for line in mid) and any(line.startswith("sink") for line in mid)
    assert all(len(line) <= 80 for s in running for line in s if not line.startswith(str(out)))
    assert main(["status", str(out)]) == 0
    final = capsys.readouterr().out
    assert "finished" in final.splitlines()[0] and "whole folder: " in final
    stats = json.loads((out / "stats.json").read_text())
    assert f"= {stats['accepted']} accepted + {stats['rejected']} rejected" in final.splitlines()[-1]


def test_the_summary_gives_accept_rates_per_source(watched_run):
    import pyarrow.parquet as pq

    out, _, stdout = watched_run
    index = pq.read_table(out / "index.parquet", columns=["source", "status"]).to_pylist()
    line = next(x for x in stdout.splitlines() if "accepted per source:" in x)
    for source in ("desoba", "synth"):
        rows = [r for r in index if r["source"] == source]
        ok = sum(r["status"] == "ok" for r in rows)
        assert f"{source} {ok}/{len(rows)} ({ok / len(rows):.0%})" in line


def test_shards_into_head_ends_quietly(watched_run):
    out, _, _ = watched_run
    for reader in ("head -1", "true"):  # ``true`` has closed the pipe before curate writes a byte
        cmd = f"{sys.executable} -m curation.cli shards {out} | {reader}; exit ${{PIPESTATUS[0]}}"
        done = subprocess.run(
            ["bash", "-c", cmd],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
