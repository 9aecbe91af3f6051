"""Quality checks of a layered triplet that can fail: each tests something the decomposition did not fit.

The recomposite PSNR cannot fail (F and α are solved from C and B, so ``F over B == C`` for any B). These
measure what that leaves open, from the stored layers alone (composite, background, foreground, object
mask, effect mask), so that stage 2, ``curate eval-layers`` and the curator compute them the same way:

- ``drift``: the background equals the composite outside the object + effect region (share of pixels
  that differ by more than sensor/PNG noise); a fill or relight that leaks beyond its region shows here;
- ``brightened`` / ``too_dark`` / ``ratio_roughness``: inside the effect a shadow only darkens
  (``C ≤ B``), by a bounded ratio (skylight still reaches a cast shadow), and by a ratio ``C/B`` that
  varies smoothly (the ground's texture cancels in it); a drifted background, or an effect that is not a
  shadow, breaks them (roughness is measured, and gated only when configured: see QualityOptions);
- ``fill_texture`` / ``fill_seam`` / ``fill_ghost``: without a reference, the fill under the object has as
  much fine detail as a ring of ground around it (not far less: a smear; not far more: noise), continuous in
  colour across its border, and does not repeat the removed object's edges;
- ``effect_area`` / ``effect_foreign``: the effect is not many times the object's size, and holds no
  region whose shading ratio, smoothed, has another colour than the shadow's own (a piece of a
  neighbouring object, not shadowed ground);
- ``lost_shadow``: the background holds no shadow left behind: a region attached to the object's footprint
  (the object and its effect), darker than the ground lit around it, whose ground texture and colour
  continue beneath it (ground in shade, not another object). It reads the produced background alone, so it
  catches a shadow that the effect mask (the detector's or the source's) missed wholly or in part.

:func:`measure` computes every value; :func:`failures` compares them with the thresholds of
``masks.quality`` and names what failed, in a fixed order (the first is the row's reject reason).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from curation.core.config.masks import QualityOptions
from curation.core.morphology import bbox_of, dilate, erode
from curation.core.reasons import Reason

#: colour-level differences (0..255) at or below this are noise: B and C of one photo, PNG-stored
NOISE_LEVEL = 6
#: grey levels added to detail means so that flat ground (sky, a wall) compares as flat, not as noise
DETAIL_FLOOR = 0.5
#: luminance ratio C/B below which a pixel is darker than a cast shadow gets (skylight still reaches it)
SHADOW_FLOOR = 0.12
#: distance (log-chroma units) of the smoothed shading ratio from the shadow's own line, and the smoothing: at
#: least FOREIGN_SIGMA px, and 1/FOREIGN_SCALE of the object's size (a larger photo of the same scene has
#: larger texture and larger JPEG chroma blocks, and a neighbour's piece is larger with it)
FOREIGN_CHROMA, FOREIGN_SIGMA, FOREIGN_OFFSET, FOREIGN_SCALE = 0.1, 3.0, 5.0, 24.0
#: the shadow left behind: darker than the lit ground by at least this luminance ratio, measured on luma
#: smoothed by LOST_SIGMA px (the ground's fine texture averages out) against a grey closing of it that is
#: as wide as LOST_WINDOW × the object's size (what the ground looks like lit: a shadow narrower than the
#: window disappears in it)
LOST_RATIO, LOST_SIGMA, LOST_WINDOW = 0.8, 2.0, 0.6
#: ... and, as a whole, at most this bright relative to the lit ground around it: a cast shadow halves the
#: light or more, the dark patches of a textured ground (grass, foliage, cobbles) dim it far less
LOST_DEPTH = 0.6
#: a dark region is ground in shade when its fine log-luma detail is at least LOST_TEXTURE × the lit ground's
#: around it (the ground's texture continues beneath, and with fewer photons its noise grows relative to the
#: light: a darker material, foliage or a neighbour has only its own detail, a smear less) and its mean colour
#: ratio to that ground is within LOST_CHROMA (log units) of grey (loose: on a saturated red track the weak
#: channels fall furthest)
LOST_TEXTURE, LOST_CHROMA = 2.0, 0.6
#: the object's footprint: its lowest fraction (of its height), where it meets the ground, and its effect
LOST_BASE = 0.2
#: how far (× the object's height) from the footprint a shadow left behind is looked for; a dark region
#: covering more than LOST_EDGE of that reach's rim goes on beyond it: the shade of something larger (a
#: building, a car's floor), not this object's shadow
LOST_REACH, LOST_EDGE = 0.6, 0.2
OBJECT_RING_PX = 2  # the object's edge ring belongs to the object's layer (decompose.OBJECT_MARGIN_PX)


@dataclass
class Quality:
    """The measured values of one triplet (``None`` where the region it needs is empty)."""

    drift: float
    brightened: float | None
    too_dark: float | None
    ratio_roughness: float | None
    fill_texture: float | None
    fill_seam: float | None
    fill_ghost: float | None
    effect_area: float
    effect_foreign: float | None
    lost_shadow: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {k: (None if v is None else round(float(v), 4)) for k, v in asdict(self).items()}


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def gradient(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of an RGB image's luma (grey levels per pixel)."""
    g = _luma(image)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))


def _crop(*masks: np.ndarray, pad: int) -> tuple[slice, slice]:
    """The bounding box of the union of ``masks`` grown by ``pad``: the checks' work follows the object."""
    union = np.logical_or.reduce([m.astype(bool) for m in masks])
    x, y, w, h = cv2.boundingRect(union.astype(np.uint8))
    return (slice(max(0, y - pad), y + h + pad), slice(max(0, x - pad), x + w + pad))


def measure(composite: np.ndarray, background: np.ndarray, mask: np.ndarray, effect: np.ndarray) -> Quality:
    """Every quality value of one triplet (uint8 layers, bool or 0/255 masks). The foreground is not needed:
    stage 2 derives it from composite and background, which is why its recomposite cannot fail."""
    obj, eff = mask.astype(bool), effect.astype(bool)
    size = int(np.sqrt(max(obj.sum(), 1)))
    ys, xs = _crop(obj, eff, pad=size // 2 + 8)
    c, b, o, e = composite[ys, xs], background[ys, xs], obj[ys, xs], eff[ys, xs]
    drift = max(_unexplained(composite, background, obj, eff), _unexplained(c, b, o, e))
    brightened, too_dark, roughness, foreign = _shadow_values(c, b, e, max(FOREIGN_SIGMA, size / FOREIGN_SCALE))
    texture, seam, ghost = _fill_values(c, b, o, e, size)
    return Quality(
        drift=drift,
        brightened=brightened,
        too_dark=too_dark,
        ratio_roughness=roughness,
        fill_texture=texture,
        fill_seam=seam,
        fill_ghost=ghost,
        effect_area=float(eff.sum() / max(obj.sum(), 1)),
        effect_foreign=foreign,
        lost_shadow=lost_shadow(background, obj, eff),
    )


def _unexplained(c: np.ndarray, b: np.ndarray, o: np.ndarray, e: np.ndarray) -> float:
    """Share of the pixels away from the object where B differs from C beyond noise and no shadow explains
    it: outside the effect, or inside it but brighter than the background."""
    delta = c.astype(np.int16) - b.astype(np.int16)
    changed = np.abs(delta).max(axis=2) > NOISE_LEVEL
    shadowed = e & (delta.max(axis=2) <= NOISE_LEVEL)
    away = ~dilate(o, OBJECT_RING_PX + 1)
    return float((changed & ~shadowed)[away].mean()) if away.any() else 0.0


def _shadow_values(c: np.ndarray, b: np.ndarray, e: np.ndarray, sigma: float) -> tuple[float | None, ...]:
    """Inside the effect: share brightened, share darker than any shadow, roughness of the log shading
    ratio, and the share whose smoothed ratio has another colour than the shadow's own."""
    if not e.any():
        return None, None, None, None
    cf, bf = c.astype(np.float32) + 1.0, b.astype(np.float32) + 1.0
    brightened = float(((cf - bf).max(axis=2) > NOISE_LEVEL)[e].mean())
    log_s = np.log(cf) - np.log(bf)
    lum = log_s.mean(axis=2)
    too_dark = float((lum < np.log(SHADOW_FLOOR))[e].mean())
    core = erode(e, 2)  # away from the effect's outline, where the ratio really steps
    roughness = None
    if core.sum() >= 16:
        roughness = float(np.abs(lum - cv2.medianBlur(lum.astype(np.float32), 5))[core].mean())
    dark = e & (lum < -0.05)
    foreign = None
    if dark.sum() >= 16:
        # a few grey levels of offset: in a deep shadow on a saturated ground (a red track) a weak channel
        # holds a dozen levels, and JPEG noise there would swing its log ratio
        foreign = _foreign_share(np.log(cf + FOREIGN_OFFSET) - np.log(bf + FOREIGN_OFFSET), lum, dark, sigma)
    return brightened, too_dark, roughness, foreign


def _foreign_share(log_s: np.ndarray, lum: np.ndarray, dark: np.ndarray, sigma: float) -> float:
    """Share of the shadow whose shading ratio has a colour no shadow of this light gives.

    Across a penumbra the ratio runs from 1 (lit) to the umbra's, and its colour with it (sun and sky
    differ in colour), so in the log-chroma plane a shadow's ratios lie along the line from 0 to the
    umbra's chroma. What lies off that line, once smoothed so that the ground's fine texture averages
    out, is something else: a piece of another object, unlike the ground it stands on.
    """
    chroma = log_s - log_s.mean(axis=2, keepdims=True)  # luminance removed
    umbra = dark & (lum <= np.percentile(lum[dark], 25))
    u = np.median(chroma[umbra], axis=0)
    w = dark.astype(np.float32)
    norm = np.maximum(cv2.GaussianBlur(w, (0, 0), sigma), 1e-3)[..., None]
    smooth = cv2.GaussianBlur(chroma * w[..., None], (0, 0), sigma) / norm
    length = float(np.linalg.norm(u))
    if length > 1e-3:
        direction = u / length
        smooth = smooth - (smooth @ direction)[..., None] * direction
    return float((np.linalg.norm(smooth, axis=2) > FOREIGN_CHROMA)[dark].mean())


def _fill_values(
    c: np.ndarray, b: np.ndarray, o: np.ndarray, e: np.ndarray, size: int
) -> tuple[float | None, float | None, float | None]:
    """Under the object: texture against a ring of ground, colour step across the border, object edges kept."""
    hole = dilate(o, OBJECT_RING_PX)
    inner = erode(hole, 2)
    ring = dilate(hole, max(4, size // 4)) & ~dilate(hole, 1) & ~dilate(e, 2)
    if inner.sum() < 16 or ring.sum() < 16:
        return None, None, None
    lum = _luma(b)
    detail = np.abs(lum - cv2.GaussianBlur(lum, (0, 0), 1.0))  # the finest texture: what a smear loses first
    texture = float((detail[inner].mean() + DETAIL_FLOOR) / (detail[ring].mean() + DETAIL_FLOOR))

    lab = cv2.cvtColor(b, cv2.COLOR_RGB2Lab).astype(np.float32)
    band_in, band_out = hole & ~erode(hole, 3), dilate(hole, 3) & ~dilate(hole, 1) & ~e
    if band_out.sum() < 8:
        band_out = ring
    step = np.abs(lab[band_in].mean(axis=0) - lab[band_out].mean(axis=0)).max()
    seam = float(step / (lab[ring].std(axis=0).max() + 2.0))
    gb, gc = gradient(b), gradient(c)
    a, z = gb[inner] - gb[inner].mean(), gc[inner] - gc[inner].mean()
    ghost = float((a * z).mean() / max(float(a.std() * z.std()), 1e-6))
    return texture, seam, ghost


def lost_shadow(background: np.ndarray, mask: np.ndarray, effect: np.ndarray) -> float | None:
    """Area (× the object's) of the shadow left in ``background`` at the object's footprint; None without an
    object. Independent of how the effect was found: it looks for shade in the produced background itself.

    Candidates are pixels darker than the lit ground (a grey closing of smoothed log-luma) by LOST_RATIO,
    within LOST_REACH object heights of the footprint (the object's base and its effect) and not above the
    base (a cast shadow lies on the ground the object stands on; a neighbour's dark legs beside it do not).
    A connected region of them counts when it touches the object's base, ends within the reach, is between
    SHADOW_FLOOR and LOST_DEPTH as bright as the lit ground around it, holds the lit ground's texture with the
    relative noise of shade (LOST_TEXTURE) and its colour ratio to that ground is near grey (shade dims every
    channel alike, give or take the sky's blue).
    """
    obj = mask.astype(bool)
    box = bbox_of(obj)
    if box is None:
        return None
    size = int(np.sqrt(obj.sum()))
    base = obj.copy()
    base[: box[1] + int((1 - LOST_BASE) * box[3])] = False
    foot = base | effect.astype(bool)
    reach_px = max(4, int(LOST_REACH * box[3]))
    window = max(5, int(LOST_WINDOW * size) | 1)
    ys, xs = _crop(obj, foot, pad=max(window, reach_px) + 8)
    b, o, f, base = background[ys, xs], obj[ys, xs], foot[ys, xs], base[ys, xs]
    logs = np.log(b.astype(np.float32) + 4.0)  # per channel; +4: JPEG noise in the darkest levels
    lum = logs.mean(axis=2)
    smooth = cv2.GaussianBlur(lum, (0, 0), LOST_SIGMA)
    lit = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (window, window)))
    hole = dilate(o, OBJECT_RING_PX)
    reach = dilate(f, reach_px) & ~hole
    reach[: max(0, box[1] + int((1 - LOST_BASE) * box[3]) - ys.start)] = False  # ground level, not above
    dark = (smooth < lit + np.log(LOST_RATIO)) & reach
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dark.astype(np.uint8))
    touching = np.unique(labels[dilate(base, OBJECT_RING_PX + 3) & dark])  # where the object meets the ground
    detail = np.abs(lum - cv2.GaussianBlur(lum, (0, 0), 1.0))
    lit_ground = reach & ~dilate(dark, 2)
    rim = reach & ~erode(reach, 1)
    lost = 0
    for i in touching[touching > 0]:
        region = labels == i
        inner = erode(region, 2)
        around = dilate(region, max(3, size // 6)) & lit_ground
        if inner.sum() < 16 or around.sum() < 16:
            continue
        texture = (detail[inner].mean() + 0.01) / (detail[around].mean() + 0.01)
        ratio = logs[inner].mean(axis=0) - logs[around].mean(axis=0)
        chroma = float(np.abs(ratio - ratio.mean()).max())
        shade = np.log(SHADOW_FLOOR) <= ratio.mean() <= np.log(LOST_DEPTH)  # a black material is darker still
        ends = (region & rim).sum() <= LOST_EDGE * max(int(rim.sum()), 1)  # this object's shadow ends in reach
        if shade and ends and texture >= LOST_TEXTURE and chroma <= LOST_CHROMA:
            lost += int(stats[i, cv2.CC_STAT_AREA])
    return float(lost / max(obj.sum(), 1))


def failures(q: Quality, opts: QualityOptions) -> list[tuple[Reason, str]]:
    """The checks ``q`` fails, each as (reason, detail), in a fixed order; empty when the triplet passes. A
    detail names only the gates that failed, each with its value and bound, so a reviewer sees why."""
    groups: list[tuple[Reason, list[str]]] = [
        (
            Reason.BACKGROUND_DRIFT,
            _over("pixels outside object+effect that differ from the composite", q.drift, opts.max_drift, pct=True),
        ),
        (
            Reason.EFFECT_NOT_SHADOW,
            _over("effect brightened", q.brightened, opts.max_brightened, pct=True)
            + _over("effect darker than a shadow", q.too_dark, opts.max_too_dark)
            + _over("effect ratio roughness", q.ratio_roughness, opts.max_ratio_roughness),
        ),
        (
            Reason.FILL_SMEARED,
            _under("fill texture", q.fill_texture, opts.min_fill_texture)
            + _over("fill texture", q.fill_texture, opts.max_fill_texture)
            + _over("fill seam", q.fill_seam, opts.max_fill_seam)
            + _over("fill ghost", q.fill_ghost, opts.max_fill_ghost),
        ),
        (
            Reason.EFFECT_IMPLAUSIBLE,
            _over("effect area (× the object)", q.effect_area, opts.max_effect_area)
            + _over("effect foreign-coloured share", q.effect_foreign, opts.max_effect_foreign),
        ),
        (
            Reason.LOST_SHADOW,
            _over("shade left in the background at the footprint (× the object)", q.lost_shadow, opts.max_lost_shadow),
        ),
    ]
    return [(reason, ", ".join(failed)) for reason, failed in groups if failed]


def _over(what: str, value: float | None, bound: float | None, pct: bool = False) -> list[str]:
    """``["what V (> B)"]`` when ``value`` exceeds ``bound`` (a ``None`` on either side is no failure)."""
    if value is None or bound is None or not value > bound:
        return []
    return [f"{what} {value:.1%} (> {bound:.1%})" if pct else f"{what} {_fmt(value)} (> {bound:g})"]


def _under(what: str, value: float | None, bound: float | None) -> list[str]:
    if value is None or bound is None or not value < bound:
        return []
    return [f"{what} {_fmt(value)} (< {bound:g})"]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
