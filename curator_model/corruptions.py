"""Realistic ways a decomposition goes wrong, made from a correct one, one function per failure mode.

Each corruption changes the *inputs* of the decomposition the way a real mistake would (a mask too
tight or too loose, a shadow left in the plate, a crop, a second object) and then re-derives the
foreground with stage 2's own recipe (:func:`curation.core.decompose.decompose`). So every corrupted
triplet still recomposites, like the ones that reach stage 4 do: recomposite PSNR cannot catch them.
Each returns ``None`` when the mode does not apply to that sample (e.g. no visible shadow to lose).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from curation.core.decompose import Triplet
from curation.core.morphology import dilate, erode
from curation.core.scenes import SHAPES, silhouette
from curator_model.layering import Layering


def _scale(t: Triplet) -> float:
    """Object size (px) so that corruption sizes follow the object, not the photo."""
    return float(np.sqrt(max((t.mask > 0).sum(), 1)))


def ghost(t: Triplet, rng: np.random.Generator, lay: Layering) -> Triplet | None:
    """The object is faintly left in the background: a half-removed blend, or a too-tight inpaint that smears its
    rim inward."""
    obj = t.mask > 0
    if rng.random() < 0.5:
        g = rng.uniform(0.25, 0.6)
        soft = cv2.GaussianBlur(obj.astype(np.float32), (0, 0), 1.5)[..., None] * g
        bg = np.clip(t.background * (1 - soft) + t.composite * soft, 0, 255).round().astype(np.uint8)
    else:
        px = max(2, int(_scale(t) * rng.uniform(0.04, 0.12)))
        hole = erode(obj, px)
        if not hole.any():
            return None
        smeared = lay.inpaint(t.composite, hole)
        bg = np.where(dilate(obj, 1)[..., None], smeared, t.background)
    return lay.decompose(t.composite, bg, obj)


def lost_shadow(t: Triplet, rng: np.random.Generator, lay: Layering) -> Triplet | None:
    """The shadow stays in the background: the foreground carries the object alone (or a faint rest of its shadow)."""
    obj = t.mask > 0
    shadow = (t.foreground[..., 3] > 0) & ~obj
    if (t.effect > 0).sum() < 0.05 * obj.sum():
        return None
    keep = rng.uniform(0.0, 0.3)  # fraction of the shadow that stays in the foreground
    w = shadow[..., None] * (1 - keep)
    bg = np.clip(t.background * (1 - w) + t.composite * w, 0, 255).round().astype(np.uint8)
    return lay.decompose(t.composite, bg, obj)


def took_background(t: Triplet, rng: np.random.Generator, lay: Layering) -> Triplet | None:
    """The mask spills over a piece of ground next to the object: it is opaque in the foreground and missing
    (inpainted) from the background."""
    obj = t.mask > 0
    ys, xs = np.nonzero(obj & ~erode(obj, 1))
    if len(xs) == 0:
        return None
    s = _scale(t)
    i = int(rng.integers(len(xs)))
    h, w = obj.shape
    blob = np.zeros((h, w), np.uint8)
    axes = (max(3, int(s * rng.uniform(0.2, 0.45))), max(3, int(s * rng.uniform(0.15, 0.35))))
    cv2.ellipse(blob, (int(xs[i]), int(ys[i])), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    chunk = blob.astype(bool) & ~obj
    if chunk.sum() < 0.08 * obj.sum():
        return None
    bg = np.where(chunk[..., None], lay.inpaint(t.background, dilate(chunk, 1)), t.background)
    return lay.decompose(t.composite, bg, obj | chunk)


def truncated(t: Triplet, rng: np.random.Generator, lay: Layering) -> Triplet | None:
    """The photo's border cuts through the object: every layer is cropped 20-50 % into it from one side."""
    ys, xs = np.nonzero(t.mask > 0)
    if len(xs) == 0:
        return None
    h, w = t.mask.shape
    x0, x1, y0, y1 = 0, w, 0, h
    side = int(rng.integers(4))
    f = rng.uniform(0.2, 0.5)
    bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    if side == 0:
        x0 = int(xs.min() + f * bw)
    elif side == 1:
        x1 = int(xs.max() + 1 - f * bw)
    elif side == 2:
        y0 = int(ys.min() + f * bh)
    else:
        y1 = int(ys.max() + 1 - f * bh)
    return crop(t, x0, y0, x1, y1)


def occluded(t: Triplet, rng: np.random.Generator, lay: Layering) -> Triplet | None:
    """Another object overlaps this one: in front of it in the scene, or merged into its layer."""
    obj = t.mask > 0
    ys, xs = np.nonzero(obj)
    if len(xs) == 0:
        return None
    h, w = obj.shape
    bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    oh, ow = max(6, int(bh * rng.uniform(0.5, 1.0))), max(6, int(bw * rng.uniform(0.5, 1.0)))
    alpha = np.zeros((h, w), np.float32)
    colour = np.zeros((h, w, 3), np.float32)
    for _ in range(20):  # place it so that it hides 15-50 % of the object
        if ow > w or oh > h:
            return None
        x = min(max(int(rng.integers(xs.min(), xs.max() + 1)) - ow // 2, 0), w - ow)  # centred on the object
        y = min(max(int(rng.integers(ys.min(), ys.max() + 1)) - oh // 2, 0), h - oh)
        alpha[:] = 0
        alpha[y : y + oh, x : x + ow] = silhouette(rng, SHAPES[int(rng.integers(len(SHAPES)))], oh, ow)
        hidden = (alpha > 0.5) & obj
        if 0.15 <= hidden.sum() / obj.sum() <= 0.5:
            break
    else:
        return None
    colour[y : y + oh, x : x + ow] = _scene_texture(t.composite, oh, ow, rng) * rng.uniform(0.6, 1.2, 3)
    a = alpha[..., None]

    def paint(img: np.ndarray) -> np.ndarray:
        return np.clip(a * colour * 255 + (1 - a) * img, 0, 255).round().astype(np.uint8)

    comp = paint(t.composite)
    if rng.random() < 0.5:  # in front, part of the scene: the target's layer has a hole
        return lay.decompose(comp, paint(t.background), obj & (alpha < 0.5))
    return lay.decompose(comp, t.background, obj | (alpha > 0.5))  # merged with the target


def _scene_texture(image: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An occluder's look, cut from the same photo (float, h×w): like the clutter of good samples, so that
    only where it stands (on the object, or merged into its layer) tells an occlusion apart."""
    H, W = image.shape[:2]
    ch, cw = int(rng.integers(max(1, H // 6), H + 1)), int(rng.integers(max(1, W // 6), W + 1))
    y, x = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
    patch = image[y : y + ch, x : x + cw].astype(np.float32) / 255.0
    return cv2.resize(patch[:, ::-1] if rng.random() < 0.5 else patch, (w, h), interpolation=cv2.INTER_AREA)


def crop(t: Triplet, x0: int, y0: int, x1: int, y1: int) -> Triplet:
    return Triplet(
        t.composite[y0:y1, x0:x1],
        t.background[y0:y1, x0:x1],
        t.foreground[y0:y1, x0:x1],
        t.mask[y0:y1, x0:x1],
        t.effect[y0:y1, x0:x1],
    )


def safe_crop(t: Triplet, rng: np.random.Generator) -> Triplet:
    """A random crop that keeps the object and its effect whole (so crop geometry alone tells nothing)."""
    ys, xs = np.nonzero((t.mask > 0) | (t.foreground[..., 3] > 0))
    h, w = t.mask.shape
    if len(xs) == 0:
        return t
    m = 4
    x0 = int(rng.integers(0, max(1, xs.min() - m + 1)))
    y0 = int(rng.integers(0, max(1, ys.min() - m + 1)))
    x1 = int(rng.integers(min(w, xs.max() + m + 1), w + 1))
    y1 = int(rng.integers(min(h, ys.max() + m + 1), h + 1))
    return crop(t, x0, y0, x1, y1)


CORRUPTIONS: dict[str, Callable[[Triplet, np.random.Generator, Layering], Triplet | None]] = {
    "ghost": ghost,
    "lost_shadow": lost_shadow,
    "took_background": took_background,
    "truncated": truncated,
    "occluded": occluded,
}
