"""Measured, true-by-construction descriptions of image regions: colours, position, size, brightness, shadow.

The offline captioner's vocabulary: nothing here is guessed, every word comes from a measurement.
"""

from __future__ import annotations

import cv2
import numpy as np

PALETTE = {
    "black": (20, 20, 20),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "red": (200, 30, 30),
    "orange": (235, 130, 30),
    "yellow": (230, 210, 40),
    "green": (50, 150, 50),
    "olive": (110, 110, 40),
    "teal": (30, 130, 130),
    "blue": (40, 80, 200),
    "purple": (120, 50, 150),
    "pink": (230, 140, 170),
    "brown": (120, 75, 40),
    "beige": (215, 195, 160),
}
_NAMES = list(PALETTE)
_LAB = cv2.cvtColor(np.array([list(PALETTE.values())], np.uint8), cv2.COLOR_RGB2LAB)[0].astype(np.float32)
#: pixels sampled per colour vote: enough for stable shares, cheap for large regions
_COLOUR_SAMPLES = 4096


def colour_names(rgb_pixels: np.ndarray) -> list[str]:
    """Palette names that together cover most of a region: every pixel votes for its nearest entry in Lab.

    One name when it dominates (half the votes, or 40 % with no runner-up above 20 %), plus a second
    that holds a quarter; two names when they hold 60 % together and no third holds 20 %; else
    ``multicoloured``. Votes, not a median: a median blends a red-and-white object into a pink that is
    not there.
    """
    px = rgb_pixels.reshape(-1, 3)
    if px.shape[0] == 0:
        return ["grey"]
    px = px[:: max(1, px.shape[0] // _COLOUR_SAMPLES)]
    lab = cv2.cvtColor(px.reshape(1, -1, 3).astype(np.uint8), cv2.COLOR_RGB2LAB)[0].astype(np.float32)
    votes = np.argmin(((lab[:, None, :] - _LAB[None]) ** 2).sum(axis=2), axis=1)
    share = np.bincount(votes, minlength=len(_NAMES)) / len(votes)
    first, second, third = np.argsort(-share, kind="stable")[:3]
    if share[first] >= 0.5 or (share[first] >= 0.4 and share[second] < 0.2):
        return [_NAMES[first]] + ([_NAMES[second]] if share[second] >= 0.25 else [])
    if share[first] + share[second] >= 0.6 and share[third] < 0.2:
        return [_NAMES[first], _NAMES[second]]
    return ["multicoloured"]


def colour_phrase(rgb_pixels: np.ndarray) -> str:
    """'red' or 'red and white'."""
    return " and ".join(colour_names(rgb_pixels))


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


def size_word(mask: np.ndarray) -> str:
    """'small' or 'large' when the object covers little or much of the frame, else '' (nothing to say)."""
    share = float(mask.mean())
    return "small" if share < 0.02 else "large" if share > 0.25 else ""


def brightness_word(gray: np.ndarray, region: np.ndarray) -> str:
    """'dark' or 'bright' when a region's median luminance is near either end, else '' (nothing to say)."""
    values = gray[region] if region.any() else gray.reshape(-1)
    level = float(np.median(values))
    return "dark" if level < 60 else "bright" if level > 200 else ""


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


_DIRECTIONS = ("right", "lower right", "bottom", "lower left", "left", "upper left", "top", "upper right")


def shadow_direction(mask: np.ndarray, effect: np.ndarray) -> str:
    """Image-space side of the object its shadow falls on ('to its left', 'below it'), or '' when centred.

    Measured from the shadow's centroid relative to the object's; an offset under a fifth of the
    object's size is too small to name a side.
    """
    if effect.sum() < 20 or not mask.any():
        return ""
    oy, ox = (c.mean() for c in np.nonzero(mask))
    ey, ex = (c.mean() for c in np.nonzero(effect))
    ys, xs = np.nonzero(mask)
    extent = max(float(np.ptp(ys)), float(np.ptp(xs)), 1.0)
    dy, dx = ey - oy, ex - ox
    if np.hypot(dx, dy) < 0.2 * extent:
        return ""
    side = _DIRECTIONS[int(np.round(np.arctan2(dy, dx) / (np.pi / 4))) % 8]
    if side == "bottom":
        return "below it"
    if side == "top":
        return "above it"
    return f"to its {side}"


def with_article(phrase: str) -> str:
    """'a red box', 'an orange box'."""
    return f"{'an' if phrase[:1].lower() in 'aeiou' else 'a'} {phrase}"
