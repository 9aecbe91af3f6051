"""End to end on a real local Ray: shards verify, read back as RGBA with webdataset, and runs resume."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from curation.layout import OutDir
from curation.pipeline import run
from curation.verify import verify
from tests.conftest import small_config


@pytest.fixture(scope="module")
def demo_run(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    cfg = small_config(
        out,
        sources=[
            {"type": "synthetic", "name": "synth", "count": 12, "size": 96, "seed": 3, "paired_fraction": 0.5},
            {"type": "paired", "name": "desoba", "root": "desoba"},
        ],
    )
    return cfg, run(cfg)


def test_counts_reconcile_and_verify_passes(demo_run):
    cfg, result = demo_run
    s = result.stats
    assert s["ingested"] == s["accepted"] + s["rejected"] > 0
    assert s["accepted"] >= 10
    assert s["by_source"]["desoba"] == 3
    rep = verify(result.out, cfg.verify.psnr_floor)
    assert rep.ok, rep.problems
    assert rep.samples == s["accepted"]
    index = pq.read_table(result.out / "index.parquet")
    assert index.num_rows == s["ingested"]
    assert pq.read_table(result.out / "rejects.parquet").num_rows == s["rejected"]
    info = json.loads((result.out / "run.json").read_text())
    assert info["history"][0]["end"] and info["versions"]["ray"]
    assert "<img" in (result.out / "report.html").read_text()


def test_webdataset_reads_rgba_foregrounds_with_shadow_alpha(demo_run):
    _, result = demo_run
    urls = sorted(str(p) for p in (result.out / "shards").glob("*.tar"))
    n, partial = 0, 0
    for sample in wds.WebDataset(urls, shardshuffle=False).decode("pilrgba"):
        fg = sample["foreground.png"]
        assert fg.mode == "RGBA"
        assert "." not in sample["__key__"]
        alpha = np.asarray(fg)[..., 3]
        assert alpha.max() == 255  # the object is opaque
        partial += int(((alpha > 0) & (alpha < 255)).sum() > 20)  # shadow pixels carry partial alpha
        meta = sample["json"]
        assert meta["recomposite_psnr"] >= 35 and all(meta["captions"].values())
        n += 1
    assert n == demo_run[1].stats["accepted"]
    assert partial >= n // 2


def test_rerun_resumes_without_duplicates(demo_run, ray_session):
    cfg, first = demo_run
    again = run(cfg)
    assert again.segment == "r001"
    assert again.stats["ingested"] == first.stats["ingested"]  # nothing redone, nothing lost
    assert verify(again.out, cfg.verify.psnr_floor).ok


def test_partial_run_then_resume_adds_exactly_the_rest(ray_session, tmp_path):
    cfg = small_config(tmp_path, run={"out": str(tmp_path), "limit": 4})
    part = run(cfg)
    full = run(small_config(tmp_path))
    keys = pq.read_table(tmp_path / "index.parquet", columns=["key"]).column("key").to_pylist()
    assert len(keys) == len(set(keys)) == full.stats["ingested"] > part.stats["ingested"]
    assert verify(tmp_path, 35.0).ok


def test_torn_shard_is_removed_and_not_counted(ray_session, tmp_path):
    out = OutDir(tmp_path)
    out.create()
    (out.shards / "r000-000007.tar").write_bytes(b"half a tar")
    (out.shards / "r000-000007.parquet.tmp").write_bytes(b"x")
    result = run(small_config(tmp_path, run={"out": str(tmp_path), "limit": 2}))
    assert not (out.shards / "r000-000007.tar").exists()
    info = json.loads((tmp_path / "run.json").read_text())
    assert "r000-000007.tar" in info["history"][0]["removed_torn_files"]
    assert verify(tmp_path, 35.0).ok and result.stats["ingested"] > 0


def test_verify_reports_damage(demo_run, tmp_path):
    import shutil

    _, result = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(result.out, copy)
    stats = json.loads((copy / "stats.json").read_text())
    stats["accepted"] += 1
    (copy / "stats.json").write_text(json.dumps(stats))
    tar = sorted((copy / "shards").glob("*.tar"))[0]
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 3])
    rep = verify(copy, 35.0)
    assert not rep.ok
    assert any("stats.json accepted" in p for p in rep.problems)
    assert any(tar.stem in p for p in rep.problems)
