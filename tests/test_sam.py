"""The SAM path through its real loading code, with a tiny SAM (small image encoder) saved by the test.

The tiny model is random, so its masks mean nothing; what is tested is the machinery: loading (geometry
read from the weights, model-type check, clear start-up errors), batched embeddings equal to one-by-one
embeddings, prompts → one mask per prompt at image size, the multimask choice, and the stage and the
proposal mode running on it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything.build_sam import _build_sam

from curation.core.config import ConfigError, parse_config
from curation.core.morphology import box_iou
from curation.core.schema import OK, get_json
from stages.segmenters import Prompt
from stages.segmenters.sam import SamSegmenter, choose
from stages.segmenters.sam_loader import SamCheckpointError, encoder_geometry, load_sam
from stages.sources.synthetic import SyntheticSource

TINY = (64, 2, 2, (1,))  # embed_dim, depth, heads, global-attention blocks


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    sam = _build_sam(TINY[0], TINY[1], TINY[2], list(TINY[3]))
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(sam.state_dict(), path)
    return str(path)


def _image(seed: int, size: int = 96) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size + 16, 3), dtype=np.uint8)


def test_loader_reads_the_geometry_from_the_weights(tiny_checkpoint):
    model = load_sam(tiny_checkpoint, "auto", "cpu")
    assert encoder_geometry(model.state_dict()) == TINY
    assert not model.training
    reference = torch.load(tiny_checkpoint, weights_only=True)
    key = "image_encoder.blocks.0.attn.qkv.weight"
    assert torch.equal(model.state_dict()[key], reference[key])


def test_loader_rejects_a_mislabelled_missing_or_broken_checkpoint(tiny_checkpoint, tmp_path):
    with pytest.raises(SamCheckpointError, match="not vit_b"):
        load_sam(tiny_checkpoint, "vit_b")
    with pytest.raises(SamCheckpointError, match="does not exist"):
        load_sam(tmp_path / "nope.pth")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(SamCheckpointError, match="cannot be read"):
        load_sam(broken, "auto")


def test_batched_embeddings_match_one_by_one(tiny_checkpoint):
    batched = SamSegmenter(tiny_checkpoint, "auto", "cpu", embed_batch_size=3)
    single = SamSegmenter(tiny_checkpoint, "auto", "cpu", embed_batch_size=1)
    images = [_image(i) for i in range(3)]
    for (a, size_a), (b, size_b) in zip(batched.embed(images), single.embed(images), strict=True):
        assert size_a == size_b and a.shape == (1, 256, 64, 64)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_bf16_autocast_runs_close_to_fp32(tiny_checkpoint):
    fp32 = SamSegmenter(tiny_checkpoint, "auto", "cpu")
    bf16 = SamSegmenter(tiny_checkpoint, "auto", "cpu", dtype="bfloat16")
    ((a, _),) = fp32.embed([_image(0)])
    ((b, _),) = bf16.embed([_image(0)])
    assert b.dtype == torch.float32
    assert (a - b).abs().mean() < 0.05 * a.abs().mean()


def test_one_mask_per_prompt_and_one_embedding_per_image(tiny_checkpoint):
    seg = SamSegmenter(tiny_checkpoint, "auto", "cpu", embed_batch_size=4)
    calls = []
    seg.model.image_encoder.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    a, b = _image(1), _image(2)
    prompts = [
        Prompt(a, "a", box=(10, 10, 40, 30)),
        Prompt(a, "a", box=(50, 40, 30, 30), points=np.array([[60, 50, 1]], np.float32)),
        Prompt(b, "b", box=(5, 5, 60, 60)),
        Prompt(b, "b"),
    ]
    out = seg.segment(prompts)
    assert calls == [2]  # two distinct images, one encoder pass
    assert len(out) == 4 and out[3].mask is None  # no box, no points: nothing to prompt with
    for s in out[:3]:
        assert s.mask is None or (s.mask.shape == a.shape[:2] and s.mask.dtype == bool)
        assert 0.0 <= s.score <= 1.0


def test_choice_prefers_agreement_with_the_annotation():
    ann = np.zeros((20, 20), bool)
    ann[5:15, 5:15] = True
    part = np.zeros_like(ann)
    part[5:10, 5:10] = True
    whole = ann.copy()
    surroundings = ~ann
    masks = np.stack([part, whole, surroundings])
    scores = np.array([0.9, 0.7, 0.95])
    assert np.array_equal(choose(masks, scores, Prompt(ann, "x", mask=ann)).mask, whole)
    assert np.array_equal(choose(masks, scores, Prompt(ann, "x", box=(5, 5, 10, 10))).mask, whole)
    assert choose(np.zeros((3, 20, 20), bool), scores, Prompt(ann, "x", mask=ann)).mask is None
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_stage_runs_sam_and_fails_at_start_up_without_weights(tiny_checkpoint, tmp_path):
    from stages.masks import MasksAndLayers

    src_cfg = {"type": "synthetic", "count": 2, "size": 96, "seed": 1, "paired_fraction": 0.5}
    cfg = parse_config(
        {
            "sources": [src_cfg],
            "masks": {
                "segmenter": "sam",
                "min_mask_agreement": 0.0,
                "sam": {"checkpoint": tiny_checkpoint, "model_type": "auto", "device": "cpu", "embed_batch_size": 2},
            },
        }
    )
    stage = MasksAndLayers(cfg)
    src = SyntheticSource(cfg.sources[0])
    rows = [r for u in src.units() for r in src.load(u, 10**8)]
    stage.process(rows)
    for row in rows:
        if row["status"] == OK:
            meta = get_json(row, "meta")["masks"]
            assert meta["segmenter"] == "sam-auto" and 0 <= meta["segmenter_score"] <= 1
        else:
            assert row["reject_reason"] == "empty_mask"
    missing = cfg.masks.model_copy(update={"sam": cfg.masks.sam.model_copy(update={"checkpoint": tmp_path / "x.pth"})})
    with pytest.raises(SamCheckpointError, match="does not exist"):
        MasksAndLayers(cfg.model_copy(update={"masks": missing}))
    with pytest.raises(ConfigError, match="masks.sam.checkpoint"):
        parse_config({"sources": [src_cfg], "masks": {"segmenter": "sam"}})


def test_sam_proposals_from_a_local_checkpoint(tiny_checkpoint):
    from stages.segmenters.proposals import propose_objects

    masks = propose_objects(
        _image(3, 64), 3, backend="sam", checkpoint=tiny_checkpoint, model_type="auto", points_per_side=2
    )
    assert len(masks) <= 3
    for m in masks:
        assert m.shape == (64, 80) and m.dtype == bool
        assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
