"""Object proposals for images that come without annotations: bool masks of salient, whole objects.

``offline`` needs no weights: a background-contrast saliency map (colour distance to the image border's
colour clusters, the border being mostly background in photos), its salient connected regions, each refined
by GrabCut in its box. ``sam`` runs ``SamAutomaticMaskGenerator`` from a local checkpoint. Both keep only
proposals that look like whole objects: inside the frame, not tiny, not most of the image.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from curation.core.devices import resolve_device
from curation.core.morphology import iou
from curation.core.registry import Registry

WORK_PX = 256  # the offline proposer's working resolution (long side)
MIN_AREA, MAX_AREA = 0.005, 0.6  # fraction of the image a whole object may cover
DUPLICATE_IOU = 0.7


def propose_objects(
    image: np.ndarray,
    max_proposals: int,
    backend: str = "offline",
    checkpoint: str | None = None,
    model_type: str = "vit_b",
    device: str = "cpu",
    points_per_side: int = 16,
) -> list[np.ndarray]:
    """Up to ``max_proposals`` bool masks (image-sized) of whole objects, best first.

    ``sam``: the model loads once per (checkpoint, device) per process (``device="auto"``: cuda if present);
    ``points_per_side``² point prompts.
    """
    masks = PROPOSERS.get(backend)(image, checkpoint, model_type, device, points_per_side)
    return _whole_objects(masks, max_proposals)


def _whole_objects(masks: list[np.ndarray], limit: int) -> list[np.ndarray]:
    """Drop border-cut, tiny, huge and duplicate masks, keeping the given order."""
    kept: list[np.ndarray] = []
    for m in masks:
        frac = m.mean()
        border = m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()
        if border or not MIN_AREA <= frac <= MAX_AREA:
            continue
        if any(iou(m, k) > DUPLICATE_IOU for k in kept):
            continue
        kept.append(m)
        if len(kept) == limit:
            break
    return kept


def saliency(image: np.ndarray) -> np.ndarray:
    """Float map in [0, 1]: each pixel's Lab distance to the nearest colour cluster of the image border."""
    lab = cv2.cvtColor(cv2.GaussianBlur(image, (0, 0), 1.5), cv2.COLOR_RGB2LAB).astype(np.float32)
    h, w = lab.shape[:2]
    b = max(2, min(h, w) // 32)
    border = np.concatenate(
        [lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3), lab[:, -b:].reshape(-1, 3)]
    )
    k = min(8, len(border))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)
    # OpenCV allocates the labels when given None; its stubs do not allow it
    _, _, centers = cv2.kmeans(border, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)  # type: ignore[call-overload]
    dist = np.min(np.linalg.norm(lab[:, :, None, :] - centers[None, None], axis=3), axis=2)
    dist = cv2.GaussianBlur(dist, (0, 0), 2.0)
    return dist / max(float(dist.max()), 1e-6)


def _grabcut(image: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Refine a rough region: probable foreground inside it, background outside its padded box."""
    ys, xs = np.nonzero(seed)
    h, w = seed.shape
    pad = max(4, int(0.15 * max(np.ptp(ys), np.ptp(xs))))
    y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
    gc = np.full((h, w), cv2.GC_BGD, np.uint8)
    gc[y0:y1, x0:x1] = cv2.GC_PR_BGD
    gc[seed] = cv2.GC_PR_FGD
    core = cv2.erode(seed.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    gc[core] = cv2.GC_FGD if core.sum() > 20 else cv2.GC_PR_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        # the rect is unused with a mask (None); OpenCV's stubs do not allow None
        cv2.grabCut(
            cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
            gc,
            None,
            bgd,
            fgd,
            3,  # type: ignore[call-overload]
            cv2.GC_INIT_WITH_MASK,
        )
    except cv2.error:  # degenerate colour model (flat region): keep the seed
        return seed
    out = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(out.astype(np.uint8))
    if n <= 1:
        return seed
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def offline_proposals(image: np.ndarray, *_unused: object) -> list[np.ndarray]:
    """Salient regions refined by GrabCut; no weights (the backend's model options do not apply)."""
    h, w = image.shape[:2]
    scale = WORK_PX / max(h, w)
    small = image
    if scale < 1:
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    sal = saliency(small)
    thresh, _ = cv2.threshold((sal * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg: np.ndarray = ((sal * 255) > thresh).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg)
    area = small.shape[0] * small.shape[1]
    ranked = sorted(range(1, n), key=lambda i: -sal[labels == i].mean() * np.sqrt(stats[i, cv2.CC_STAT_AREA]))
    out = []
    for i in ranked:
        if stats[i, cv2.CC_STAT_AREA] < MIN_AREA * area:
            continue
        refined = _grabcut(small, labels == i)
        out.append(cv2.resize(refined.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool))
    return out


@functools.lru_cache(maxsize=2)
def _mask_generator(checkpoint: str, model_type: str, device: str, points_per_side: int):
    """One generator per (checkpoint, device) per process: the model loads once."""
    from segment_anything import SamAutomaticMaskGenerator

    from stages.segmenters.sam_loader import load_sam

    return SamAutomaticMaskGenerator(
        load_sam(checkpoint, model_type, resolve_device(device)),
        points_per_side=points_per_side,
        pred_iou_thresh=0.8,
        stability_score_thresh=0.9,
    )


def sam_proposals(
    image: np.ndarray, checkpoint: str | None, model_type: str, device: str, points: int
) -> list[np.ndarray]:
    """SAM's automatic masks from a local checkpoint, best first."""
    if checkpoint is None:
        raise ValueError("propose_objects(backend='sam') needs a local SAM checkpoint path")
    records = _mask_generator(str(checkpoint), model_type, device, points).generate(image)
    records.sort(key=lambda r: -r["predicted_iou"] * r["stability_score"])
    return [r["segmentation"].astype(bool) for r in records]


PROPOSERS: Registry = Registry(
    "sources[].proposal_backend",
    "proposal backend",
    {
        "offline": "stages.segmenters.proposals:offline_proposals",
        "sam": "stages.segmenters.proposals:sam_proposals",
    },
)
