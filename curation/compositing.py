"""The compositing arithmetic the whole dataset rests on: ``C = α·F + (1−α)·B`` and its checks."""
from __future__ import annotations

import numpy as np


def to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def over(foreground_rgba: np.ndarray, background_rgb: np.ndarray) -> np.ndarray:
    """Straight-alpha ``over``: uint8 RGBA foreground on uint8 RGB background → uint8 RGB."""
    f = to_float(foreground_rgba)
    a = f[..., 3:4]
    return to_uint8(a * f[..., :3] + (1.0 - a) * to_float(background_rgb))


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR in dB between two uint8 images (optionally inside a bool region); identical gives +inf."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    if region is not None:
        if not region.any():
            return float("inf")
        diff = diff[region]
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def recomposite_psnr(composite: np.ndarray, background: np.ndarray, foreground: np.ndarray) -> float:
    """The invariant every sample states: how well foreground over background gives the composite back."""
    return psnr(over(foreground, background), composite)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks; two empty masks agree perfectly."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def bbox_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` of a bool mask, or ``None`` when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two ``(x, y, w, h)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
