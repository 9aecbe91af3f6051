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
