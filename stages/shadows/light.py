"""The photo's light direction as a prior for one object's shadow search.

The annotated objects of one photo cast their shadows one way, and about as far relative to their size. The
detector's confident shadows of the photo's *other* objects give that direction and reach; for this object,
the search keeps only shadow that lies on that side of its base (out to that reach), and the confidence drops
for a shadow that points elsewhere, or for a shadow far smaller than the others' (an empty one included):
the detector's own confidence cannot see a miss of that kind, the photo can. With no confident other
shadow (a single-object photo), or for an object cut by the photo's edge, nothing changes.

Stage 2 sees one instance at a time: :func:`photo_prior` needs only the composite and the other objects'
masks, so a row that carries its photo's other annotated masks can build it on its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from curation.core.config.masks import LightPriorOptions
from curation.core.morphology import bbox_of
from stages.shadows import ShadowDetection, ShadowDetector

D = TypeVar("D")

#: a shadow counts towards the prior only above this confidence
MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class LightPrior:
    direction: np.ndarray  # unit (dy, dx): from an object's base into its shadow
    strength: float  # 0..1: how much the other shadows agree (their mean resultant length)
    reach: float  # how far the other shadows extend along the direction, in object sizes (median)
    area: float  # the other shadows' area relative to their object's (median)
    n: int  # confident other shadows it rests on


@dataclass(frozen=True)
class PriorKnobs:
    """How the prior acts. The defaults are the choice on all photos of ``python -m stages.shadows.evaluate``
    (leave-one-photo-out there; ties broken towards the first grid value: no stretch, no area test)."""

    margin: float | None = 0.25  # keep shadow beyond this far behind the base (object sizes); None: no cut
    stretch: float = 0.0  # search out to this times the others' reach (never less than the detector's own); 0: off
    small: float = 0.0  # a shadow below this share of the expected area loses confidence in proportion; 0: off

    @classmethod
    def from_options(cls, opts: LightPriorOptions) -> PriorKnobs:
        return cls(margin=opts.margin, stretch=opts.stretch, small=opts.small)


def _base(obj: np.ndarray) -> tuple[np.ndarray, float]:
    """The centre of the object's lowest fifth (where its shadow starts) and its size (larger box side)."""
    box = bbox_of(obj)
    assert box is not None
    _, y, w, h = box
    ys, xs = np.nonzero(obj[y + int(0.8 * h) :])
    return np.array([ys.mean() + y + int(0.8 * h), xs.mean()]), float(max(w, h))


def touches_frame(mask: np.ndarray) -> bool:
    """An object cut by the photo's edge: its base (or its shadow) may be out of frame, so its base-to-shadow
    direction says nothing about the light."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def shadow_vector(obj: np.ndarray, shadow: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """Unit direction from the object's base to its shadow's centre, the shadow's reach along it (object sizes)
    and its area relative to the object's; None for an empty shadow or object."""
    if not shadow.any() or not obj.any():
        return None
    base, size = _base(obj)
    pts = np.argwhere(shadow).astype(np.float64) - base
    v = pts.mean(axis=0)
    norm = float(np.hypot(*v))
    if norm < 1e-6:
        return None
    d = v / norm
    return d, float(np.percentile(pts @ d, 95) / size), float(shadow.sum() / obj.sum())


def photo_prior(
    detector: ShadowDetector, composite: np.ndarray, others: list[np.ndarray], min_confidence: float = MIN_CONFIDENCE
) -> LightPrior | None:
    """The light direction from the detector's confident shadows of the photo's other objects; None when none."""
    return prior_from([(o, detector.detect_scored(composite, o)) for o in others], min_confidence)


def prior_from(
    found: list[tuple[np.ndarray, ShadowDetection]], min_confidence: float = MIN_CONFIDENCE
) -> LightPrior | None:
    """:func:`photo_prior` from the other objects' detections already made."""
    vecs, weights, reach, area = [], [], [], []
    for other, det in found:
        trusted = det.confidence >= min_confidence and not touches_frame(other)
        sv = shadow_vector(other.astype(bool), det.mask) if trusted else None
        if sv is not None:
            vecs.append(sv[0])
            weights.append(det.confidence)
            reach.append(sv[1])
            area.append(sv[2])
    if not vecs:
        return None
    m = np.average(np.array(vecs), axis=0, weights=np.array(weights))
    strength = float(np.hypot(*m))
    if strength < 1e-6:
        return None
    return LightPrior(m / strength, strength, float(np.median(reach)), float(np.median(area)), len(vecs))


def detect_with_prior(
    detector: ShadowDetector,
    composite: np.ndarray,
    obj: np.ndarray,
    prior: LightPrior | None,
    knobs: PriorKnobs = PriorKnobs(),
) -> ShadowDetection:
    """The object's shadow searched where the photo's light casts it, and a confidence that also asks whether
    the shadow agrees with the others'. Without a prior: the detector's own answer."""
    obj = obj.astype(bool)
    if prior is None or not obj.any() or touches_frame(obj):
        return detector.detect_scored(composite, obj)
    found = reaching(detector, prior, knobs.stretch).detect_scored(composite, obj)
    return apply_prior(found, obj, prior, knobs)


def reaching(detector: D, prior: LightPrior, stretch: float) -> D:
    """The detector searching as far as ``stretch`` times the other shadows' reach, where it has a search radius
    (never less far than its own)."""
    search = getattr(detector, "search", None)
    if stretch and isinstance(search, float) and dataclasses.is_dataclass(detector):
        return dataclasses.replace(detector, search=max(search, stretch * prior.reach))  # type: ignore[type-var]
    return detector


def apply_prior(found: ShadowDetection, obj: np.ndarray, prior: LightPrior, knobs: PriorKnobs) -> ShadowDetection:
    """``found`` cut to the light's side of the object's base, its confidence lowered where it disagrees with
    the other shadows (direction, or far smaller than theirs: an empty shadow most of all)."""
    mask = found.mask
    base, size = _base(obj)
    if knobs.margin is not None and mask.any():
        yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
        ahead = (yy - base[0]) * prior.direction[0] + (xx - base[1]) * prior.direction[1] >= -knobs.margin * size
        mask = _touching(mask & ahead, obj)
    confidence = found.confidence
    sv = shadow_vector(obj, mask)
    if sv is None:
        confidence *= 1.0 - prior.strength  # the others cast shadows; this one shows none
    else:
        cos = float(sv[0] @ prior.direction)
        confidence *= 1.0 - prior.strength * (1.0 - cos) / 2.0
        expected = knobs.small * prior.area
        if expected > 0 and sv[2] < expected:
            confidence *= sv[2] / expected
    return ShadowDetection(mask, float(np.clip(confidence, 0.0, 1.0)))


def _touching(mask: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """The components of ``mask`` that touch the object (what a cut left connected to it)."""
    _, labels = cv2.connectedComponents(mask.astype(np.uint8))
    near = cv2.dilate(obj.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    keep = np.unique(labels[near & (labels > 0)])
    return np.isin(labels, keep[keep > 0])
