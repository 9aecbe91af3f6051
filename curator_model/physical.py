"""The hand-made curator rule: what physics can check without a model.

The recomposite PSNR against the floor, and a ghost test: does the background still show edges along
the removed object's outline that its surroundings do not have? It is stage 4's ``physical`` backend and
the baseline the learned curator is compared with.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from curation.core.morphology import dilate

PHYSICAL_THRESHOLD = 0.5  # the physical backend's threshold when the config sets none


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


def physical_score(psnr: float, ghost: float, psnr_floor: float) -> float:
    """P(good) from the physical checks: both must pass comfortably for a score near 1."""
    return _sigmoid((psnr - psnr_floor) / 2.0) * _sigmoid((1.8 - ghost) / 0.25)
