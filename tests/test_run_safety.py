"""Runs that cannot be hijacked, hang or lose a byte (issue 24): which Ray a run uses, a cluster that does not
answer, unreadable input, filesystem mistakes, a full disk, hostile values in the pages, a killed run's Ray."""

from __future__ import annotations

import html.parser
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from curation.core.reasons import Reason
from tests.conftest import REPO, small_config
from tests.test_operator_faults import assert_complete, curate, index_keys, write_config

#: ends the element it lands in, opens one with a handler, and breaks out of either kind of quoted attribute
HOSTILE = "q</script><img src=x onerror=alert(1)>\"'&<!--"


def env_with(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def test_a_ray_recorded_on_the_machine_does_not_take_over_a_local_run(tmp_path):
    """``ray start --head`` records its address in ``<ray temp>/ray_current_cluster``; Ray's default ``init``
    joins it. A run without RAY_ADDRESS must start its own Ray and say so in its first line."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: Ray's socket paths live below it
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")  # a head that someone started
        out = tmp_path / "out"
        write_config(tmp_path / "run.yaml", out, sources=[{"type": "synthetic", "name": "s", "count": 2, "size": 64}])
        proc = subprocess.run(
            [sys.executable, "-m", "curation.cli", "run", str(tmp_path / "run.yaml")],
            cwd=REPO,
            env=env_with(RAY_TMPDIR=str(ray_tmp)),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.splitlines()[0].startswith("Ray: a fresh local instance started by this run"), proc.stdout
        assert verify_ok(out)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def verify_ok(out: Path) -> bool:
    from curation.verify import verify

    rep = verify(out, 35.0)
    assert rep.ok, rep.problems
    return True


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_a_named_cluster_that_does_not_answer_is_one_line_within_30_s(tmp_path, address):
    out = tmp_path / "out"
    write_config(tmp_path / "run.yaml", out)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "curation.cli", "run", str(tmp_path / "run.yaml")],
        cwd=REPO,
        env=env_with(RAY_ADDRESS=address),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and address in proc.stderr and "does not answer" in proc.stderr, proc.stderr
    assert not out.exists()


def test_the_cluster_manifest_names_its_head():
    import yaml

    address = yaml.safe_load((REPO / "manifests" / "cluster.yaml").read_text())["ray"]["address"]
    assert address not in (None, "auto") and ":" in address


def as_unprivileged(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a process that file permissions apply to: as root (which reads anything) a forked child that
    drops to ``nobody``; otherwise here."""
    if os.geteuid() != 0:
        return fn()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            try:
                result: Any = ("ok", fn())
            except BaseException as exc:  # noqa: BLE001 - carried back to the test
                result = ("error", f"{type(exc).__name__}: {exc}")
            with os.fdopen(write, "wb") as f:
                pickle.dump(result, f)
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "error":
        raise AssertionError(value)
    return value


@pytest.fixture
def shared_tmp():
    """A folder the ``nobody`` user can reach (pytest's tmp_path is private to its user)."""
    path = Path(tempfile.mkdtemp(prefix="unreadable-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(path)


def photo(path: Path) -> None:
    """A rendered scene: its photo, or (``background.png``) the same scene without the object."""
    from PIL import Image

    from curation.core.scenes import render_scene

    path.parent.mkdir(parents=True, exist_ok=True)
    scene = render_scene(7, size=64, max_objects=1)
    Image.fromarray(scene.instances[0].background if path.stem == "background" else scene.composite).save(path)
    path.chmod(0o644)
    path.parent.chmod(0o755)


def test_an_unreadable_folder_or_file_is_a_reject_named_unreadable(shared_tmp):
    from curation.core.config import parse_config
    from curation.core.schema import table_rows
    from curation.worklist import write_units
    from stages.ingest import Ingest

    root, pairs = shared_tmp / "photos", shared_tmp / "pairs"
    for rel in ("a.png", "locked/b.png", "c.png"):
        photo(root / rel)
    for rel in ("open/composite.png", "open/background.png", "shut/composite.png", "shut/background.png"):
        photo(pairs / rel)
    for p in (root / "locked", root / "c.png", pairs / "shut"):
        p.chmod(0o000)
    units = shared_tmp / "units.parquet"
    units.touch()
    units.chmod(0o666)
    cfg = parse_config(
        {
            "run": {"out": str(shared_tmp / "out")},
            "sources": [
                {"type": "folder", "name": "f", "root": str(root)},
                {"type": "paired", "name": "p", "root": str(pairs)},
            ],
        }
    )

    def ingest() -> list[tuple[str, str, str | None, str]]:
        write_units(cfg, units)
        rows = Ingest(cfg).run(table_rows(pq.read_table(units)))
        return [(r["source_ref"], r["status"], r["reject_reason"], r["reject_detail"] or "") for r in rows]

    rows = as_unprivileged(ingest)
    by_ref = {ref: (status, reason, detail) for ref, status, reason, detail in rows}
    locked = [v for ref, v in by_ref.items() if "locked" in ref]
    assert len(locked) == 1 and locked[0][1] == Reason.UNREADABLE and "cannot be listed" in locked[0][2], rows
    c = [v for ref, v in by_ref.items() if "c.png" in ref]
    assert len(c) == 1 and c[0][1] == Reason.UNREADABLE and "Permission denied" in c[0][2], rows
    assert any(status == "ok" for ref, status, _, _ in rows if ref.endswith("a.png")), rows
    shut = [v for ref, v in by_ref.items() if "shut" in ref]  # a paired sample folder
    assert len(shut) == 1 and shut[0][1] == Reason.UNREADABLE and "cannot be read" in shut[0][2], rows
    opened = [r for ref, _, r, _ in rows if "open" in ref]  # every unit has its rows: none lost
    assert len(opened) == 1 and opened[0] != Reason.UNREADABLE, rows


def test_the_first_line_of_a_run_that_joins_a_cluster_names_it(ray_session):
    from curation.raycluster import describe_cluster

    line = describe_cluster(False, "10.0.0.5:6379")
    assert line.startswith("Ray: joined the cluster at 10.0.0.5:6379 (head ") and "1 node, 4 CPU, 0 GPU" in line


def test_an_unreadable_source_root_is_one_line_not_an_empty_success(shared_tmp):
    from curation.core.config import ConfigError, parse_config
    from curation.worklist import write_units

    root = shared_tmp / "photos"
    photo(root / "a.png")
    root.chmod(0o000)
    cfg = parse_config(
        {"run": {"out": str(shared_tmp / "out")}, "sources": [{"type": "folder", "name": "f", "root": str(root)}]}
    )

    def listing() -> str:
        try:
            write_units(cfg, Path(os.devnull))
        except ConfigError as err:
            return str(err)
        return "no error"

    assert as_unprivileged(listing) == f"sources.0 (f): folder source 'f': {root} cannot be read (permission denied)"


def test_a_source_that_yields_no_unit_is_exit_2(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    write_config(tmp_path / "run.yaml", out, sources=[{"type": "folder", "name": "f", "root": str(tmp_path / "empty")}])
    proc = curate("run", str(tmp_path / "run.yaml"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert "sources.0 (f): the source yields no unit at all" in err
    assert not out.exists()


def test_a_full_disk_names_the_path_exits_2_and_the_rerun_loses_nothing(ray_session, tmp_path):
    """Shard files that land on ``/dev/full`` get the kernel's own ENOSPC, inside Ray's write tasks."""
    out = tmp_path / "out"
    sections = dict(
        sources=[{"type": "synthetic", "name": "synth", "count": 8, "size": 64, "seed": 5}],
        ingest={"resources": {"num_cpus": 0.5, "batch_size": 2, "concurrency": 1}},
        sink={"shard_size": 1},
    )
    write_config(tmp_path / "run.yaml", out, **sections)
    proc = curate("run", str(tmp_path / "run.yaml"))
    deadline = time.monotonic() + 120
    while not (out / "run.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    for n in range(1, 40):  # every shard but the first lands on a full disk (the resume's cleanup has run)
        os.symlink("/dev/full", out / "shards" / f"r000-{n:06d}.tar.tmp")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and "no space left on the device writing" in err and "/shards/r000-" in err, err
    assert "Traceback" not in err
    from curation.core.schema import table_rows
    from curation.pipeline import run
    from curation.worklist import write_units
    from stages.ingest import Ingest

    cfg = small_config(out, **sections)
    write_units(cfg, tmp_path / "units.parquet")
    expected = {r["key"] for r in Ingest(cfg).run(table_rows(pq.read_table(tmp_path / "units.parquet")))}
    resumed = run(cfg)
    assert resumed.segment == "r001"
    assert_complete(out, expected)
    assert len(index_keys(out)) == len(expected)


def test_an_atomic_write_that_meets_a_full_disk_leaves_the_old_file(tmp_path):
    from curation.atomicio import write_atomic

    path = tmp_path / "stats.json"
    path.write_text('{"old": true}')
    os.symlink("/dev/full", tmp_path / f".stats.json.{os.getpid()}.tmp")
    with pytest.raises(OSError) as caught:
        write_atomic(path, json.dumps({"new": "x" * 100_000}))
    assert caught.value.filename == str(path) and caught.value.errno == 28
    assert path.read_text() == '{"old": true}' and list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("case", ["out_below_a_file", "config_is_a_folder", "missing_source"])
def test_a_filesystem_mistake_is_one_line_exit_2_and_creates_nothing(tmp_path, case):
    out = tmp_path / "out"
    config = tmp_path / "run.yaml"
    write_config(config, out)
    if case == "out_below_a_file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "out"
        expect = f"run.out: {out} lies below {tmp_path / 'afile'}, which is a file, not a folder"
        write_config(config, out)
    elif case == "config_is_a_folder":
        config = tmp_path / "configs"
        config.mkdir()
        expect = f"run config {config} is a folder, not a YAML file"
    else:
        write_config(config, out, sources=[{"type": "paired", "name": "p", "root": str(tmp_path / "nope")}])
        expect = f"root {tmp_path / 'nope'} is not a folder"
    proc = curate("run", str(config))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and expect in err and "Traceback" not in err, err
    assert not out.exists()


class Tags(html.parser.HTMLParser):
    """Every start tag of a page and the text of its scripts, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def assert_inert(page: str, scripts: int) -> Tags:
    """No element the page did not mean to have: no handler attribute, only its own scripts, no stray img."""
    tags = Tags()
    tags.feed(page)
    assert not [(t, a) for t, a in tags.tags if any(k.startswith("on") for k in a)], "a value opened a handler"
    assert sum(t == "script" for t, _ in tags.tags) == scripts
    assert not [a for t, a in tags.tags if t == "img" and not (a.get("src") or "").startswith("data:image/png")]
    return tags


def test_the_label_page_escapes_hostile_values_in_text_attributes_and_script(tmp_path):
    from curation.core.decompose import Triplet
    from curator_model.review import Candidate, write_review

    t = Triplet(
        np.zeros((8, 8, 3), np.uint8),
        np.zeros((8, 8, 3), np.uint8),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((8, 8), np.uint8),
        np.zeros((8, 8), np.uint8),
    )
    title = str(tmp_path / HOSTILE)  # the OUT path
    cands = [Candidate(f"photo-{HOSTILE}", t, 0.5, "ghost", 0.4, True, True, kept=f"caption {HOSTILE}")]
    page_path = tmp_path / "labels.html"
    write_review(page_path, cands, 0.5, title, rejects=cands)
    page = page_path.read_text()
    tags = assert_inert(page, scripts=1)
    (script,) = tags.scripts
    assert "</" not in script and "<!--" not in script
    literal = script.split('"curator-labels:" + ', 1)[1].split(";", 1)[0]
    assert json.loads(literal) == title  # the value still arrives whole
    assert [a["data-key"] for t, a in tags.tags if t == "div" and "data-key" in a] == [f"photo-{HOSTILE}"] * 2


def test_the_run_report_escapes_hostile_values(tmp_path):
    from curation.finalize import finalize
    from curation.layout import OutDir
    from curation.report import write_report
    from curation.runinfo import start_run
    from curation.sink import write_shard
    from devdata.layered_shards import _rows

    out = OutDir(tmp_path / HOSTILE.replace("/", "_"))  # the OUT folder's name
    rows = _rows(3, (48,), 0)
    for r in rows:
        r["label"] = HOSTILE  # a category
        r["caption_composite"] = r["caption_foreground"] = f"a {HOSTILE}"  # captions
        r["source_ref"] = f"/photos/{HOSTILE}.jpg"  # a file name
    rows[0]["reject_detail"] = f"{HOSTILE}.jpg cannot be read"
    write_shard(out.shards, "r000-000000", rows)
    finalize(out)
    start_run(out.run_json, small_config(out.root), "r000", 0, [f"{HOSTILE}.tar.tmp"])
    page = write_report(out).read_text()
    assert "a q" in page  # the gallery shows the captions
    assert_inert(page, scripts=0)


def test_a_killed_runs_ray_processes_are_ended_by_the_next_run(ray_session, tmp_path):
    import psutil

    from curation.pipeline import run
    from curation.raycluster import RAY_PROCESSES

    out = tmp_path / "out"
    sections = dict(
        sources=[{"type": "synthetic", "name": "synth", "count": 30, "size": 64, "seed": 5}], sink={"shard_size": 1}
    )
    write_config(tmp_path / "run.yaml", out, **sections)
    proc = curate("run", str(tmp_path / "run.yaml"))
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline and not list((out / "shards").glob("*_stats.json")):
        time.sleep(0.05)
    assert (out / "_work" / RAY_PROCESSES).exists()
    ray_procs = psutil.Process(proc.pid).children(recursive=True)
    assert len(ray_procs) >= 3
    proc.send_signal(signal.SIGKILL)  # the driver only, as a lost terminal or an OOM kill does
    proc.communicate()
    time.sleep(1)

    def alive() -> list[str]:
        live = []
        for p in ray_procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    live.append(" ".join(p.cmdline())[:150] or p.name())
            except psutil.Error:
                pass
        return live

    try:
        run(small_config(out, **sections))
        assert alive() == []
    finally:
        for p in ray_procs:
            try:
                p.kill()
            except psutil.Error:
                pass
