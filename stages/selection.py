"""Instance selection: keep only objects that can become a clean, whole layer.

Rules run per image because occlusion is a relation between instances: every instance of the image
(crowd regions and excluded categories included) counts as a possible occluder before its own verdict.
Each exclusion is a reason code; rules are checked in a fixed order and the first that fails is reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from curation.core.config import SelectionConfig
from curation.core.morphology import bbox_of, dilate
from curation.core.schema import Reason, Row, StageName, get_image, get_json, is_ok, reject


def box_overlap(box: tuple[int, int, int, int], other: tuple[int, int, int, int], margin: int) -> float:
    """Fraction of ``box`` (x, y, w, h) inside ``other`` grown by ``margin`` on every side."""
    x, y, w, h = box
    ox, oy, ow, oh = other[0] - margin, other[1] - margin, other[2] + 2 * margin, other[3] + 2 * margin
    iw = max(0, min(x + w, ox + ow) - max(x, ox))
    ih = max(0, min(y + h, oy + oh) - max(y, oy))
    return iw * ih / max(1, w * h)


def exclusion(
    mask: np.ndarray,
    ann: dict,
    others: np.ndarray | None,
    cfg: SelectionConfig,
    other_boxes: Sequence[tuple[int, int, int, int]] = (),
    box: tuple[int, int, int, int] | None = None,
) -> tuple[Reason, str] | None:
    """Why this instance (``box``: its mask's box, computed if not given) cannot be used, or ``None`` if it can."""
    h, w = mask.shape
    if cfg.skip_crowd and ann.get("iscrowd"):
        return Reason.CROWD, "annotated as a crowd region"
    area = float(mask.sum()) / (h * w)
    if area < cfg.min_area_frac:
        return Reason.AREA_TOO_SMALL, f"area fraction {area:.4f} < {cfg.min_area_frac}"
    if area > cfg.max_area_frac:
        return Reason.AREA_TOO_LARGE, f"area fraction {area:.4f} > {cfg.max_area_frac}"
    box = box or bbox_of(mask)
    if box is None:  # no object pixels; only a zero min_area_frac lets an empty mask get this far
        return Reason.EMPTY_MASK, "the instance's mask has no object pixels"
    x, y, bw, bh = box
    if min(bw, bh) < cfg.min_side_px:
        return Reason.TOO_SMALL, f"bbox {bw}x{bh} px has a side < {cfg.min_side_px}"
    m = cfg.border_margin_px
    if x < m or y < m or x + bw > w - m or y + bh > h - m:
        return Reason.TOUCHES_BORDER, f"object within {m} px of the image border (cut off)"
    if others is not None:
        # only the object's box grown by the margin can touch: dilate that crop, not the whole image
        pad = cfg.overlap_margin_px + 1
        crop = np.s_[max(0, y - pad) : y + bh + pad, max(0, x - pad) : x + bw + pad]
        touching = float((dilate(mask[crop], cfg.overlap_margin_px) & others[crop]).sum())
        overlap = touching / max(1.0, area * h * w)
        if overlap > cfg.max_overlap_frac:
            return (
                Reason.OCCLUDED,
                f"{overlap:.3f} of the object touches another instance (margin {cfg.overlap_margin_px} px)",
            )
    if cfg.max_bbox_overlap_frac is not None and other_boxes:
        worst = max(box_overlap((x, y, bw, bh), ob, cfg.overlap_margin_px) for ob in other_boxes)
        if worst > cfg.max_bbox_overlap_frac:
            return Reason.OCCLUDED, f"{worst:.3f} of the object's box lies in another instance's box"
    return None


def select_instances(rows: list[Row], cfg: SelectionConfig) -> None:
    """Reject, in place, the candidate rows of one image that fail a selection rule."""
    given = {id(r): get_image(r, "ann_mask") for r in rows if is_ok(r)}
    masks = {k: m.astype(bool) for k, m in given.items() if m is not None and m.any()}
    shapes = {m.shape for m in masks.values()}
    # how many instances cover each pixel: "others" of one instance is count minus itself, in O(n)
    count = None
    if len(shapes) == 1:
        count = np.zeros(shapes.pop(), np.uint16)
        for m in masks.values():
            count += m
    boxes = {k: box for k, m in masks.items() if (box := bbox_of(m)) is not None}  # every kept mask has a box
    for row in rows:
        if not is_ok(row):
            continue
        mask = masks.get(id(row))
        if mask is None:
            reject(row, StageName.INGEST, Reason.EMPTY_MASK, "the source gave no object pixels for this instance")
            continue
        ann = get_json(row, "ann")
        if ann.get("candidate") is False:
            reject(row, StageName.INGEST, Reason.CATEGORY_EXCLUDED, f"category {ann.get('category')!r} is not selected")
            continue
        others = None if count is None else count > mask  # covered by some instance other than this one
        other_boxes = [b for k, b in boxes.items() if k != id(row)]
        found = exclusion(
            mask, ann, others if others is not None and others.any() else None, cfg, other_boxes, boxes[id(row)]
        )
        if found:
            reject(row, StageName.INGEST, *found)
