"""The photo's light direction as a prior: estimated from the other objects' shadows, it cuts a shadow to the
light's side and lowers the confidence of a shadow that disagrees with the others (an empty one included)."""

import numpy as np

from stages.shadows import ShadowDetection
from stages.shadows.evaluate import roc_auc
from stages.shadows.light import PriorKnobs, apply_prior, detect_with_prior, prior_from, shadow_vector
from stages.shadows.rule import RuleShadowDetector


def _box(y0: int, y1: int, x0: int, x1: int, shape: tuple[int, int] = (64, 96)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_the_prior_points_where_the_other_shadows_fall():
    # two posts whose shadows lie to their right along the ground
    a, b = _box(10, 40, 10, 16), _box(10, 40, 50, 56)
    sa, sb = _box(34, 40, 16, 34), _box(34, 40, 56, 70)
    d, reach, area = shadow_vector(a, sa)
    assert d[1] > 0.95 and reach > 0.3 and area > 0.5
    prior = prior_from([(a, ShadowDetection(sa, 0.9)), (b, ShadowDetection(sb, 0.8))])
    assert prior is not None and prior.n == 2 and prior.direction[1] > 0.95 and prior.strength > 0.99
    # unconfident or empty shadows say nothing: a single-object photo has no prior
    assert prior_from([(a, ShadowDetection(sa, 0.2)), (b, ShadowDetection(np.zeros_like(b), 1.0))]) is None


def test_a_shadow_that_disagrees_with_the_photo_loses_confidence():
    a, b, c = _box(10, 40, 10, 16), _box(10, 40, 50, 56), _box(10, 40, 80, 86)
    prior = prior_from([(a, ShadowDetection(_box(34, 40, 16, 34), 0.9)), (b, ShadowDetection(_box(34, 40, 56, 70), 1))])
    assert prior is not None
    knobs = PriorKnobs(margin=None, stretch=0.0, small=0.25)
    agrees = apply_prior(ShadowDetection(_box(34, 40, 86, 96), 1.0), c, prior, knobs)
    assert agrees.confidence > 0.9
    empty = apply_prior(ShadowDetection(np.zeros_like(c), 1.0), c, prior, knobs)
    assert empty.confidence < 0.05  # the others cast shadows, this one none: a miss, not "nothing to find"
    opposite = apply_prior(ShadowDetection(_box(34, 40, 62, 80), 1.0), c, prior, knobs)
    assert opposite.confidence < 0.1
    # the cut keeps the light's side of the base only
    both = _box(34, 40, 62, 80) | _box(34, 40, 86, 96)
    cut = apply_prior(ShadowDetection(both, 1.0), c, prior, PriorKnobs(margin=0.0, stretch=0.0, small=0.25))
    assert cut.mask[36, 90] and not cut.mask[36, 70]


def test_without_a_prior_the_detector_answers_as_before():
    rng = np.random.default_rng(0)
    image = (rng.uniform(120, 140, (64, 96, 3))).astype(np.uint8)
    image[34:40, 16:34] //= 2
    obj = _box(10, 40, 10, 16)
    rule = RuleShadowDetector()
    alone, own = detect_with_prior(rule, image, obj, None), rule.detect_scored(image, obj)
    assert np.array_equal(alone.mask, own.mask) and alone.confidence == own.confidence


def test_roc_auc_ranks_misses_below_hits():
    conf = np.array([0.9, 0.8, 0.2, 0.8])
    assert roc_auc(conf, np.array([False, False, True, True])) == 0.875  # one tie: half
    assert np.isnan(roc_auc(conf, np.zeros(4, bool)))


def test_objects_cut_by_the_frame_neither_shape_the_prior_nor_get_one():
    a, edge = _box(10, 40, 10, 16), _box(10, 64, 50, 56)  # the second runs off the bottom of the photo
    assert prior_from([(edge, ShadowDetection(_box(40, 64, 56, 70), 1.0))]) is None
    prior = prior_from([(a, ShadowDetection(_box(34, 40, 16, 34), 1.0))])
    rng = np.random.default_rng(1)
    image = (rng.uniform(120, 140, (64, 96, 3))).astype(np.uint8)
    rule = RuleShadowDetector()
    with_prior, own = detect_with_prior(rule, image, edge, prior), rule.detect_scored(image, edge)
    assert np.array_equal(with_prior.mask, own.mask) and with_prior.confidence == own.confidence
