"""The hole benchmark: how well each fill recovers the ground under an object, where the truth is known.

Real photos (``curation.core.realdata.HOLE_PHOTOS``: scikit-image and scikit-learn sample photos, the
bundled photos, the DESOBA shadow-free photos) get object-shaped holes (real DESOBA masks, synthetic
silhouettes) cut where the photo itself is the truth; synthetic scenes give theirs under each object
(their true background). Every fill method fills the same holes; compared inside the hole:

- PSNR and SSIM (``skimage.metrics.structural_similarity``, its map averaged over the hole) against the truth;
- gradient ratio: mean gradient magnitude of the fill over the truth's (1 = as textured as the ground;
  a smear is well below 1);
- CPU seconds per hole (``time.process_time``, so other load on the machine does not inflate it).

No model is needed; ``exported`` (a learned model) is left out unless a checkpoint is configured.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

#: every weight-free fill, cheapest first (fsr_best is slow: seconds per hole)
METHODS = ("telea", "navier_stokes", "fsr_fast", "coarse_to_fine", "shiftmap", "fsr_texture", "fsr_best")


def hole_metrics(truth: np.ndarray, filled: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and gradient ratio of ``filled`` against ``truth`` inside ``hole``."""
    from skimage.metrics import structural_similarity

    from curation.core.compositing import psnr
    from curation.core.morphology import bbox_of, erode
    from curation.core.quality import gradient

    box = bbox_of(hole)
    assert box is not None, "a benchmark hole has pixels"
    x, y, w, h = box
    ys, xs = slice(max(0, y - 8), y + h + 8), slice(max(0, x - 8), x + w + 8)
    _, ssim_map = structural_similarity(truth[ys, xs], filled[ys, xs], channel_axis=2, data_range=255, full=True)
    inner = erode(hole, 1)
    inner = inner if inner.any() else hole
    return {
        "psnr": min(psnr(filled, truth, hole), 60.0),
        "ssim": float(ssim_map.mean(axis=2)[hole[ys, xs]].mean()),
        "gradient_ratio": float(gradient(filled)[inner].mean() / max(float(gradient(truth)[inner].mean()), 1e-3)),
    }


def real_holes(split: str, per_photo: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from curation.core.realdata import cut_holes

    return [(h.name, h.photo, h.hole) for h in cut_holes(split, per_photo)]


def real_size_holes(split: str, rounds: int = 1) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Holes at real size: the photos at their own size (570-1024 px), real object outlines up to a quarter of
    the photo (``curation.core.realdata.cut_real_size_holes``)."""
    from curation.core.realdata import cut_real_size_holes

    return [(h.name, h.photo, h.hole) for h in cut_real_size_holes(split, rounds)]


def share_bucket(hole: np.ndarray) -> str:
    """The hole's size bucket by its share of the photo's pixels (``HOLE_SHARES``' bounds)."""
    from curation.core.realdata import HOLE_SHARES

    share = float(hole.mean())
    lo, hi = next(((lo, hi) for lo, hi in HOLE_SHARES if share < hi), HOLE_SHARES[-1])
    return f"{lo:.1%}-{hi:.0%}"


def synthetic_holes(count: int, size: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The ground under each synthetic object: the instance's true background with the object region cut."""
    from curation.core.decompose import OBJECT_MARGIN_PX
    from curation.core.morphology import dilate
    from curation.core.scenes import render_scene

    out = []
    for i in range(count):
        scene = render_scene(seed * 1_000_003 + i, size)
        for j, inst in enumerate(scene.instances):
            out.append((f"synthetic/{i}/{j}", inst.background, dilate(inst.mask, OBJECT_MARGIN_PX)))
    return out


def benchmark(
    holes: list[tuple[str, np.ndarray, np.ndarray]], methods: tuple[str, ...] = METHODS, by_size: bool = False
) -> dict[str, Any]:
    """Mean metrics and CPU seconds per hole of each method on the same holes; with ``by_size``, also per
    size bucket (``share_bucket``) under ``"by_size"``."""
    import numpy as np

    from curation.core.config.masks import InpaintOptions
    from curation.core.inpaint import INPAINTERS

    buckets = [share_bucket(hole) for _, _, hole in holes]
    out: dict[str, Any] = {"holes": len(holes)}
    if by_size:
        out["holes_by_size"] = {b: buckets.count(b) for b in sorted(set(buckets))}
    for method in methods:
        fill = INPAINTERS.get(method).from_options(InpaintOptions.model_validate({"backend": method}))
        rows: list[dict[str, float]] = []
        for _, photo, hole in holes:
            started = time.process_time()
            filled = fill(photo, hole)
            cpu = time.process_time() - started
            rows.append({**hole_metrics(photo, filled, hole), "cpu_seconds_per_hole": cpu})

        def means(rows: list[dict[str, float]]) -> dict[str, float]:
            return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]} if rows else {}

        out[method] = means(rows)
        if by_size:
            out[method]["by_size"] = {
                b: means([r for r, rb in zip(rows, buckets, strict=True) if rb == b]) for b in sorted(set(buckets))
            }
    return out
