"""The production shadow backends (``sam``, ``exported``) through their real loading code, and the
detector's confidence reaching stage 4 (a shadow the detector does not trust is rejected as ``lost_shadow``).

The tiny models are built and saved by the tests: a random tiny SAM (its masks mean nothing: what is
tested is the prompting from the rule, loading, and the guarantees on the output) and an exported
"darkness" model whose output is known, so that the crop geometry of the exported backend is checked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything.build_sam import _build_sam

from curation.core.config import ConfigError, parse_config
from curation.core.config.masks import DetectorOptions
from curation.core.morphology import iou
from curation.core.schema import OK, REJECTED, get_json, new_row, set_image
from stages.shadows import build_detector
from stages.shadows.rule import RuleShadowDetector
from stages.shadows.sam import seed_points

TINY_SAM = (64, 2, 2, (1,))  # embed_dim, depth, heads, global-attention blocks


def _scene(size: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grey floor, a blue object, and its hard shadow to the right of its base."""
    rng = np.random.default_rng(0)
    image = np.clip(170 + rng.normal(0, 3, (size, size, 3)), 0, 255).astype(np.uint8)
    obj = np.zeros((size, size), bool)
    obj[30:80, 55:70] = True
    shadow = np.zeros_like(obj)
    shadow[72:84, 66:95] = True  # half the object's height long
    shadow &= ~obj
    image[shadow] = (image[shadow] * 0.45).astype(np.uint8)
    image[obj] = (40, 90, 160)
    return image, obj, shadow


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(_build_sam(TINY_SAM[0], TINY_SAM[1], TINY_SAM[2], list(TINY_SAM[3])).state_dict(), path)
    return str(path)


class Darkness(torch.nn.Module):
    """P(shadow) = how dark a pixel is (a stand-in for a trained detector with a known answer)."""

    def forward(self, image: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(40 * (0.5 - image.mean(dim=1, keepdim=True))) * (1 - obj)


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory) -> str:
    h, w = torch.export.Dim("h", min=8, max=4096), torch.export.Dim("w", min=8, max=4096)
    program = torch.export.export(
        Darkness(), (torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)), dynamic_shapes=({2: h, 3: w}, {2: h, 3: w})
    )
    path = tmp_path_factory.mktemp("exported") / "darkness.pt2"
    torch.export.save(program, str(path))
    return str(path)


def test_seed_points_lie_deep_inside_the_region_and_apart():
    region = np.zeros((40, 60), bool)
    region[10:30, 5:55] = True
    pts = seed_points(region, 3)
    assert len(pts) == 3 and all(region[y, x] for x, y in pts)
    assert min(abs(a[0] - b[0]) for i, a in enumerate(pts) for b in pts[i + 1 :]) >= 5
    assert seed_points(np.zeros((10, 10), bool)) == []


def test_sam_backend_prompts_sam_inside_the_rule_shadow(tiny_sam, monkeypatch):
    image, obj, shadow = _scene()
    det = build_detector(DetectorOptions(backend="sam", checkpoint=tiny_sam, model_type="auto", device="cpu"))
    prompts = []
    segment = det.segmenter.segment
    monkeypatch.setattr(det.segmenter, "segment", lambda ps: prompts.extend(ps) or segment(ps))
    found = det.detect_scored(image, obj)
    rule = RuleShadowDetector().detect(image, obj)
    (p,) = prompts
    positive = p.points[p.points[:, 2] == 1].astype(int)
    negative = p.points[p.points[:, 2] == 0].astype(int)
    assert len(positive) >= 1 and all(rule[y, x] for x, y, _ in positive)  # seeds inside the rule's shadow
    assert len(negative) == 1 and obj[negative[0, 1], negative[0, 0]]  # and one on the object, negative
    assert np.array_equal(p.mask, rule)
    assert not (found.mask & obj).any() and 0.0 <= found.confidence <= 1.0
    assert det.detect(image, obj).shape == obj.shape
    prompts.clear()  # nothing shadow-like: the rule's answer stands and SAM is not asked
    flat = np.full_like(image, 170)
    flat[obj] = (40, 90, 160)
    assert not det.detect_scored(flat, obj).mask.any() and prompts == []


def test_exported_backend_loads_a_program_and_maps_its_crop_back(exported_model):
    image, obj, shadow = _scene()
    det = build_detector(DetectorOptions(backend="exported", checkpoint=exported_model, device="cpu"))
    found = det.detect_scored(image, obj)
    assert iou(found.mask, shadow) > 0.9 and not (found.mask & obj).any()
    assert found.confidence > 0.9  # the stand-in model is sure about every pixel near the object
    big = np.zeros((300, 400, 3), np.uint8) + 170  # the same scene in a larger photo: same answer, shifted
    big[100:228, 200:328] = image
    bobj = np.zeros((300, 400), bool)
    bobj[100:228, 200:328] = obj
    assert np.array_equal(det.detect(big, bobj)[100:228, 200:328], found.mask)


def test_backends_fail_at_start_up_with_a_clear_message(tmp_path):
    with pytest.raises(ConfigError, match="masks.detector.checkpoint"):
        parse_config({"sources": [{"type": "synthetic", "count": 1}], "masks": {"detector": {"backend": "sam"}}})
    (tmp_path / "bad.pt2").write_bytes(b"not a program")
    with pytest.raises(RuntimeError, match="bad.pt2 cannot be loaded .masks.detector.checkpoint."):
        build_detector(DetectorOptions(backend="exported", checkpoint=tmp_path / "bad.pt2", device="cpu"))
    from stages.masks import MasksAndLayers

    cfg = parse_config(
        {
            "sources": [{"type": "synthetic", "count": 1}],
            "masks": {"detector": {"backend": "exported", "checkpoint": str(tmp_path / "missing.pt2")}},
        }
    )
    with pytest.raises(FileNotFoundError, match="masks.detector.checkpoint"):
        MasksAndLayers.preflight(cfg)


def test_rule_confidence_is_high_when_the_shadow_is_found_and_low_when_it_is_missed():
    image, obj, shadow = _scene()
    assert RuleShadowDetector().detect_scored(image, obj).confidence > 0.9
    # a shadow much longer than the rule's median window darkens its lit estimate: found only at a wider view
    long = image.copy()
    wide = np.zeros_like(obj)
    wide[70:100, 20:128] = True
    wide &= ~obj
    long[wide] = (long[wide] * 0.45).astype(np.uint8)
    narrow = RuleShadowDetector(window=0.3)
    missed = narrow.detect_scored(long, obj)
    assert iou(missed.mask, wide) < 0.5 and missed.confidence < 0.5


def _row_with_detected_shadow(confidence: float):
    image, obj, shadow = _scene()
    row = new_row(key="k-000000-0", source="s", source_ref="test", psnr=60.0)
    fg = np.dstack([image, np.where(obj, 255, 0).astype(np.uint8)])
    for name, value in (
        ("composite", image),
        ("background", image),
        ("foreground", fg),
        ("mask", obj.astype(np.uint8) * 255),
        ("effect", np.zeros_like(obj, np.uint8)),
    ):
        set_image(row, name, value)
    row["meta"] = {"masks": {"effects": "detector-rule", "shadow_confidence": confidence}}
    return row


def test_stage4_rejects_a_shadow_the_detector_does_not_trust_as_lost_shadow(tmp_path):
    from stages.curate import Curate

    cfg = parse_config(
        {
            "run": {"out": str(tmp_path)},
            "sources": [{"type": "synthetic", "count": 1}],
            "curate": {"backend": "physical", "threshold": 0.0, "min_shadow_confidence": 0.5},
        }
    )
    low, high = _row_with_detected_shadow(0.2), _row_with_detected_shadow(0.9)
    Curate(cfg).process_isolated([low, high])
    assert low["status"] == REJECTED and low["reject_reason"] == "low_curator_score"
    assert "lost_shadow" in low["reject_detail"] and get_json(low, "meta")["curate"]["likely_failure"] == "lost_shadow"
    assert high["status"] == OK
    off = _row_with_detected_shadow(0.2)
    cfg_off = cfg.model_copy(update={"curate": cfg.curate.model_copy(update={"min_shadow_confidence": 0.0})})
    Curate(cfg_off).process_isolated([off])
    assert off["status"] == OK


def test_stage2_records_the_detector_confidence(tmp_path):
    from stages.masks import MasksAndLayers
    from stages.sources.synthetic import SyntheticSource

    cfg = parse_config(
        {
            "sources": [{"type": "synthetic", "count": 2, "size": 96, "seed": 1, "paired_fraction": 0.0}],
            "masks": {"effects": "detector"},
        }
    )
    src = SyntheticSource(cfg.sources[0])
    rows = [r for u in src.units() for r in src.load(u, 10**8)]
    MasksAndLayers(cfg).process(rows)
    metas = [get_json(r, "meta")["masks"] for r in rows if r["status"] == OK]
    assert metas and all(0 <= m["shadow_confidence"] <= 1 and m["effects"] == "detector-rule" for m in metas)
