"""Instance selection: keep only objects that can become a clean, whole layer.

Rules run per image because occlusion is a relation between instances. Each exclusion is a reason code.
"""
from __future__ import annotations

import cv2
import numpy as np

from curation.config import SelectionConfig
from curation.schema import Reason, Row, get_image, get_json, is_ok, reject

STAGE = "ingest"


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def exclusion(mask: np.ndarray, ann: dict, others: np.ndarray | None, cfg: SelectionConfig) -> tuple[Reason, str] | None:
    """Why this instance cannot be used, or ``None`` if it can."""
    h, w = mask.shape
    if cfg.skip_crowd and ann.get("iscrowd"):
        return Reason.CROWD, "annotated as a crowd region"
    area = float(mask.sum()) / (h * w)
    if area < cfg.min_area_frac:
        return Reason.AREA_TOO_SMALL, f"area fraction {area:.4f} < {cfg.min_area_frac}"
    if area > cfg.max_area_frac:
        return Reason.AREA_TOO_LARGE, f"area fraction {area:.4f} > {cfg.max_area_frac}"
    ys, xs = np.nonzero(mask)
    bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    if min(bw, bh) < cfg.min_side_px:
        return Reason.TOO_SMALL, f"bbox {bw}x{bh} px has a side < {cfg.min_side_px}"
    m = cfg.border_margin_px
    if xs.min() < m or ys.min() < m or xs.max() >= w - m or ys.max() >= h - m:
        return Reason.TOUCHES_BORDER, f"object within {m} px of the image border (cut off)"
    if others is not None:
        overlap = float((_dilate(mask, cfg.overlap_margin_px) & others).sum()) / max(1.0, float(mask.sum()))
        if overlap > cfg.max_overlap_frac:
            return Reason.OCCLUDED, f"{overlap:.3f} of the object touches another instance (margin {cfg.overlap_margin_px} px)"
    return None


def select_instances(rows: list[Row], cfg: SelectionConfig) -> None:
    """Reject, in place, the candidate rows of one image that fail a selection rule."""
    masks = {id(r): get_image(r, "ann_mask") for r in rows if is_ok(r)}
    for row in rows:
        if not is_ok(row):
            continue
        mask = masks[id(row)]
        if mask is None or not mask.any():
            reject(row, STAGE, Reason.EMPTY_MASK, "the source gave no object pixels for this instance")
            continue
        others = None
        for other in rows:
            om = masks.get(id(other))
            if other is not row and om is not None and om.shape == mask.shape:
                others = om if others is None else (others | om)
        found = exclusion(mask.astype(bool), get_json(row, "ann"), others, cfg)
        if found:
            reject(row, STAGE, *found)
