"""Scenes that look like photos: objects and their shadows composited onto real photos, with clutter.

A synthetic scene of textured shapes teaches the curator what a bad layer looks like, but also that a
real photo (people in the background, a busy street) looks like nothing it has seen: the first curator
called every real good triplet ``occluded``. Here the ground is a crop of a real photo of the split, the
objects are real cutouts (annotated instances of the split's photos, with their own shadows) or shapes
textured from those photos, and other objects stand around the target without touching it: a neighbour
is context, not an occlusion. Domain randomisation (colour, blur, noise, resolution, JPEG) is applied to
the photo and its clean plate together, so that texture style tells nothing about the label.

Every scene knows its truth: the clean plate (the scene without the target and its shadow), the plate
with only the shadow removed (DESOBA-style), and the target's object and shadow masks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from curation.core.compositing import to_float, to_uint8
from curation.core.morphology import bbox_of, dilate
from curation.core.realdata import RealInstance, read_photo, real_instances
from curation.core.scenes import SHAPES, cast_shadow, silhouette
from curator_model.splits import background_photos, split_of

EFFECT_MIN = 0.04  # shadow strength above which a pixel belongs to the effect (as in core.scenes)


@dataclass
class Cutout:
    """An object to place: colour, alpha and (optionally) its own shadow strength ``1 − s``, one crop."""

    rgb: np.ndarray  # float h×w×3
    alpha: np.ndarray  # float h×w, 0..1
    shadow: np.ndarray | None  # float h×w, 0..1, or None: cast one from the silhouette


@dataclass
class ComposedScene:
    composite: np.ndarray  # uint8 RGB
    plate: np.ndarray  # uint8 RGB: without the target and its shadow
    shadowfree: np.ndarray  # uint8 RGB: without the target's shadow, the target still there
    mask: np.ndarray  # bool, the target
    effect: np.ndarray  # bool, the target's visible shadow


def _cutout(inst: RealInstance, pad: int = 6) -> Cutout:
    """The instance cut from its photo, its shadow strength measured against the lit surface."""
    box = bbox_of(inst.mask | inst.shadow)
    assert box is not None, "a real instance has object pixels"
    x, y, w, h = box
    ys = slice(max(0, y - pad), y + h + pad)
    xs = slice(max(0, x - pad), x + w + pad)
    c = to_float(inst.composite)
    if inst.shadowfree is not None:
        lit = to_float(inst.shadowfree)
    else:  # the ground under the shadow, filled from around it
        region = dilate(inst.shadow, 2) & ~inst.mask
        lit = to_float(cv2.inpaint(inst.composite, (region | inst.mask).astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA))
    strength = np.clip(1 - c.mean(2) / np.maximum(lit.mean(2), 1e-3), 0, 0.9) * inst.shadow
    strength = cv2.GaussianBlur(strength.astype(np.float32), (0, 0), 0.7)
    alpha = cv2.GaussianBlur(inst.mask.astype(np.float32), (0, 0), 0.5)
    alpha = np.where(inst.mask, np.maximum(alpha, 0.999), alpha)
    return Cutout(c[ys, xs], alpha[ys, xs], strength[ys, xs])


@functools.lru_cache(maxsize=4)
def cutouts(split: str) -> tuple[Cutout, ...]:
    """Whole (not border-cut) annotated instances of the split's photos."""
    return tuple(_cutout(i) for i in real_instances() if split_of(i.photo) == split and not i.touches_border)


@functools.lru_cache(maxsize=16)
def _photo(name: str) -> np.ndarray:
    return to_float(read_photo(name))


def _crop(rng: np.random.Generator, photos: tuple[str, ...], h: int, w: int) -> np.ndarray:
    """A random crop of one of ``photos``, resized to (h, w); grey textures get a random tint."""
    photo = _photo(photos[int(rng.integers(len(photos)))])
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.35, 1.0)
    ch = max(8, int(min(ph, pw * h / w) * scale))
    cw = min(pw, max(8, int(ch * w / h)))
    y, x = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    out = cv2.resize(photo[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA)
    if np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2]):  # a grey texture
        out = out * rng.uniform(0.7, 1.15, 3)
    return np.clip(out, 0.03, 0.97).astype(np.float32)


def _shape_object(rng: np.random.Generator, photos: tuple[str, ...], h: int, w: int) -> Cutout:
    """A shape textured from the split's photos; most are made of two or three differently coloured parts
    (a shirt over trousers, a penguin's back and belly), so that two looks in one layer is normal for an
    object and only an occluder's shape and place give an occlusion away."""
    alpha = silhouette(rng, SHAPES[int(rng.integers(len(SHAPES)))], h, w)
    shade = np.linspace(1.1, 0.8, h, dtype=np.float32)[:, None, None]
    rgb = _crop(rng, photos, h, w) * rng.uniform(0.7, 1.3, 3)
    parts = int(rng.choice((1, 2, 3), p=(0.35, 0.4, 0.25)))
    if parts > 1:  # split along random lines through the shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        for _ in range(parts - 1):
            angle = rng.uniform(0, np.pi) if rng.random() < 0.5 else rng.normal(0, 0.3)  # often across, like clothes
            side = (yy - rng.uniform(0.25, 0.75) * h) * np.cos(angle) + (xx - rng.uniform(0.25, 0.75) * w) * np.sin(
                angle
            ) > 0
            other = _crop(rng, photos, h, w) * (
                rng.uniform(0.2, 1.4, 3) if rng.random() < 0.7 else rng.uniform(0.1, 0.3)
            )
            rgb = np.where(side[..., None], other, rgb)
    return Cutout(np.clip(rgb * shade, 0.02, 1.0).astype(np.float32), alpha, None)


def _resized(c: Cutout, height: int, flip: bool) -> Cutout:
    h, w = c.alpha.shape
    s = height / h
    size = (max(4, int(round(w * s))), max(4, int(round(h * s))))

    def tx(a: np.ndarray) -> np.ndarray:
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        return np.ascontiguousarray(a[:, ::-1]) if flip else a

    return Cutout(tx(c.rgb), tx(c.alpha), None if c.shadow is None else tx(c.shadow))


def _pick(rng: np.random.Generator, split: str, photos: tuple[str, ...], height: int) -> Cutout:
    bank = cutouts(split)
    if bank and rng.random() < 0.5:
        c = _resized(bank[int(rng.integers(len(bank)))], height, bool(rng.random() < 0.5))
        if rng.random() < 0.3:  # its silhouette, but a shadow cast like the shapes'
            c = Cutout(c.rgb, c.alpha, None)
        return c
    return _shape_object(rng, photos, height, max(6, int(height * rng.uniform(0.4, 1.3))))


def _place(
    c: Cutout, x: int, y: int, H: int, W: int, rng: np.random.Generator, darkness: float
) -> tuple[np.ndarray, ...]:
    """Full-frame (alpha, rgb, shadow strength) of a cutout whose crop's top-left is at (x, y); may fall off the
    frame."""
    h, w = c.alpha.shape
    pad = max(h, w)  # room for a cast shadow
    x, y = int(np.clip(x, 1 - w, W - 1)), int(np.clip(y, 1 - h, H - 1))  # at least a corner in the frame
    alpha = np.zeros((H + 2 * pad, W + 2 * pad), np.float32)
    rgb = np.zeros((H + 2 * pad, W + 2 * pad, 3), np.float32)
    alpha[y + pad : y + pad + h, x + pad : x + pad + w] = c.alpha
    rgb[y + pad : y + pad + h, x + pad : x + pad + w] = c.rgb
    if c.shadow is not None:
        shadow = np.zeros_like(alpha)
        shadow[y + pad : y + pad + h, x + pad : x + pad + w] = c.shadow
    else:
        shadow = cast_shadow(alpha, rng)[0] * darkness
    crop = (slice(pad, pad + H), slice(pad, pad + W))
    return alpha[crop], rgb[crop], shadow[crop] * (1 - alpha[crop])


def _degrade(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same camera for every image of a scene: colour, blur, resolution, sensor noise (float in, float out)."""
    gain, gamma = rng.uniform(0.85, 1.15, 3), rng.uniform(0.8, 1.25)
    sat = rng.uniform(0.6, 1.3)
    blur = rng.uniform(0.3, 1.2) if rng.random() < 0.4 else 0.0
    down = rng.uniform(0.5, 0.85) if rng.random() < 0.3 else 1.0
    noise = rng.normal(0, rng.uniform(0, 3.0) / 255, images[0].shape).astype(np.float32)
    out = []
    for im in images:
        im = np.clip(im * gain, 0, 1) ** gamma
        grey = im.mean(2, keepdims=True)
        im = grey + (im - grey) * sat
        if blur:
            im = cv2.GaussianBlur(im, (0, 0), blur)
        if down < 1:
            h, w = im.shape[:2]
            im = cv2.resize(
                cv2.resize(im, (max(8, int(w * down)), max(8, int(h * down))), interpolation=cv2.INTER_AREA),
                (w, h),
                interpolation=cv2.INTER_LINEAR,
            )
        out.append(np.clip(im + noise, 0, 1).astype(np.float32))
    return out


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert decoded is not None, "OpenCV decodes the JPEG it has just encoded"
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def compose(rng: np.random.Generator, split: str) -> ComposedScene | None:
    """One scene on a photo of ``split``; ``None`` when the target could not be placed whole."""
    photos = background_photos(split)
    H = int(rng.choice((160, 192, 224, 256)))
    W = int(H * rng.uniform(0.8, 1.3))
    ground = _crop(rng, photos, H, W)
    darkness = rng.uniform(0.3, 0.75)
    target = _pick(rng, split, photos, int(H * rng.uniform(0.2, 0.45)))
    th, tw = target.alpha.shape
    if th + 8 > H or tw + 8 > W:
        return None
    for _ in range(20):
        x, y = int(rng.integers(4, W - tw - 3)), int(rng.integers(4, H - th - 3))
        t_alpha, t_rgb, t_shadow = _place(target, x, y, H, W, rng, darkness)
        region = (t_alpha > 0.02) | (t_shadow > EFFECT_MIN)
        box = bbox_of(region)
        if box and box[0] > 1 and box[1] > 1 and box[0] + box[2] < W - 1 and box[1] + box[3] < H - 1:
            break
    else:
        return None
    keep_clear = dilate(region, int(rng.integers(2, 14)))
    layers = []  # clutter: whole or cut by the frame, never on the target or its shadow
    for _ in range(int(rng.choice(4, p=(0.25, 0.3, 0.27, 0.18)))):
        c = _pick(rng, split, photos, int(H * rng.uniform(0.12, 0.5)))
        ch, cw = c.alpha.shape
        near = rng.random() < 0.6
        for _ in range(10):
            if near:  # beside the target: the case the first curator mistook for an occlusion
                cx = int(x + rng.integers(-cw - tw // 2, tw + tw // 2))
                cy = int(y + th - ch + rng.integers(-th // 3, th // 3 + 1))
            else:
                cx, cy = int(rng.integers(-cw // 2, W - cw // 2)), int(rng.integers(-ch // 2, H - ch // 2))
            a, col, sh = _place(c, cx, cy, H, W, rng, darkness)
            if not (((a > 0.02) | (sh > EFFECT_MIN)) & keep_clear).any():
                layers.append((a, col, sh))
                break

    def render(with_target: bool, with_shadow: bool) -> np.ndarray:
        img = ground.copy()
        for _a, _col, sh in layers:
            img = img * (1 - sh[..., None])
        if with_shadow:
            img = img * (1 - t_shadow[..., None])
        for a, col, _sh in layers:
            img = a[..., None] * col + (1 - a[..., None]) * img
        if with_target:
            img = t_alpha[..., None] * t_rgb + (1 - t_alpha[..., None]) * img
        return img

    comp, plate, shadowfree = _degrade([render(True, True), render(False, False), render(True, False)], rng)
    comp, plate, shadowfree = to_uint8(comp), to_uint8(plate), to_uint8(shadowfree)
    if rng.random() < 0.5:  # compressed photo; the plates differ from it only where the target was
        q = int(rng.integers(45, 96))
        changed = dilate(region, 3)
        comp = jpeg(comp, q)
        plate = np.where(changed[..., None], jpeg(plate, q), comp)
        shadowfree = np.where(changed[..., None], jpeg(shadowfree, q), comp)
    mask = t_alpha > 0.5
    return ComposedScene(comp, plate, shadowfree, mask, (t_shadow > EFFECT_MIN) & ~mask)
