"""Stage 2 reads the photo's light from its other annotated instances: ingest gives every row of a photo the label
image of its instances (one array, one copy between actors), and the detector's confidence drops for a shadow that
points against the others'. A row without it (one instance per photo: folders, paired sets) is answered as before.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curation.core.config import parse_config
from curation.core.config.curate import CurateConfig
from curation.core.instance_labels import label_image, other_masks
from curation.core.schema import OK, get_json, new_row, rows_to_table, table_rows
from stages.ingest import attach_photo_instances
from stages.masks import MasksAndLayers
from stages.shadows.rule import RuleShadowDetector

BASE_Y = 120


def _post(x: int) -> np.ndarray:
    m = np.zeros((160, 240), bool)
    m[BASE_Y - 50 : BASE_Y, x : x + 12] = True
    return m


def _photo() -> tuple[np.ndarray, list[np.ndarray]]:
    """Three posts on grey ground: the outer two cast their shadows to the right; the middle one stands beside
    a dark patch of tarmac on its left that touches its base (it casts no visible shadow of its own)."""
    rng = np.random.default_rng(0)
    image = np.clip(170 + rng.normal(0, 3, (160, 240, 3)), 0, 255).astype(np.uint8)
    posts = [_post(30), _post(110), _post(190)]
    dark = np.zeros((160, 240), bool)
    dark[BASE_Y - 8 : BASE_Y + 2, 42:72] = True  # shadows to the right of the outer posts
    dark[BASE_Y - 8 : BASE_Y + 2, 202:232] = True
    dark[BASE_Y - 8 : BASE_Y + 2, 80:110] = True  # tarmac left of the middle one
    image[dark] = (image[dark] * 0.45).astype(np.uint8)
    for p in posts:
        image[p] = (40, 90, 160)
    return image, posts


def _rows(image: np.ndarray, posts: list[np.ndarray]) -> list[dict]:
    return [
        new_row(f"p-1-{k}", "p", "ref", composite=image, ann_mask=m, ann={"bbox": [0, 0, 0, 0]})
        for k, m in enumerate(posts)
    ]


def _stage(**light) -> MasksAndLayers:
    masks = {"effects": "detector", "quality": {"enabled": False}, "detector": {"light": light}}
    return MasksAndLayers(parse_config({"sources": [{"type": "synthetic"}], "masks": masks}))


def _middle(rows: list[dict]) -> dict:
    assert rows[1]["status"] == OK, rows[1]["reject_detail"]
    return get_json(rows[1], "meta")["masks"]


def test_the_label_image_names_each_instance_and_lists_the_others_largest_first():
    a, b, c = np.zeros((8, 8), bool), np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    a[0:2, 0:2], b[4:8, 4:8], c[0:1, 6:7] = True, True, True
    labels, ids = label_image([a, None, b, np.zeros((8, 8), bool), c])
    assert labels is not None and labels.dtype == np.uint8 and ids == [1, 0, 2, 0, 3]
    assert [k for k, _ in other_masks(labels, 1, 8)] == [2, 3] and [k for k, _ in other_masks(labels, 1, 1)] == [2]
    assert label_image([a, None])[0] is None  # one instance: nothing to read the light from


def test_the_others_light_lowers_the_confidence_of_a_wrong_way_shadow_below_the_threshold():
    image, posts = _photo()
    limit = CurateConfig().min_shadow_confidence
    own = RuleShadowDetector().detect_scored(image, posts[1])
    assert own.confidence > limit and own.mask[BASE_Y - 4, 85]  # alone, the tarmac passes for its shadow

    rows = _rows(image, posts)
    attach_photo_instances(rows)
    assert rows[0]["ann_instances"] is not None and get_json(rows[1], "ann")["photo_instance"] == 2
    table = rows_to_table(rows)
    assert pa.types.is_dictionary(table.schema.field("ann_instances").type)
    assert sum(len(c.dictionary) for c in table.column("ann_instances").chunks) == 1  # one copy for the photo
    rows = table_rows(table)
    _stage().process(rows)
    meta = _middle(rows)
    assert meta["light_prior_n"] == 2 and meta["shadow_confidence"] < limit
    assert not (rows[1]["effect"][BASE_Y - 4, 80:100] > 0).any()  # the tarmac beyond the base is cut
    assert rows[1]["ann_instances"] is None  # consumed: it does not travel further
    for k in (0, 2):  # the outer posts' shadows agree with the light
        assert get_json(rows[k], "meta")["masks"]["shadow_confidence"] > limit


def test_one_instance_per_photo_or_the_prior_off_answers_as_before():
    image, posts = _photo()
    own = RuleShadowDetector().detect_scored(image, posts[1])
    alone = _rows(image, posts)[1:2]
    attach_photo_instances(alone)  # a single instance gets no label image
    assert alone[0]["ann_instances"] is None
    _stage().process(alone)
    off = _rows(image, posts)
    attach_photo_instances(off)
    _stage(enabled=False).process(off)
    for meta in (get_json(alone[0], "meta")["masks"], _middle(off)):
        assert meta["light_prior_n"] is None and meta["shadow_confidence"] == round(own.confidence, 4)
