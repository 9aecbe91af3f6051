"""Measured, true-by-construction descriptions of image regions: colour names, position, shadow.

The offline captioner's vocabulary: nothing here is guessed, every word comes from a measurement.
"""
from __future__ import annotations

import cv2
import numpy as np

PALETTE = {
    "black": (20, 20, 20), "white": (240, 240, 240), "grey": (128, 128, 128), "red": (200, 30, 30),
    "orange": (235, 130, 30), "yellow": (230, 210, 40), "green": (50, 150, 50), "olive": (110, 110, 40),
    "teal": (30, 130, 130), "blue": (40, 80, 200), "purple": (120, 50, 150), "pink": (230, 140, 170),
    "brown": (120, 75, 40), "beige": (215, 195, 160),
}
_NAMES = list(PALETTE)
_LAB = cv2.cvtColor(np.array([list(PALETTE.values())], np.uint8), cv2.COLOR_RGB2LAB)[0].astype(np.float32)


def colour_name(rgb_pixels: np.ndarray) -> str:
    """Name of the dominant colour of some RGB uint8 pixels (median in Lab, nearest palette entry)."""
    if rgb_pixels.size == 0:
        return "grey"
    lab = cv2.cvtColor(rgb_pixels.reshape(1, -1, 3).astype(np.uint8), cv2.COLOR_RGB2LAB)[0].astype(np.float32)
    med = np.median(lab, axis=0)
    return _NAMES[int(np.argmin(((_LAB - med) ** 2).sum(axis=1)))]


def position_phrase(mask: np.ndarray) -> str:
    """Where the object's centroid lies in the frame, in words."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    cx, cy = xs.mean() / w, ys.mean() / h
    horiz = "left" if cx < 0.36 else "right" if cx > 0.64 else "centre"
    vert = "top" if cy < 0.36 else "bottom" if cy > 0.64 else "middle"
    if horiz == "centre" and vert == "middle":
        return "in the centre"
    if horiz == "centre":
        return f"at the {vert}"
    if vert == "middle":
        return f"on the {horiz}"
    return f"at the {vert} {horiz}"


def texture_word(gray: np.ndarray, region: np.ndarray) -> str:
    """'plain', 'textured' or 'busy' from the edge density of a surface."""
    if not region.any():
        return "plain"
    edges = cv2.Canny(gray, 60, 160) > 0
    density = float(edges[region].mean())
    return "plain" if density < 0.03 else "textured" if density < 0.12 else "busy"


def shadow_phrase(alpha: np.ndarray, effect: np.ndarray) -> str:
    """Describe the effect layer: none, faint, soft or hard shadow (from the alpha edge width)."""
    if effect.sum() < 20:
        return ""
    a = alpha.astype(np.float32) / 255.0
    strength = float(np.median(a[effect]))
    partial = float(((a > 0.05) & (a < strength * 0.7))[effect].mean())
    kind = "soft" if partial > 0.25 else "hard"
    return f"a faint {kind} shadow" if strength < 0.25 else f"a {kind} shadow"
