"""What the curator sees: one triplet as a fixed-size stack of channels around its object.

The crop is a square around the object *and* its effect (alpha > 0), with context, so the network
sees the object at a useful resolution whatever the photo size. Pixels outside the photo are zero and
flagged in a ``valid`` channel: an object cut by the image border then touches the invalid region, which
is how truncation stays visible after the crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from curation.core.decompose import Triplet

#: channel order of the network input; stored in every checkpoint and checked on load
CHANNELS: tuple[str, ...] = (
    "composite_r",
    "composite_g",
    "composite_b",
    "background_r",
    "background_g",
    "background_b",
    "foreground_r",
    "foreground_g",
    "foreground_b",
    "foreground_a",
    "mask",
    "effect",
    "valid",
)
CONTEXT = 1.5  # crop side = CONTEXT × the longer side of the object+effect box
MIN_SIDE = 24  # px: tiny objects still get some surroundings


def crop_box(triplet: Triplet) -> tuple[int, int, int]:
    """``(x0, y0, side)`` of the square crop; may extend past the image.

    Framed on the object and its *declared* effect mask rather than on alpha > 0, so that faint
    alpha noise far away (a JPEG clean plate) cannot blow the crop up to the whole photo.
    """
    region = (triplet.mask > 0) | (triplet.effect > 0)
    ys, xs = np.nonzero(region)
    h, w = region.shape
    if len(xs) == 0:
        return 0, 0, max(h, w)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = max(MIN_SIDE, int(round(CONTEXT * max(x1 - x0, y1 - y0))))
    return int((x0 + x1 - side) // 2), int((y0 + y1 - side) // 2), side


def features(triplet: Triplet, size: int) -> np.ndarray:
    """The network input for one triplet: uint8 array (len(CHANNELS), size, size)."""
    triplet.check()
    h, w = triplet.composite.shape[:2]
    stack = np.dstack(
        [
            triplet.composite,
            triplet.background,
            triplet.foreground,
            np.where(triplet.mask > 0, 255, 0).astype(np.uint8),
            np.where(triplet.effect > 0, 255, 0).astype(np.uint8),
            np.full((h, w), 255, np.uint8),
        ]
    )
    x0, y0, side = crop_box(triplet)
    canvas = np.zeros((side, side, stack.shape[2]), np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = stack[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    # cv2.resize takes at most 4 channels per call: resize in groups
    groups = [
        cv2.resize(canvas[..., i : i + 4], (size, size), interpolation=interp).reshape(size, size, -1)
        for i in range(0, canvas.shape[2], 4)
    ]
    return np.ascontiguousarray(np.dstack(groups).transpose(2, 0, 1))
