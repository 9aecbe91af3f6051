"""The hand-made curator rule: what physics can check without a model, from measures that can fail.

The recomposite PSNR is no part of it: F and α are solved from C and B, so it passes for any background.
The rule scores a ghost test (does the background still show edges along the removed object's outline
that its surroundings do not have?) and stage 2's quality measures (:mod:`curation.core.quality`: drift,
shadow consistency, fill texture / seam / ghost, effect plausibility), each by how comfortably it clears
its bound in ``masks.quality``. It is stage 4's ``physical`` backend and the baseline the learned curator
is compared with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np

from curation.core.config.masks import QualityOptions
from curation.core.morphology import dilate

PHYSICAL_THRESHOLD = 0.5  # the physical backend's threshold when the config sets none

#: (quality measure, its bound in QualityOptions, +1 when the measure must stay above the bound, softness):
#: a measure exactly at its bound scores 0.5, one softness on its good side 0.73, on its bad side 0.27.
#: The bounds that QualityOptions leaves ungated (None) are not scored either.
MARGINS: tuple[tuple[str, str, int, float], ...] = (
    ("drift", "max_drift", -1, 0.003),
    ("brightened", "max_brightened", -1, 0.03),
    ("too_dark", "max_too_dark", -1, 0.05),
    ("ratio_roughness", "max_ratio_roughness", -1, 0.02),
    ("fill_texture", "min_fill_texture", +1, 0.1),
    ("fill_texture", "max_fill_texture", -1, 0.3),
    ("fill_seam", "max_fill_seam", -1, 0.4),
    ("fill_ghost", "max_fill_ghost", -1, 0.1),
    ("effect_area", "max_effect_area", -1, 0.5),
    ("effect_foreign", "max_effect_foreign", -1, 0.015),
)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def ghost_ratio(background: np.ndarray, mask: np.ndarray) -> float:
    """Edge strength of the background on the object's outline ÷ edge strength in the ring around it."""
    gray = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    obj = mask > 0
    outline = dilate(obj, 2) & ~cv2.erode(obj.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    ring = dilate(obj, 14) & ~dilate(obj, 6)
    if not outline.any() or not ring.any():
        return 1.0
    return float(grad[outline].mean() / (grad[ring].mean() + 4.0))


def physical_score(ghost: float, quality: Mapping[str, float | None], bounds: QualityOptions) -> float:
    """P(good) from the physical checks: the weakest one decides, so the score is above 0.5 exactly when every
    check clears its bound, and near 1 when every one clears it comfortably."""
    margins = [(1.8 - ghost) / 0.25]
    for measure, bound_name, sign, softness in MARGINS:
        value, bound = quality.get(measure), getattr(bounds, bound_name)
        if value is not None and bound is not None:
            margins.append(sign * (value - bound) / softness)
    return _sigmoid(min(margins))
