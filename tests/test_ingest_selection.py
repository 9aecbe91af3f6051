"""Instance selection: each rule excludes with its own reason code, and occluders count even when rejected."""

from __future__ import annotations

import numpy as np
import pytest

from curation.core.config import ConfigError, SelectionConfig, parse_config
from curation.core.reasons import Reason
from curation.core.schema import new_row
from stages.selection import box_overlap, exclusion, select_instances

H = W = 100
DEFAULTS = SelectionConfig()


def _row(i: int, mask: np.ndarray, **ann) -> dict:
    return new_row(f"t-1-{i}", "t", "ref", composite=np.zeros((H, W, 3), np.uint8), ann_mask=mask, ann=ann)


def _box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _verdicts(rows: list[dict], cfg: SelectionConfig = DEFAULTS) -> list[str]:
    select_instances(rows, cfg)
    return [r["reject_reason"] or "ok" for r in rows]


def test_each_rule_has_its_reason():
    rows = [
        _row(0, _box(10, 10, 30, 30)),  # fine
        _row(1, _box(50, 10, 70, 30), iscrowd=1),  # crowd
        _row(2, _box(80, 80, 81, 81)),  # 1 px: area fraction below 0.002
        _row(3, _box(0, 40, 20, 60)),  # touches the left border
        _row(4, _box(40, 40, 42, 80)),  # 2 px wide: too small
        _row(5, np.zeros((H, W), bool)),  # nothing
    ]
    assert _verdicts(rows) == ["ok", "crowd", "area_too_small", "touches_border", "too_small", "empty_mask"]


def test_area_too_large():
    assert _verdicts([_row(0, _box(2, 2, 98, 98))]) == ["area_too_large"]


def test_an_empty_mask_is_a_reason_even_with_no_area_floor():
    found = exclusion(np.zeros((H, W), bool), {}, None, SelectionConfig(min_area_frac=0))
    assert found is not None and found[0] == Reason.EMPTY_MASK


def test_touching_instances_occlude_each_other_within_the_margin():
    a, b = _box(10, 10, 40, 40), _box(41, 10, 70, 40)  # 1 px gap < 2 px margin
    assert _verdicts([_row(0, a), _row(1, b)]) == ["occluded", "occluded"]
    far = _box(50, 10, 80, 40)  # 10 px gap
    assert _verdicts([_row(0, a), _row(1, far)]) == ["ok", "ok"]
    # a tolerated overlap fraction lets the contact through
    cfg = SelectionConfig(max_overlap_frac=0.2)
    assert _verdicts([_row(0, a), _row(1, b)], cfg) == ["ok", "ok"]


def test_a_crowd_region_still_occludes_its_neighbour():
    person = _box(20, 20, 40, 60)
    crowd = _box(38, 20, 80, 60)
    assert _verdicts([_row(0, person), _row(1, crowd, iscrowd=1)]) == ["occluded", "crowd"]


def test_excluded_category_is_rejected_but_occludes():
    dog, person = _box(20, 20, 40, 60), _box(41, 20, 70, 60)
    rows = [_row(0, dog, category="dog"), _row(1, person, category="person", candidate=False)]
    assert _verdicts(rows) == ["occluded", "category_excluded"]


def test_bbox_overlap_rule():
    # an L-shaped object whose box contains another object that its pixels never touch
    ell = _box(10, 10, 60, 20) | _box(10, 10, 20, 60)
    inner = _box(35, 35, 50, 50)
    assert _verdicts([_row(0, ell), _row(1, inner)]) == ["ok", "ok"]
    cfg = SelectionConfig(max_bbox_overlap_frac=0.5)
    assert _verdicts([_row(0, ell), _row(1, inner)], cfg) == ["ok", "occluded"]
    assert box_overlap((0, 0, 10, 10), (5, 0, 10, 10), 0) == pytest.approx(0.5)
    assert box_overlap((0, 0, 10, 10), (12, 0, 10, 10), 2) == 0.0


def test_selection_config_is_strict():
    with pytest.raises(ConfigError, match="ingest.selection.max_overlap"):
        parse_config({"sources": [{"type": "synthetic"}], "ingest": {"selection": {"max_overlap": 0.1}}})
    with pytest.raises(ConfigError, match="min_area_frac"):
        parse_config({"sources": [{"type": "synthetic"}], "ingest": {"selection": {"min_area_frac": 0.7}}})
    with pytest.raises(ConfigError, match="sources.0.coco.images"):
        parse_config({"sources": [{"type": "coco", "annotations": "a.json"}]})
    with pytest.raises(ConfigError, match="exactly one of root or list_file"):
        parse_config({"sources": [{"type": "folder"}]})
