"""``python -m stages.shadows.tune``'s leave-one-photo-out protocol never scores a photo with a knob it tuned on.

Three small photos of one post each, and a two-value grid over the rule's ratio: photo A's faint shadow is found
only by the lenient ratio 0.84; B and C have a deep shadow that runs on into a patch of dark ground, which only
the strict ratio 0.7 leaves out. On all photos 0.84 wins (A's gain outweighs B's and C's); held out, A is scored
with 0.7, the choice of B and C, and misses its shadow: the held-out figure must be the lower one.
"""

from __future__ import annotations

import numpy as np

from curation.core.morphology import iou
from curation.core.realdata import RealInstance
from stages.shadows.evaluate import PRIOR_GRID, leave_one_photo_out
from stages.shadows.rule import RuleShadowDetector
from stages.shadows.tune import choose_threshold, tune

GRID = {"ratio": (0.84, 0.7)}


def _photo(name: str, shadow_level: float, patch: bool) -> RealInstance:
    rng = np.random.default_rng(len(name))
    image = np.clip(170 + rng.normal(0, 2, (96, 96, 3)), 0, 255).astype(np.uint8)
    obj = np.zeros((96, 96), bool)
    obj[20:60, 30:42] = True
    shadow = np.zeros_like(obj)
    shadow[54:62, 42:62] = True
    image[shadow] = (image[shadow] * shadow_level).astype(np.uint8)
    if patch:  # dark ground touching the shadow's end
        image[54:62, 62:72] = (image[54:62, 62:72] * 0.78).astype(np.uint8)
    image[obj] = (40, 90, 160)
    return RealInstance(name, f"{name}/post", image, obj, shadow, None, np.zeros_like(obj))


def test_each_fold_sees_every_photo_but_its_own():
    seen: list[tuple[str, list[int]]] = []
    photos = ["a", "a", "b", "c", "c"]

    def spy(train: np.ndarray) -> int:
        seen.append(("", list(np.flatnonzero(train))))
        return len(seen)

    folds = leave_one_photo_out(photos, spy)
    assert list(folds) == ["a", "b", "c"]
    assert [s for _, s in seen] == [[2, 3, 4], [0, 1, 3, 4], [0, 1, 2]]


def test_the_held_out_photo_is_scored_with_knobs_chosen_without_it():
    instances = [_photo("A", 0.78, False), _photo("B", 0.45, True), _photo("C", 0.45, True)]
    report = tune(instances, GRID, PRIOR_GRID[:2], seeds=())
    for photo, fold in report["folds"].items():
        assert photo not in fold["tuned_on"] and fold["tuned_on"] == sorted({"A", "B", "C"} - {photo})
    assert report["folds"]["A"]["rule"] == {"ratio": 0.7}  # what B and C prefer
    assert report["folds"]["B"]["rule"] == report["folds"]["C"]["rule"] == {"ratio": 0.84}
    assert report["chosen_on_all"]["rule"] == {"ratio": 0.84}
    rows = {r["photo"]: r for r in report["rows"]}
    for photo, inst in zip("ABC", instances, strict=True):  # each held-out answer is its fold's rule, recomputed
        rule = RuleShadowDetector(**report["folds"][photo]["rule"])
        assert rows[photo]["iou"] == round(iou(rule.detect(inst.composite, inst.mask), inst.shadow), 3)
    assert rows["A"]["iou"] == 0.0  # the strict ratio misses A's faint shadow
    held, in_sample = report["leave_one_photo_out"]["without_prior"], report["chosen_on_all"]["in_sample"]
    assert held["n"] == in_sample["without_prior"]["n"] == 3
    assert held["mean_iou"] < in_sample["without_prior"]["mean_iou"] - 0.2


def test_the_threshold_keeps_the_share_of_found_shadows_and_rejects_the_most_misses():
    conf = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.1])
    ious = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.0])
    assert choose_threshold(conf, ious, keep=0.8) == 0.7  # keeps 4 of 5 found, rejects the miss
    assert choose_threshold(conf, ious, keep=1.0) == 0.6
