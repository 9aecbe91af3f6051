"""The learned shadow detector's training package (``shadow_model``): the synthetic shadows it learns from,
a tiny network trained a few steps, exported and served by the real ``exported`` backend in stage 2 on a
real local Ray, and the shipped checkpoint on a real photo."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from curation.core.config.masks import DetectorOptions
from curation.core.morphology import dilate
from curation.core.realdata import every_real_instance
from shadow_model import synth
from shadow_model.network import NetSpec, ShadowNet, export
from shadow_model.train import CARD_NAME, CHECKPOINT, CHECKPOINT_NAME, fit
from stages.shadows import build_detector
from tests.conftest import small_config

TINY = NetSpec(model_kwargs={"channels": [8, 8, 16, 16], "stem_width": 8}, size=48, decoder=8)


def _pillar() -> np.ndarray:
    alpha = np.zeros((120, 120), np.float32)
    alpha[30:80, 50:62] = 1.0
    return alpha


def test_the_matte_starts_at_the_footprint_and_falls_along_the_light():
    alpha = _pillar()
    for shear, squash in ((1.0, 0.6), (-1.2, -0.5), (0.4, -1.0)):
        matte, _ = synth.cast(alpha, np.random.default_rng(0), (shear, squash))
        shadow = (matte > 0.5) & (alpha < 0.5)
        assert shadow.sum() > 100
        footprint = np.zeros_like(shadow)
        footprint[79, 50:62] = True
        assert (dilate(footprint, 3) & shadow).any()  # attached at the base, not floating
        ys, xs = np.nonzero(shadow)
        assert np.sign(xs.mean() - 56) == np.sign(shear)  # leans away from the light
        assert np.sign(79 - ys.mean()) == np.sign(squash)  # behind the object (up the frame) or towards us


def test_shade_darkens_only_under_the_matte_and_a_little_bluer():
    ground = np.random.default_rng(1).uniform(0.3, 0.9, (120, 120, 3)).astype(np.float32)
    matte, _ = synth.cast(_pillar(), np.random.default_rng(2), (1.0, 0.6))
    out = synth.shade(ground, matte, np.random.default_rng(3))
    assert np.array_equal(out[matte == 0], ground[matte == 0])
    under = matte > 0.9
    ratio = (out[under] / ground[under]).mean(0)
    assert (ratio < 0.8).all() and ratio[2] >= ratio[0]


def test_a_synthetic_sample_labels_the_target_shadow_at_its_object():
    grounds = synth.photo_grounds(("skimage:gravel", "skimage:brick"))
    rng = np.random.default_rng(4)
    found = 0
    for _ in range(12):
        image, obj, shadow = synth.scene_sample(rng, grounds, grounds, [])
        assert image.shape == (synth.SIZE, synth.SIZE, 3) and obj.shape == shadow.shape == (synth.SIZE,) * 2
        assert not ((shadow > 0.5) & (obj > 0.5)).any()
        if (shadow > 0.5).sum() > 20:
            found += 1
            assert (dilate(obj > 0.5, 4) & (shadow > 0.5)).any()
    assert found >= 6


def test_samples_are_cached_by_content(tmp_path):
    grounds = synth.photo_grounds(("skimage:gravel",))
    calls = []

    def make():
        calls.append(1)
        return synth.synthesize(3, 0, grounds, grounds, [])

    key = synth.content_key("t", 3, 0, grounds)
    first, again = synth.cached(tmp_path, key, make), synth.cached(tmp_path, key, make)
    assert len(calls) == 1 and np.array_equal(first.image, again.image)
    assert synth.content_key("t", 3, 1, grounds) != key


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    grounds = synth.photo_grounds(("skimage:gravel", "skimage:brick"))
    data = synth.synthesize(16, 0, grounds, grounds, [])
    torch.manual_seed(0)
    model = fit(ShadowNet(TINY), data, steps=3, lr=3e-3, seed=0, batch=4)
    return export(model, tmp_path_factory.mktemp("shadow") / "tiny.pt2")


def test_a_tiny_trained_network_exports_and_serves_any_crop_size(tiny_checkpoint):
    det = build_detector(DetectorOptions(backend="exported", checkpoint=tiny_checkpoint, device="cpu"))
    inst = next(i for i in every_real_instance() if i.name == "desoba/05/target")
    found = det.detect_scored(inst.composite, inst.mask)
    assert found.mask.shape == inst.mask.shape and not (found.mask & inst.mask).any()
    assert 0.0 <= found.confidence <= 1.0


def test_stage2_serves_the_trained_network_on_ray(ray_session, tiny_checkpoint, tmp_path):
    from curation.pipeline import run

    cfg = small_config(
        tmp_path / "out",
        masks={
            "effects": "detector",
            "detector": {"backend": "exported", "checkpoint": str(tiny_checkpoint), "device": "cpu"},
            "resources": {"num_cpus": 0.5, "batch_size": 4, "concurrency": 1},
        },
    )
    cfg = cfg.model_copy(update={"sources": [cfg.sources[0].model_copy(update={"count": 3, "paired_fraction": 0.0})]})
    result = run(cfg)
    s = result.stats
    assert s["ingested"] == s["accepted"] + s["rejected"] and s["ingested"] >= 3
    index = pd.read_parquet(result.out / "index.parquet")
    past_masks = index[(index["status"] == "ok") | index["reject_stage"].isin(["caption", "curate"])]
    assert len(past_masks) >= 1
    for meta in past_masks["meta"]:
        masks = json.loads(meta)["masks"]
        assert masks["effects"] == "detector-exported:tiny.pt2" and 0 <= masks["shadow_confidence"] <= 1


@pytest.mark.skipif(not (CHECKPOINT / CHECKPOINT_NAME).exists(), reason="no shipped checkpoint")
def test_the_shipped_network_finds_a_real_shadow():
    """A load-and-serve check (the shipped network was fine-tuned on every real photo; its quality figures are the
    held-out folds' in the card)."""
    card = json.loads((CHECKPOINT / CARD_NAME).read_text())
    assert card["checkpoint"] == CHECKPOINT_NAME and card["held_out"]["folds"]["n"] >= 20
    det = build_detector(DetectorOptions(backend="exported", checkpoint=CHECKPOINT / CHECKPOINT_NAME, device="cpu"))
    inst = next(i for i in every_real_instance() if i.name == "desoba/05/target")
    found = det.detect_scored(inst.composite, inst.mask)
    assert found.mask.any() and not (found.mask & inst.mask).any()
