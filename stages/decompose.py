"""Layer decomposition: composite + background → foreground RGBA, by the physics in DESIGN.md.

Whatever produced the background (a paired clean plate, or inpainting + relighting), the foreground
follows from one rule: the minimal alpha that explains the composite per pixel,
``α = max_c max((B−C)/B, (C−B)/(1−B))`` and ``F = (C − (1−α)B)/α``, with object pixels forced opaque
(``α = 1, F = C``). A cast shadow ``C = s·B`` comes out as ``F = 0, α = 1 − s``, which recomposites exactly.
"""
from __future__ import annotations

import cv2
import numpy as np

from curation.compositing import to_float, to_uint8

EPS = 1e-4


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


def inpaint(image: np.ndarray, region: np.ndarray, radius: int) -> np.ndarray:
    """Fill ``region`` of an RGB uint8 image from its surroundings (OpenCV Telea)."""
    return cv2.inpaint(image, region.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)


def relight(composite: np.ndarray, lit_estimate: np.ndarray, region: np.ndarray, smooth_px: float = 2.0) -> np.ndarray:
    """Undo a cast shadow in ``region``: ``B = C / s`` with ``s`` from the lit surroundings.

    ``lit_estimate`` is a texture-free guess of the lit surface (an inpaint from outside the shadow);
    the shading ratio ``s = C/lit`` is smoothed so that ``C/s`` keeps the surface's own texture.
    """
    c, lit = to_float(composite), to_float(lit_estimate)
    gray_c = c.mean(axis=2)
    gray_l = np.maximum(lit.mean(axis=2), EPS)
    s = np.clip(gray_c / gray_l, 0.05, 1.0)
    s = np.where(region, s, 1.0).astype(np.float32)
    if smooth_px > 0:
        s = np.clip(cv2.GaussianBlur(s, (0, 0), smooth_px), 0.05, 1.0)
        s = np.where(region, s, 1.0)
    relit = np.clip(c / s[..., None], 0, 1)
    return to_uint8(np.where(region[..., None], relit, c))


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask.astype(bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def background_unpaired(composite: np.ndarray, obj: np.ndarray, effect: np.ndarray, radius: int) -> np.ndarray:
    """No clean plate: inpaint the object, relight its shadow from the lit surroundings."""
    obj_region = dilate(obj, 2)
    effect_region = dilate(effect, 2) & ~obj_region
    lit = inpaint(composite, obj_region | effect_region, radius)
    relit = relight(composite, lit, effect_region)
    return np.where(obj_region[..., None], lit, relit)


def background_shadowfree(composite: np.ndarray, shadowfree: np.ndarray, obj: np.ndarray, radius: int) -> np.ndarray:
    """A shadow-free image with the object still present (DESOBA style): inpaint just the object."""
    return inpaint(shadowfree, dilate(obj, 2), radius)
