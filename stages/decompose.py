"""Layer decomposition: composite + background → foreground RGBA, by the physics in DESIGN.md.

Whatever produced the background (a paired clean plate, or inpainting + relighting), the foreground
follows from one rule: the minimal alpha that explains the composite per pixel,
``α = max_c max((B−C)/B, (C−B)/(1−B))`` and ``F = (C − (1−α)B)/α``, with object pixels forced opaque
(``α = 1, F = C``). A cast shadow ``C = s·B`` comes out as ``F = 0, α = 1 − s``, which recomposites exactly.
At the object's outline, where a pixel mixes object and background, α is estimated softly from the
object colour just inside and the background behind (``C = αF + (1−α)B`` projected onto ``F − B``).
"""
from __future__ import annotations

import cv2
import numpy as np

from curation.compositing import bbox_of, to_float, to_uint8

EPS = 1e-4
MIN_CONTRAST = 0.08  # |F − B| below this leaves an edge pixel's alpha undetermined (kept hard)
#: the ring (px) around an object mask that belongs to the object's layer: masks are rarely pixel-exact,
#: so the background is re-made there and its alpha is the object's edge, not an effect
OBJECT_MARGIN_PX = 2


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


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask.astype(bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def erode(mask: np.ndarray, px: int) -> np.ndarray:
    return ~dilate(~mask.astype(bool), px)


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


class OpenCVInpainter:
    """Fill a region from its surroundings with OpenCV (Telea or Navier-Stokes): no weights, CPU."""

    def __init__(self, method: str = "telea", radius: int = 5):
        self.name = f"opencv-{method}"
        self.flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        self.radius = radius

    def __call__(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        return cv2.inpaint(image, region.astype(np.uint8) * 255, self.radius, self.flag)


class ExportedInpainter:
    """A learned inpainter (e.g. LaMa) loaded once from a local ``torch.export`` program (``.pt2``).

    Contract: ``model(image[1,3,H,W] float 0..1, mask[1,1,H,W] float {0,1}) -> image[1,3,H,W] 0..1``,
    exported with dynamic H and W; only the masked pixels of its output are used, so known pixels stay exact.
    """

    def __init__(self, checkpoint: str, device: str = "cpu"):
        import torch

        path = str(checkpoint)
        try:
            self.model = torch.export.load(path).module().to(device)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same configuration error
            raise RuntimeError(f"inpainting model {path} cannot be loaded (masks.inpaint.checkpoint): "
                               f"{type(exc).__name__}: {exc}") from None
        self.device, self.torch, self.name = device, torch, f"exported:{path.rsplit('/', 1)[-1]}"

    def __call__(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(to_float(image)).permute(2, 0, 1)[None].to(self.device)
        m = torch.from_numpy(region.astype(np.float32))[None, None].to(self.device)
        with torch.inference_mode():
            y = self.model(x * (1 - m), m)
        out = to_uint8(y[0].permute(1, 2, 0).clamp(0, 1).float().cpu().numpy())
        return np.where(region[..., None], out, image)


def build_inpainter(backend: str, radius: int = 5, checkpoint: str | None = None, device: str = "cpu"):
    """The configured inpainter: ``telea`` / ``navier_stokes`` (OpenCV) or ``exported`` (a local model)."""
    if backend == "exported":
        return ExportedInpainter(str(checkpoint), device)
    return OpenCVInpainter(backend, radius)


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


def background_unpaired(composite: np.ndarray, obj: np.ndarray, effect: np.ndarray, inpainter,
                        smooth_px: float = 0.0) -> np.ndarray:
    """No clean plate: inpaint the object, relight its shadow from the lit surroundings."""
    obj_region = dilate(obj, OBJECT_MARGIN_PX)
    effect_region = dilate(effect, 2) & ~obj_region
    lit = inpainter(composite, obj_region | effect_region)
    relit = relight(composite, lit, effect_region, smooth_px)
    return np.where(obj_region[..., None], lit, relit)


def background_shadowfree(shadowfree: np.ndarray, obj: np.ndarray, inpainter) -> np.ndarray:
    """A shadow-free image with the object still present (DESOBA style): inpaint just the object."""
    return inpainter(shadowfree, dilate(obj, OBJECT_MARGIN_PX))
