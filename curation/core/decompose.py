"""Layer decomposition: composite + background → foreground RGBA, by the physics in DESIGN.md.

Whatever produced the background (a paired clean plate, or inpainting + relighting), the foreground
follows from one rule: the minimal alpha that explains the composite per pixel,
``α = max_c max((B−C)/B, (C−B)/(1−B))`` and ``F = (C − (1−α)B)/α``, with object pixels forced opaque
(``α = 1, F = C``). A cast shadow ``C = s·B`` comes out as ``F = 0, α = 1 − s``, which recomposites exactly.
At the object's outline, where a pixel mixes object and background, α is estimated softly from the
object colour just inside and the background behind (``C = αF + (1−α)B`` projected onto ``F − B``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from curation.core.compositing import to_float, to_uint8
from curation.core.inpaint import Inpainter
from curation.core.morphology import bbox_of, dilate, erode

EPS = 1e-4
MIN_CONTRAST = 0.08  # |F − B| below this leaves an edge pixel's alpha undetermined (kept hard)
#: the ring (px) around an object mask that belongs to the object's layer: masks are rarely pixel-exact,
#: so the background is re-made there and its alpha is the object's edge, not an effect
OBJECT_MARGIN_PX = 2
#: alpha above which a pixel outside the object's ring belongs to its effect layer
EFFECT_ALPHA = 0.04


@dataclass
class Triplet:
    """One decomposed instance, as a sample stores it (all uint8, same height and width)."""

    composite: np.ndarray  # H×W×3
    background: np.ndarray  # H×W×3
    foreground: np.ndarray  # H×W×4, straight alpha
    mask: np.ndarray  # H×W, object (>0)
    effect: np.ndarray  # H×W, shadow/reflection (>0)

    def check(self) -> None:
        """Raise ValueError on layers that cannot belong together."""
        h, w = self.composite.shape[:2]
        want = {
            "composite": (h, w, 3),
            "background": (h, w, 3),
            "foreground": (h, w, 4),
            "mask": (h, w),
            "effect": (h, w),
        }
        for name, shape in want.items():
            arr = getattr(self, name)
            if arr is None or arr.shape != shape:
                raise ValueError(f"{name} has shape {None if arr is None else arr.shape}, expected {shape}")


def minimal_alpha(composite: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per-pixel smallest α in [0, 1] for which some F in [0, 1] explains C over B (float inputs)."""
    c, b = composite, background
    darker = np.where(b > EPS, (b - c) / np.maximum(b, EPS), 0.0)
    lighter = np.where(b < 1 - EPS, (c - b) / np.maximum(1 - b, EPS), 0.0)
    return np.clip(np.maximum(darker, lighter).max(axis=2), 0.0, 1.0)


def layers_from_background(
    composite: np.ndarray, background: np.ndarray, object_alpha: np.ndarray, noise_floor: float = 2.5 / 255
) -> np.ndarray:
    """The foreground RGBA (uint8, straight alpha) that puts ``background`` back to ``composite``.

    ``object_alpha`` (float, 1 inside the object, soft at its edge) is a lower bound on α; below
    ``noise_floor`` the per-pixel alpha is treated as sensor/JPEG noise and set to 0.
    """
    c, b = to_float(composite), to_float(background)
    alpha = minimal_alpha(c, b)
    alpha = np.where(alpha < noise_floor, 0.0, alpha)
    alpha = np.maximum(alpha, object_alpha)
    a3 = alpha[..., None]
    fg = np.where(a3 > EPS, (c - (1 - a3) * b) / np.maximum(a3, EPS), 0.0)
    fg = np.where(object_alpha[..., None] >= 1.0, c, fg)
    return np.dstack([to_uint8(np.clip(fg, 0, 1)), to_uint8(alpha)])


def soft_object_alpha(composite: np.ndarray, background: np.ndarray, obj: np.ndarray, band_px: int) -> np.ndarray:
    """Float object alpha: 1 inside, 0 outside, and in the ``band_px`` band just inside the outline the α for
    which ``C = αF + (1−α)B``, with F the object colour carried outward from the interior (inpainted from it).
    Outside the mask no estimate is needed: the minimal-alpha rule already gives mixed pixels their α."""
    alpha = obj.astype(np.float32)
    box = bbox_of(obj)
    if band_px <= 0 or box is None:
        return alpha
    x, y, w, h = box
    pad = 3 * band_px + 4
    ys = slice(max(0, y - pad), min(obj.shape[0], y + h + pad))
    xs = slice(max(0, x - pad), min(obj.shape[1], x + w + pad))
    o = obj[ys, xs]
    core = erode(o, band_px)
    band = o & ~core
    if not core.any() or not band.any():
        return alpha
    f = to_float(cv2.inpaint(composite[ys, xs], (~core).astype(np.uint8) * 255, band_px + 2, cv2.INPAINT_TELEA))
    c, b = to_float(composite[ys, xs]), to_float(background[ys, xs])
    d = f - b
    norm = (d * d).sum(axis=2)
    est = np.clip(((c - b) * d).sum(axis=2) / np.maximum(norm, EPS), 0.0, 1.0)
    known = band & (norm > MIN_CONTRAST**2)
    crop = alpha[ys, xs]
    crop[known] = est[known]
    return alpha


def decompose(composite: np.ndarray, background: np.ndarray, obj: np.ndarray, soft_edge_px: int) -> Triplet:
    """The layering recipe, given a background and the object mask: stage 2 and the curator's data generator
    both call this, so the curator learns from layers made exactly like those it judges.

    The foreground is the minimal-alpha rule with the object opaque (soft within ``soft_edge_px`` of its
    outline); the effect is what carries alpha outside the object's ring.
    """
    obj = obj.astype(bool)
    foreground = layers_from_background(
        composite, background, soft_object_alpha(composite, background, obj, soft_edge_px)
    )
    effect = (foreground[..., 3] > EFFECT_ALPHA * 255) & ~dilate(obj, OBJECT_MARGIN_PX)
    return Triplet(composite, background, foreground, obj.astype(np.uint8) * 255, effect.astype(np.uint8) * 255)


def relight(composite: np.ndarray, lit_estimate: np.ndarray, region: np.ndarray, smooth_px: float = 0.0) -> np.ndarray:
    """Undo a cast shadow in ``region``: ``B = C / s`` per channel, with ``s`` from the lit surroundings.

    ``lit_estimate`` is a texture-free guess of the lit surface (an inpaint from outside the shadow);
    with ``smooth_px > 0`` the shading ratio ``s = C/lit`` is smoothed so that ``C/s`` keeps the surface's own
    texture (measured in docs/layers.md: on thin real shadows any smoothing mixes core and penumbra and costs
    more alpha accuracy than the texture gains, hence the default 0, where ``B = lit``). ``s`` is
    per channel because shade is lit by the sky, not the sun: it darkens red far more than blue. The
    smoothing is normalised over the region only, so a thin shadow is not averaged with the lit ``s = 1``.
    """
    c, lit = to_float(composite), to_float(lit_estimate)
    inside = region.astype(np.float32)
    s = np.clip(c / np.maximum(lit, EPS), 0.05, 1.0) * inside[..., None]
    if smooth_px > 0:
        weight = np.maximum(cv2.GaussianBlur(inside, (0, 0), smooth_px), EPS)[..., None]
        s = cv2.GaussianBlur(s, (0, 0), smooth_px) / weight
    s = np.where(region[..., None], np.clip(s, 0.05, 1.0), 1.0)
    relit = np.clip(c / s, 0, 1)
    return to_uint8(np.where(region[..., None], relit, c))


def background_unpaired(
    composite: np.ndarray, obj: np.ndarray, effect: np.ndarray, inpainter: Inpainter, smooth_px: float = 0.0
) -> np.ndarray:
    """No clean plate: relight the object's shadow from the lit surroundings, then fill the object
    (:func:`shadow_relit`, then :func:`background_shadowfree`)."""
    return background_shadowfree(shadow_relit(composite, obj, effect, smooth_px), obj, inpainter)


def shadow_relit(composite: np.ndarray, obj: np.ndarray, effect: np.ndarray, smooth_px: float = 0.0) -> np.ndarray:
    """The photo with the object's shadow relit and the object still present: what the object is filled from.

    The lit surface under a shadow comes from Telea, a smooth local fill, whatever fills the object: ``B = lit``
    there is a low-frequency estimate, and a textured fill only adds detail that does not match the ground
    (measured in docs/layers.md). The object is then filled from the relit image, as from a shadow-free photo.
    """
    obj_region = fill_region(obj)
    effect_region = dilate(effect, 2) & ~obj_region
    if not effect_region.any():
        return composite
    lit = cv2.inpaint(composite, (obj_region | effect_region).astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    return relight(composite, lit, effect_region, smooth_px)


def fill_region(obj: np.ndarray) -> np.ndarray:
    """The pixels the background fill replaces: the object and its ring (:data:`OBJECT_MARGIN_PX`)."""
    return dilate(obj, OBJECT_MARGIN_PX)


#: a real pair's noise level: this quantile of photo−plate differences far from the object (JPEG noise is
#: heavy-tailed: a standard deviation or a median absolute difference sits far below its ringing at edges)
PAIR_NOISE_QUANTILE = 99.5
#: the pair's noise is measured this far (× the object's size) from the object, where only noise differs
PAIR_NOISE_FAR = 1.0


def pair_noise(composite: np.ndarray, plate: np.ndarray, obj: np.ndarray) -> float:
    """The noise level (grey levels) of a real pair, from its differences far from the object: 0 for a lossless
    pair (PNG, rendered), up to a dozen levels or more for JPEG. Measured around the differences' median
    (another exposure is a bias, not noise) on the brightening side only: noise is symmetric, an effect (a
    shadow the plate lacks) only darkens, so a large shadow far from the object does not pass for noise."""
    size = int(np.sqrt(max(int(obj.sum()), 1)))
    far = ~dilate(obj, max(8, int(PAIR_NOISE_FAR * size)))
    if far.sum() < 64:
        far = ~dilate(obj, 8)
    diff = (composite.astype(np.int16) - plate.astype(np.int16))[far]
    if not diff.size:
        return 0.0
    return max(0.0, float(np.percentile(diff - np.median(diff, axis=0), PAIR_NOISE_QUANTILE)))


def paired_plate(composite: np.ndarray, plate: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """The plate with the pair's noise taken out, so that compression noise never reads as an effect: where it
    differs from the photo by no more than the pair's noise level, or only in specks (one or two pixels across),
    it is the photo. A shadow darkens far more, over a region; a lossless pair comes back unchanged."""
    level = pair_noise(composite, plate, obj)
    if level <= 0:
        return plate
    changed = np.abs(composite.astype(np.int16) - plate.astype(np.int16)).max(axis=2) > level
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    kept = changed & cv2.dilate(cv2.morphologyEx(changed.astype(np.uint8), cv2.MORPH_OPEN, cross), cross).astype(bool)
    return np.where(kept[..., None], plate, composite)


def background_shadowfree(shadowfree: np.ndarray, obj: np.ndarray, inpainter: Inpainter) -> np.ndarray:
    """A shadow-free image with the object still present (DESOBA style): inpaint just the object."""
    return inpainter(shadowfree, fill_region(obj))
