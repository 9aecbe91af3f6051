"""The whole pipeline on fixture datasets in every real format, with a few bad inputs mixed in."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq

from curation.pipeline import run
from curation.verify import verify
from devdata.coco_synth import write_dataset
from tests.conftest import small_config


def test_pipeline_runs_on_coco_soba_paired_and_folder_sources(ray_session, tmp_path):
    coco = write_dataset(tmp_path / "coco", n_images=3, objects_per_image=2, size=(160, 120), seed=5)
    soba = write_dataset(tmp_path / "soba", n_images=2, objects_per_image=2, size=(160, 120), seed=6, soba=True)
    (tmp_path / "coco" / "val2017" / "000000000001.png").write_bytes(b"")  # one broken photo
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(tmp_path / "coco" / "val2017" / "000000000000.jpg", photos / "a.jpg")
    cfg = small_config(
        tmp_path / "out",
        sources=[
            {"type": "coco", "name": "coco", "annotations": str(coco), "images": str(tmp_path / "coco" / "val2017")},
            {"type": "soba", "name": "soba", "annotations": str(soba), "images": str(tmp_path / "soba" / "val2017")},
            {"type": "paired", "name": "desoba", "root": "desoba"},
            {"type": "folder", "name": "web", "root": str(photos), "max_proposals": 2},
        ],
    )
    result = run(cfg)
    s = result.stats
    assert s["ingested"] == s["accepted"] + s["rejected"]
    assert set(s["by_source"]) == {"coco", "soba", "desoba", "web"}
    # coco: 3 images × 2 objects, one image unreadable (1 row); soba: 2 × 2 objects; desoba: 3
    assert s["by_source"]["coco"] == 5 and s["by_source"]["soba"] == 4 and s["by_source"]["desoba"] == 3
    index = pq.read_table(result.out / "index.parquet").to_pylist()
    by_key = {r["key"]: r for r in index}
    assert by_key["coco-2"]["reject_reason"] == "empty_file"
    assert by_key["coco-3-6"]["reject_reason"] == "crowd"  # the fixture's crowd region (uncompressed RLE)
    # the folder photo is the same picture as coco image 1: the cluster-wide dedupe keeps one of the two
    web = [r for r in index if r["source"] == "web"]
    twin = [r for r in index if r["key"].startswith("coco-1-")]
    dup = [all(r["reject_reason"] == "duplicate_image" for r in rows) for rows in (web, twin)]
    assert web and twin and sorted(dup) == [False, True]
    accepted = [r for r in index if r["status"] == "ok"]
    assert {r["source"] for r in accepted} >= {"coco", "soba", "desoba"}
    soba_ok = [json.loads(r["ann"]) for r in accepted if r["source"] == "soba"]
    assert soba_ok and all(a["effect_annotated"] for a in soba_ok)
    rep = verify(result.out, cfg.verify.psnr_floor)
    assert rep.ok, rep.problems
