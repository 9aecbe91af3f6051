"""Quality checks of a layered triplet that can fail: each tests something the decomposition did not fit.

The recomposite PSNR cannot fail (F and α are solved from C and B, so ``F over B == C`` for any B). These
measure what that leaves open, from the stored layers alone (composite, background, foreground, object
mask, effect mask), so that stage 2, ``curate eval-layers`` and the curator compute them the same way:

- ``drift``: the background equals the composite outside the object + effect region (share of pixels
  that differ by more than sensor/PNG noise); a fill or relight that leaks beyond its region shows here;
- ``brightened`` / ``ratio_roughness``: inside the effect a shadow only darkens (``C ≤ B``), and by a
  ratio ``C/B`` that varies smoothly (the ground's texture cancels in it); a smeared or drifted
  background, or an effect that is not a shadow, breaks either;
- ``fill_texture`` / ``fill_seam`` / ``fill_ghost``: without a reference, the fill under the object is as
  textured as a ring of ground around it, continuous in colour across its border, and does not repeat
  the removed object's edges;
- ``effect_area`` / ``effect_foreign``: the effect is not many times the object's size, and holds no
  piece whose shading ratio has another colour than the shadow's own (a piece of a neighbouring
  object, not shadowed ground).

:func:`measure` computes every value; :func:`failures` compares them with the thresholds of
``masks.quality`` and names what failed, in a fixed order (the first is the row's reject reason).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from curation.core.config.masks import QualityOptions
from curation.core.morphology import dilate, erode
from curation.core.reasons import Reason

#: colour-level differences (0..255) at or below this are noise: B and C of one photo, PNG-stored
NOISE_LEVEL = 6
#: grey levels added to gradient means so that flat ground (sky, a wall) compares as flat, not as noise
GRADIENT_FLOOR = 2.0
OBJECT_RING_PX = 2  # the object's edge ring belongs to the object's layer (decompose.OBJECT_MARGIN_PX)


@dataclass
class Quality:
    """The measured values of one triplet (``None`` where the region it needs is empty)."""

    drift: float
    brightened: float | None
    ratio_roughness: float | None
    fill_texture: float | None
    fill_seam: float | None
    fill_ghost: float | None
    effect_area: float
    effect_foreign: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {k: (None if v is None else round(float(v), 4)) for k, v in asdict(self).items()}


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _gradient(image: np.ndarray) -> np.ndarray:
    g = _luma(image)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))


def _crop(*masks: np.ndarray, pad: int) -> tuple[slice, slice]:
    """The bounding box of the union of ``masks`` grown by ``pad``: the checks' work follows the object."""
    union = np.logical_or.reduce([m.astype(bool) for m in masks])
    x, y, w, h = cv2.boundingRect(union.astype(np.uint8))
    return (slice(max(0, y - pad), y + h + pad), slice(max(0, x - pad), x + w + pad))


def measure(composite: np.ndarray, background: np.ndarray, foreground: np.ndarray, mask: np.ndarray,
            effect: np.ndarray) -> Quality:
    """Every quality value of one triplet (uint8 layers, bool or 0/255 masks)."""
    obj, eff = mask.astype(bool), effect.astype(bool)
    diff = np.abs(composite.astype(np.int16) - background.astype(np.int16)).max(axis=2)
    outside = ~dilate(obj | eff, 3)
    drift = float((diff[outside] > NOISE_LEVEL).mean()) if outside.any() else 0.0
    size = int(np.sqrt(max(obj.sum(), 1)))
    ys, xs = _crop(obj, eff, pad=size // 2 + 8)
    c, b, o, e = composite[ys, xs], background[ys, xs], obj[ys, xs], eff[ys, xs]
    brightened, roughness, foreign = _shadow_values(c, b, e)
    texture, seam, ghost = _fill_values(c, b, o, e, size)
    return Quality(drift=drift, brightened=brightened, ratio_roughness=roughness, fill_texture=texture,
                   fill_seam=seam, fill_ghost=ghost, effect_area=float(eff.sum() / max(obj.sum(), 1)),
                   effect_foreign=foreign)


def _shadow_values(c: np.ndarray, b: np.ndarray, e: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """Inside the effect: share brightened, roughness of the log shading ratio, share of foreign-coloured ratio."""
    if not e.any():
        return None, None, None
    cf, bf = c.astype(np.float32) + 1.0, b.astype(np.float32) + 1.0
    brightened = float(((cf - bf).max(axis=2) > NOISE_LEVEL)[e].mean())
    log_s = np.log(cf.mean(axis=2)) - np.log(bf.mean(axis=2))
    core = erode(e, 2)  # away from the effect's outline, where the ratio really steps
    roughness = None
    if core.sum() >= 16:
        smooth = cv2.medianBlur(log_s.astype(np.float32), 5)
        roughness = float(np.abs(log_s - smooth)[core].mean())
    # the shadow's colour: the chromaticity of its per-channel ratio C/B, the same over the whole shadow
    s = cf / bf
    chroma = s / s.sum(axis=2, keepdims=True)
    dark = e & (log_s < -0.05)
    foreign = None
    if dark.sum() >= 16:
        ref = np.median(chroma[dark], axis=0)
        foreign = float((np.abs(chroma - ref).max(axis=2) > 0.06)[dark].mean())
    return brightened, roughness, foreign


def _fill_values(c: np.ndarray, b: np.ndarray, o: np.ndarray, e: np.ndarray,
                 size: int) -> tuple[float | None, float | None, float | None]:
    """Under the object: texture against a ring of ground, colour step across the border, object edges kept."""
    hole = dilate(o, OBJECT_RING_PX)
    inner = erode(hole, 2)
    ring = dilate(hole, max(4, size // 4)) & ~dilate(hole, 1) & ~dilate(e, 2)
    if inner.sum() < 16 or ring.sum() < 16:
        return None, None, None
    gb = _gradient(b)
    texture = float((gb[inner].mean() + GRADIENT_FLOOR) / (gb[ring].mean() + GRADIENT_FLOOR))
    lab = cv2.cvtColor(b, cv2.COLOR_RGB2Lab).astype(np.float32)
    band_in, band_out = hole & ~erode(hole, 3), dilate(hole, 3) & ~dilate(hole, 1) & ~e
    if band_out.sum() < 8:
        band_out = ring
    step = np.abs(lab[band_in].mean(axis=0) - lab[band_out].mean(axis=0)).max()
    seam = float(step / (lab[ring].std(axis=0).max() + 2.0))
    gc = _gradient(c)
    a, z = gb[inner] - gb[inner].mean(), gc[inner] - gc[inner].mean()
    ghost = float((a * z).mean() / max(float(a.std() * z.std()), 1e-6))
    return texture, seam, ghost


def failures(q: Quality, opts: QualityOptions) -> list[tuple[Reason, str]]:
    """The checks ``q`` fails, each as (reason, detail), in a fixed order; empty when the triplet passes."""
    out: list[tuple[Reason, str]] = []

    def above(value: float | None, limit: float) -> bool:
        return value is not None and value > limit

    if above(q.drift, opts.max_drift):
        out.append((Reason.BACKGROUND_DRIFT, f"{q.drift:.1%} of the pixels outside object+effect differ from "
                                             f"the composite (> {opts.max_drift:.1%})"))
    if above(q.brightened, opts.max_brightened) or above(q.ratio_roughness, opts.max_ratio_roughness):
        out.append((Reason.EFFECT_NOT_SHADOW, f"in the effect {q.brightened:.1%} brightened (> {opts.max_brightened:.1%}), "
                                              f"ratio roughness {_fmt(q.ratio_roughness)} (> {opts.max_ratio_roughness})"))
    if (q.fill_texture is not None and q.fill_texture < opts.min_fill_texture) or above(q.fill_seam, opts.max_fill_seam) \
            or above(q.fill_ghost, opts.max_fill_ghost):
        out.append((Reason.FILL_SMEARED, f"fill texture {_fmt(q.fill_texture)} (< {opts.min_fill_texture}), seam "
                                         f"{_fmt(q.fill_seam)} (> {opts.max_fill_seam}), ghost {_fmt(q.fill_ghost)} "
                                         f"(> {opts.max_fill_ghost})"))
    if q.effect_area > opts.max_effect_area or above(q.effect_foreign, opts.max_effect_foreign):
        out.append((Reason.EFFECT_IMPLAUSIBLE, f"effect {q.effect_area:.2f}× the object (> {opts.max_effect_area}), "
                                               f"foreign-coloured share {_fmt(q.effect_foreign)} (> {opts.max_effect_foreign})"))
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
