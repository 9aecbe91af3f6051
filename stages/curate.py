"""Stage 4, curate: score each triplet's quality and reject those below the threshold.

The ``physical`` backend scores what physics can check without a model: the recomposite PSNR against
the floor, and a ghost test (does the background still show edges along the removed object's outline
that its surroundings do not have?).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from curation.config import Resources, RunConfig
from curation.schema import Reason, Row, get_image, reject, update_meta
from curation.stage import Stage
from stages.decompose import dilate


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


class Curate(Stage):
    name = "curate"

    @staticmethod
    def resources(cfg: RunConfig) -> Resources:
        return cfg.curate.resources

    def process(self, rows: list[Row]) -> None:
        cfg = self.cfg.curate
        for row in rows:
            ghost = ghost_ratio(get_image(row, "background"), get_image(row, "mask"))
            score = physical_score(row["psnr"], ghost, self.cfg.masks.psnr_floor)
            row["score"] = round(score, 5)
            update_meta(row, self.name, {"backend": cfg.backend, "ghost_ratio": round(ghost, 4)})
            if score < cfg.threshold:
                reject(row, self.name, Reason.LOW_CURATOR_SCORE, f"score {score:.3f} < {cfg.threshold} (ghost ratio {ghost:.2f})")
