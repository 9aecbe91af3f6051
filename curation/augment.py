"""Layer-aligned crops, resizes and flips: one window per sample, applied to every layer alike.

A trainer that crops the composite, the background and the foreground separately breaks
``foreground over background == composite``. Here one :class:`Window` is drawn per sample and all layers
go through the same crop, resize and flip in one stacked tensor. The foreground is resampled
*premultiplied* (``α·F`` and ``α``, then divided back): resampling straight RGB would mix in the colour of
transparent pixels, which carries no meaning, and the recomposite would drift at every soft edge. What
remains is the resampling of a product, ``R(α·B) ≠ R(α)·R(B)``, small where α or B is smooth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Crop = Literal["random", "center", "resize"]
CROPS: tuple[str, ...] = ("random", "center", "resize")
#: random crops take a square of this fraction of the short side (uniform), then resize it to the output size
RANDOM_SIDE = (0.5, 1.0)
#: below this alpha the straight colour is undefined (0/0); such pixels get colour 0
ALPHA_EPS = 1.0 / 512


@dataclass(frozen=True)
class Window:
    """Where to cut (rows ``y:y+h``, columns ``x:x+w`` of the stored image) and whether to mirror."""

    y: int
    x: int
    h: int
    w: int
    flip: bool = False


def _span(lo_edge: int, hi_edge: int, side: int, extent: int, rng: np.random.Generator) -> int:
    """Start of a ``side``-long interval inside ``[0, extent)`` that covers ``[lo_edge, hi_edge)`` if it fits,
    else its centre: random crops keep the object (and its shadow) in view."""
    lo, hi = max(0, hi_edge - side), min(lo_edge, extent - side)
    if lo > hi:
        centre = (lo_edge + hi_edge - 1) // 2
        lo, hi = max(0, centre - side + 1), min(centre, extent - side)
    return int(rng.integers(lo, hi + 1))


def draw_window(h: int, w: int, crop: Crop, rng: np.random.Generator, box: tuple[int, int, int, int] | None) -> Window:
    """One window for an ``h×w`` sample; ``box`` (x, y, w, h) is the part the crop should keep in view."""
    if crop == "resize":
        return Window(0, 0, h, w)
    short = min(h, w)
    if crop == "center":
        return Window((h - short) // 2, (w - short) // 2, short, short)
    if crop != "random":
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    side = max(1, int(round(short * rng.uniform(*RANDOM_SIDE))))
    if box is None:
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    else:
        bx, by, bw, bh = box
        x, y = _span(bx, bx + bw, side, w, rng), _span(by, by + bh, side, h, rng)
    return Window(y, x, side, side, flip=bool(rng.random() < 0.5))


def alpha_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the nonzero alpha: the object with its shadow."""
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def _channels(image: np.ndarray) -> torch.Tensor:
    """uint8 HxW or HxWxC → float32 CxHxW in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(image))
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    return t.float().div_(255.0)


def apply_window(layers: dict[str, np.ndarray], window: Window, size: int) -> dict[str, torch.Tensor]:
    """Cut, resize to ``size×size`` and flip every layer alike.

    ``layers``: composite and background (HxWx3), foreground (HxWx4, straight alpha), mask and effect (HxW),
    all uint8. Returns float32 tensors in [0, 1]: 3, 3, 4, 1 and 1 channels.
    """
    ys, xs = slice(window.y, window.y + window.h), slice(window.x, window.x + window.w)
    fg = _channels(layers["foreground"][ys, xs])
    alpha = fg[3:]
    stack = torch.cat(
        [
            _channels(layers["composite"][ys, xs]),
            _channels(layers["background"][ys, xs]),
            fg[:3] * alpha,
            alpha,
            _channels(layers["mask"][ys, xs]),
            _channels(layers["effect"][ys, xs]),
        ]
    )
    if (window.h, window.w) != (size, size):
        # antialias: a downscale averages like a box filter instead of aliasing; weights stay >= 0, so the
        # premultiplied colour stays within its alpha and values within [0, 1] (up to float rounding)
        stack = F.interpolate(stack[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[
            0
        ].clamp_(0.0, 1.0)
    if window.flip:
        stack = stack.flip(-1)
    premult, alpha = stack[6:9], stack[9:10]
    straight = torch.where(alpha > ALPHA_EPS, premult / alpha.clamp_min(ALPHA_EPS), torch.zeros_like(premult))
    return {
        "composite": stack[0:3].contiguous(),
        "background": stack[3:6].contiguous(),
        "foreground": torch.cat([straight.clamp_(0.0, 1.0), alpha]),
        "mask": stack[10:11].contiguous(),
        "effect": stack[11:12].contiguous(),
    }
