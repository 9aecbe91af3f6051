"""Mask geometry shared by every stage: grow and shrink masks, their boxes, and how well two agree."""

from __future__ import annotations

import cv2
import numpy as np


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """Grow a mask by ``px`` pixels with a disc (an odd kernel: the mask does not shift)."""
    if px <= 0:
        return mask.astype(bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def erode(mask: np.ndarray, px: int) -> np.ndarray:
    return ~dilate(~mask.astype(bool), px)


def bbox_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` of a mask's nonzero pixels, or ``None`` when empty (OpenCV's scan, not ``np.nonzero``)."""
    m = np.ascontiguousarray(mask).view(np.uint8) if mask.dtype == bool else (mask > 0).astype(np.uint8)
    x, y, w, h = cv2.boundingRect(m)
    return None if w == 0 else (int(x), int(y), int(w), int(h))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks; two empty masks agree perfectly."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two ``(x, y, w, h)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
