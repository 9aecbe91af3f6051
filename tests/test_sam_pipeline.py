"""SAM inside the real Ray pipeline: the actor pool loads the tiny checkpoint and every row is accounted for."""

from __future__ import annotations

import pandas as pd
import torch
from segment_anything.build_sam import _build_sam

from tests.conftest import small_config


def test_pipeline_with_a_sam_segmenter(ray_session, tmp_path):
    from curation.pipeline import run

    torch.manual_seed(0)
    ckpt = tmp_path / "sam_tiny.pth"
    torch.save(_build_sam(64, 2, 2, [1]).state_dict(), ckpt)
    cfg = small_config(
        tmp_path / "out",
        masks={
            "segmenter": "sam",
            "min_mask_agreement": 0.0,
            "resources": {"num_cpus": 0.5, "batch_size": 4, "concurrency": 1},
            "sam": {"checkpoint": str(ckpt), "model_type": "auto", "device": "cpu", "embed_batch_size": 2},
        },
    )
    cfg = cfg.model_copy(update={"sources": [cfg.sources[0].model_copy(update={"count": 3})]})
    result = run(cfg)
    s = result.stats
    assert s["ingested"] == s["accepted"] + s["rejected"] and s["ingested"] >= 3
    index = pd.read_parquet(result.out / "index.parquet")
    masks_rejects = index[index["reject_stage"] == "masks"]["reject_reason"]
    assert set(masks_rejects) <= {"empty_mask"}
    past_masks = index[(index["status"] == "ok") | index["reject_stage"].isin(["caption", "curate"])]
    assert len(past_masks) >= 1
    for meta in past_masks["meta"]:
        assert '"segmenter": "sam-auto"' in meta
