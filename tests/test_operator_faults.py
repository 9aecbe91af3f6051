"""Faults an operator causes (issue 12), each on a real local Ray run: every one ends with 0 samples lost
and 0 duplicated, checked against the keys a clean run records."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curation.finalize import finalize
from curation.layout import OutDir
from curation.pipeline import run
from curation.shard_check import shard_problem
from curation.verify import verify
from tests.conftest import small_config


def index_keys(out) -> list[str]:
    return pq.read_table(out / "index.parquet", columns=["key"]).column("key").to_pylist()


def assert_complete(out, expected: set[str]) -> None:
    """Every expected key recorded exactly once (0 lost, 0 duplicated), and verify passes."""
    keys = index_keys(out)
    assert len(keys) == len(set(keys)), "a key is recorded twice"
    assert set(keys) == expected
    rep = verify(out, 35.0)
    assert rep.ok, rep.problems


def faults_config(out):
    """Small, several shards, two actors (so rows finish out of order)."""
    return small_config(
        out, sink={"shard_size": 4}, masks={"resources": {"num_cpus": 0.5, "batch_size": 2, "concurrency": 2}}
    )


@pytest.fixture(scope="module")
def clean_run(ray_session, tmp_path_factory):
    """The reference: one clean run of a small config."""
    out = tmp_path_factory.mktemp("clean")
    cfg = faults_config(out)
    result = run(cfg)
    return cfg, result, set(index_keys(out))


def test_a_truncated_complete_shard_is_found_removed_and_redone(clean_run, tmp_path, ray_session):
    import shutil

    _, result, expected = clean_run
    out = tmp_path / "out"
    shutil.copytree(result.out, out)
    shards = OutDir(out).complete_shards()
    assert len(shards) >= 2
    tar = out / "shards" / f"{shards[0]}.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])  # an interrupted copy
    assert "bytes" in shard_problem(out / "shards", shards[0])
    assert any(shards[0] in p for p in verify(out, 35.0).problems)
    finalize(OutDir(out))  # the report skips what it cannot read instead of crashing
    again = run(faults_config(out))
    assert not (out / "shards" / f"{shards[0]}_stats.json").exists()
    assert again.stats["ingested"] == result.stats["ingested"]
    assert_complete(out, expected)


def test_a_flipped_byte_is_caught_by_the_checksum_and_the_rerun_redoes_the_shard(clean_run, tmp_path):
    import shutil

    _, result, expected = clean_run
    out = tmp_path / "out"
    shutil.copytree(result.out, out)
    name = OutDir(out).complete_shards()[-1]
    tar = out / "shards" / f"{name}.tar"
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside a PNG's data: size and headers unchanged
    tar.write_bytes(bytes(data))
    assert shard_problem(out / "shards", name) is None
    assert "SHA-256" in shard_problem(out / "shards", name, deep=True)
    assert any("SHA-256" in p for p in verify(out, 35.0).problems)
    again = run(faults_config(out))  # the resume's check hashes every complete shard: the damaged one is redone
    assert f"{name}_stats.json" in again_removed(out)
    assert again.stats["ingested"] == result.stats["ingested"]
    assert_complete(out, expected)


def again_removed(out) -> list[str]:
    """What the last run segment into ``out`` removed at its start."""
    import json

    return json.loads((out / "run.json").read_text())["history"][-1]["removed_torn_files"]


def write_config(path, out, **sections) -> None:
    """A small run config as a YAML file (JSON is YAML) for the command line."""
    import json

    data = {
        "run": {"out": str(out)},
        "ray": {"num_cpus": 4},
        "sources": [{"type": "synthetic", "name": "synth", "count": 10, "size": 96, "seed": 3, "paired_fraction": 0.5}],
        "sink": {"shard_size": 4},
    }
    data.update(sections)
    path.write_text(json.dumps(data))


def curate(*args: str, **kwargs):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "curation.cli", *args],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_a_second_run_into_the_same_out_is_refused_while_the_first_runs(clean_run, tmp_path):
    import json
    import time

    _, _, expected = clean_run
    out = tmp_path / "out"
    write_config(tmp_path / "run.yaml", out)
    first = curate("run", str(tmp_path / "run.yaml"))
    lock = out / ".lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text()) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    holder = json.loads(lock.read_text())
    second = curate("run", str(tmp_path / "run.yaml"))
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2
    assert err.strip().count("\n") == 0 and f"pid {holder['pid']}" in err and "in use by another run" in err
    _, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    info = json.loads((out / "run.json").read_text())
    assert len(info["history"]) == 1  # the second run wrote nothing
    assert_complete(out, expected)


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
    import signal
    import subprocess
    import sys

    from curation.lock import OutLock

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from curation.lock import OutLock; "
            f"OutLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(Exception, match=f"pid {holder.pid} on"):
        OutLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with OutLock(tmp_path):  # the dead run's lock file is still there, its flock is gone
        assert str(__import__("os").getpid()) in (tmp_path / ".lock").read_text()


def test_keys_longer_than_a_ustar_name_are_written_and_read_back(ray_session, tmp_path):
    import webdataset as wds

    from curation.core.data import BUNDLED

    root = BUNDLED / "desoba"
    folder = sorted(p for p in root.iterdir() if p.is_dir())[0]
    files = {p.stem: p.relative_to(root).as_posix() for p in folder.iterdir()}
    sid = "/".join(["a_deeply_nested_folder_of_photos"] * 6) + "/IMG_0001.jpg"  # a nested path as the id
    (tmp_path / "m.csv").write_text(
        "id,composite,shadowfree,object_mask\n"
        f"{sid},{files['composite']},{files['shadowfree']},{files['object_mask']}\n"
    )
    out = tmp_path / "out"
    result = run(
        small_config(
            out, sources=[{"type": "paired", "name": "pairs", "root": str(root), "manifest": str(tmp_path / "m.csv")}]
        )
    )
    assert result.stats["accepted"] == 1
    (key,) = index_keys(out)
    assert len(key) > 200
    samples = list(wds.WebDataset([str(p) for p in (out / "shards").glob("*.tar")], shardshuffle=False))
    assert [s["__key__"] for s in samples] == [key]
    assert verify(out, 35.0).ok


@pytest.mark.parametrize("case", ["workers_negative", "workers_zero", "missing_source", "out_is_a_file", "bad_key"])
def test_a_user_mistake_is_one_line_and_exit_2_before_anything_is_written(tmp_path, case):
    out = tmp_path / "out"
    write_config(tmp_path / "run.yaml", out)
    args, expect = ["run", str(tmp_path / "run.yaml")], ""
    if case == "workers_negative":
        args, expect = args + ["--workers", "-1"], "--workers must be at least 1, got -1"
    elif case == "workers_zero":
        args, expect = args + ["--workers", "0"], "--workers must be at least 1, got 0"
    elif case == "missing_source":
        write_config(
            tmp_path / "run.yaml", out, sources=[{"type": "paired", "name": "p", "root": str(tmp_path / "nope")}]
        )
        expect = f"sources.0 (p): paired source 'p': root {tmp_path / 'nope'} is not a folder"
    elif case == "out_is_a_file":
        out.write_text("not a folder")
        expect = f"run.out: {out} is a file, not a folder"
    else:
        write_config(tmp_path / "run.yaml", out, sink={"shard_size": 4, "shard_sise": 3})
        expect = "sink.shard_sise: Extra inputs are not permitted"
    proc = curate(*args)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and expect in err and "Traceback" not in err, err
    assert not (out / "run.json").exists() and not (
        out.is_dir() and (out / "shards").exists() and any((out / "shards").iterdir())
    )
    if case == "missing_source":  # --debug shows where it came from
        proc = curate(*args, "--debug")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode != 0 and "Traceback" in err


def test_two_runs_of_one_config_write_byte_identical_tars(clean_run, tmp_path):
    import hashlib

    _, first, _ = clean_run
    second = run(faults_config(tmp_path / "second"))

    def tars(out):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "shards").glob("*.tar"))}

    assert len(tars(first.out)) >= 2 and tars(first.out) == tars(second.out)


def test_the_dedupe_registry_killed_mid_run_is_restarted_and_rebuilt(clean_run, tmp_path):
    import threading
    import time

    import ray

    _, _, expected = clean_run
    out = tmp_path / "out"
    done: dict = {}
    worker = threading.Thread(target=lambda: done.update(result=run(faults_config(out))))
    worker.start()
    name, killed = f"dedupe:{out.resolve()}:r000", False
    deadline = time.monotonic() + 120
    while worker.is_alive() and not killed and time.monotonic() < deadline:
        try:
            ray.kill(ray.get_actor(name), no_restart=False)  # as if its process died: Ray restarts it
            killed = True
        except ValueError:  # not created yet
            time.sleep(0.05)
    worker.join(timeout=300)
    assert killed and "result" in done
    assert_complete(out, expected)


def test_shards_land_as_the_run_goes_and_a_kill_costs_only_the_shards_in_flight(ray_session, tmp_path):
    import os
    import signal
    import time

    from curation.core.schema import table_rows
    from curation.worklist import write_units
    from stages.ingest import Ingest

    out = tmp_path / "out"
    sections = dict(
        sources=[{"type": "synthetic", "name": "synth", "count": 40, "size": 64, "seed": 5}],
        ingest={"resources": {"num_cpus": 0.5, "batch_size": 2, "concurrency": 1}},
        sink={"shard_size": 1},
        masks={"resources": {"num_cpus": 0.5, "batch_size": 2, "concurrency": 2}},
    )
    cfg = small_config(out, **sections)
    write_units(cfg, tmp_path / "units.parquet")  # every row ingest makes is one index row: the keys to expect
    expected = {r["key"] for r in Ingest(cfg).run(table_rows(pq.read_table(tmp_path / "units.parquet")))}
    write_config(tmp_path / "run.yaml", out, **sections)
    proc = curate("run", str(tmp_path / "run.yaml"), start_new_session=True)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline and len(OutDir(out).complete_shards()) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 of the driver and the Ray it started
    proc.communicate()
    kept = OutDir(out).complete_shards()
    kept_keys = {
        k
        for n in kept
        for k in pq.read_table(out / "shards" / f"{n}.parquet", columns=["key"]).column("key").to_pylist()
    }
    assert len(kept) >= 2 and len(kept_keys) < len(expected) // 2, "the first shards landed only late in the run"
    resumed = run(cfg)
    assert set(OutDir(out).complete_shards()) >= set(kept)  # what was complete at the kill stays
    assert resumed.segment == "r001"
    assert_complete(out, expected)


def test_a_writer_that_outlived_its_run_marks_nothing(tmp_path):
    from curation.core.schema import rows_to_table
    from curation.lock import OutLock
    from curation.shard_check import Superseded
    from curation.sink import ShardSink
    from devdata.layered_shards import _rows as scene_rows

    out = OutDir(tmp_path)
    out.create()
    with OutLock(tmp_path) as dead_run:
        sink = ShardSink(out.shards, "r000", small_config(tmp_path).sink, dead_run.token)
    with OutLock(tmp_path):  # the next run holds the folder now

        class Ctx:
            task_idx = 0

        with pytest.raises(Superseded, match="held by another run"):
            sink.write([rows_to_table(scene_rows(2, (48,), 0))], Ctx())
        assert out.complete_shards() == []
        out.remove_torn()
        assert list(out.shards.iterdir()) == []


def test_a_worker_node_lost_mid_run_on_a_multi_node_cluster(tmp_path):
    """Three Ray nodes on this machine (its own cluster, in a subprocess: the shared session stays as it is)."""
    import json
    import subprocess
    import sys

    from curation.core.schema import table_rows
    from curation.worklist import write_units
    from stages.ingest import Ingest
    from tests.conftest import REPO
    from tests.fixtures.multinode import config, report_path

    out = tmp_path / "out"
    write_units(config(out), tmp_path / "units.parquet")
    expected = {r["key"] for r in Ingest(config(out)).run(table_rows(pq.read_table(tmp_path / "units.parquet")))}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.multinode", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path(out).read_text())
    assert report["error"] is None and report["removed"] is not None, report
    assert report["alive_nodes"] == 2  # the head and the worker node that is left
    assert report["removed"]["shards_then"] < report["stats"]["shards"]  # removed while the run was going
    assert_complete(out, expected)
