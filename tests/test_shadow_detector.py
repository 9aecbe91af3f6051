"""The single-image shadow detector (composite + object mask → the object's shadow) against ground truth.

Regression bounds, below what the shipped parameters measure here, so that a real regression fails:
- the 3 real DESOBA targets: mean IoU >= 0.75 (measured 0.854), every sample >= 0.7 (0.78..0.91). In-sample:
  these photos chose the detector's parameters, so this pins behaviour, it is not an accuracy figure; the
  held-out one is the leave-one-photo-out IoU in docs/layers.md;
- synthetic 256-px scenes (seed 0, 8 scenes, 12 shadows): mean IoU >= 0.3 (measured 0.54).
"""

from __future__ import annotations

import numpy as np

from curation.core.config import MasksConfig
from curation.core.config.curate import CurateConfig
from curation.core.morphology import iou
from curation.eval_layers import desoba_truths, synthetic_truths
from stages.shadows import build_detector
from stages.shadows.rule import RuleShadowDetector


def test_detector_iou_on_its_desoba_tuning_photos_stays_at_its_measured_in_sample_value():
    det = RuleShadowDetector()
    scores = [iou(det.detect(t.composite, t.mask), t.effect) for t in desoba_truths()]
    assert len(scores) == 3
    assert np.mean(scores) >= 0.75, scores
    assert min(scores) >= 0.7, scores


def test_detector_iou_on_synthetic_scenes_stays_at_its_measured_value():
    det = build_detector(MasksConfig().detector)
    scores = [iou(det.detect(t.composite, t.mask), t.effect) for t in synthetic_truths(8, 256, 0) if t.effect.any()]
    assert np.mean(scores) >= 0.3, scores


def test_no_shadow_found_where_there_is_none():
    rng = np.random.default_rng(0)
    image = np.clip(150 + rng.normal(0, 4, (128, 128, 3)), 0, 255).astype(np.uint8)
    obj = np.zeros((128, 128), bool)
    obj[40:80, 50:70] = True
    image[obj] = (200, 30, 30)
    det = RuleShadowDetector()
    assert det.detect(image, obj).sum() == 0
    assert det.detect(image, np.zeros_like(obj)).sum() == 0


def _cast(length: int, width: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.full((128, width, 3), 180, np.uint8)
    obj = np.zeros((128, width), bool)
    obj[30:80, 55:70] = True
    shadow = np.zeros_like(obj)
    shadow[74:84, 66 : 70 + length] = True
    shadow &= ~obj
    image[shadow] = (image[shadow] * 0.45).astype(np.uint8)
    image[obj] = (40, 90, 160)
    return image, obj, shadow


def test_a_cast_shadow_is_found_and_never_overlaps_the_object():
    image, obj, shadow = _cast(25)  # half the object's height
    found = RuleShadowDetector().detect_scored(image, obj)
    assert not (found.mask & obj).any()
    assert iou(found.mask, shadow) >= 0.9 and found.confidence > 0.9


def test_a_shadow_beyond_the_search_radius_is_cut_and_says_so():
    """The tuned search radius (1.2 object heights, from the real instances) cuts a long evening shadow;
    the confidence sees the rest at its wider view and drops well below a whole shadow's. Not below the shipped
    threshold (0.612, chosen leave-one-photo-out): over half of this one is found, and a longer one keeps the same
    confidence (the wider view stops at 1.5 search radii), a known weakness (docs/layers.md)."""
    image, obj, shadow = _cast(110, 256)
    found = RuleShadowDetector().detect_scored(image, obj)
    assert 0.5 < iou(found.mask, shadow) < 0.9
    assert found.confidence < 0.8 < RuleShadowDetector().detect_scored(*_cast(25)[:2]).confidence


def test_a_real_shadow_the_rule_misses_gets_a_confidence_below_the_curators_threshold():
    """DESOBAv2 photo 06: two small objects whose long, soft shadows the rule misses with a narrow view (median
    window 0.8, search 0.6 object sizes, ratio 0.84: its defaults before the leave-one-photo-out tuning over every
    real instance, and a setting a user may choose); stage 4 must reject both as lost shadows rather than ship
    layers without them. The shipped defaults find these shadows (IoU 0.75), so no real instance here is missed
    by them: this is the only real miss the confidence can be tested on."""
    from curation.core.data import DESOBAV2
    from curation.core.realdata import desoba_instances

    limit = CurateConfig().min_shadow_confidence
    photo = [i for i in desoba_instances(DESOBAV2, "desobav2") if i.photo == "desobav2/06"]
    assert [i.name for i in photo] == ["desobav2/06/target", "desobav2/06/other-1"]
    narrow = RuleShadowDetector(ratio=0.84, window=0.8, search=0.6)
    for inst in photo:
        found = narrow.detect_scored(inst.composite, inst.mask)
        assert iou(found.mask, inst.shadow) < 0.3 and found.confidence < limit, inst.name
        shipped = RuleShadowDetector().detect_scored(inst.composite, inst.mask)
        assert iou(shipped.mask, inst.shadow) > 0.6, inst.name
