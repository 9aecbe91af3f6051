"""SAM prompted inside the shadow: the production shadow backend for clusters with SAM weights.

segment-anything segments a cast shadow well when it is pointed at one, but it does not know which dark
region belongs to which object. The rule does (a shadow touches its object's base), so the rule finds the
shadow and SAM draws it: a few seed points deep inside the rule's mask (positive), one on the object
(negative, so that SAM does not return the object), and the box of the rule's mask. Of SAM's three masks
the one with the best predicted IoU plus agreement with the rule's mask is kept, minus the object and
minus any part that does not touch the rule's shadow. Where the rule finds nothing, there is nothing to
prompt and the rule's answer stands. The confidence is the rule's (did anything shadow-like go unseen?)
times SAM's predicted IoU.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from curation.core.config.masks import DetectorOptions
from curation.core.morphology import bbox_of
from stages.segmenters.base import Prompt
from stages.segmenters.sam import SamSegmenter
from stages.shadows import ShadowDetection
from stages.shadows.rule import RuleShadowDetector

SEED_POINTS = 3


def seed_points(region: np.ndarray, n: int = SEED_POINTS) -> list[tuple[int, int]]:
    """Up to ``n`` points deep inside ``region`` (distance-transform maxima, spread apart), as (x, y)."""
    dist = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 3)
    out = []
    for _ in range(n):
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        if dist[y, x] <= 0:
            break
        out.append((int(x), int(y)))
        cv2.circle(dist, (int(x), int(y)), max(2, int(2 * dist[y, x])), 0, -1)  # the next one elsewhere
    return out


class SamShadowDetector:
    name = "sam"

    def __init__(self, rule: RuleShadowDetector, segmenter: SamSegmenter):
        self.rule, self.segmenter = rule, segmenter

    @classmethod
    def from_options(cls, opts: DetectorOptions) -> SamShadowDetector:
        return cls(
            RuleShadowDetector.from_options(opts),
            SamSegmenter(str(opts.checkpoint), opts.model_type, opts.device, embed_batch_size=1, multimask=True),
        )

    def detect(self, composite: np.ndarray, obj: np.ndarray) -> np.ndarray:
        return self.detect_scored(composite, obj).mask

    def detect_scored(self, composite: np.ndarray, obj: np.ndarray) -> ShadowDetection:
        obj = obj.astype(bool)
        seed = self.rule.detect_scored(composite, obj)
        points = seed_points(seed.mask)
        seed_box = bbox_of(seed.mask)
        if not points or seed_box is None:
            return seed
        inside = seed_points(obj, 1)
        prompt = Prompt(
            image=composite,
            image_id=hashlib.blake2b(composite.tobytes(), digest_size=16).hexdigest(),
            box=(float(seed_box[0]), float(seed_box[1]), float(seed_box[2]), float(seed_box[3])),
            points=np.array([(x, y, 1) for x, y in points] + [(x, y, 0) for x, y in inside], np.float32),
            mask=seed.mask,
        )
        found = self.segmenter.segment([prompt])[0]
        if found.mask is None:
            return ShadowDetection(seed.mask, seed.confidence * 0.5)
        shadow = found.mask & ~obj
        _, labels = cv2.connectedComponents(shadow.astype(np.uint8))
        keep = np.unique(labels[seed.mask & (labels > 0)])
        return ShadowDetection(np.isin(labels, keep[keep > 0]), seed.confidence * found.score)
