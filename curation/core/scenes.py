"""Synthetic scenes with exact ground truth: textured objects casting soft or hard shadows.

Objects are shapes filled with texture cut from the bundled real photos; each casts a ground
shadow (the object's silhouette sheared away from the light, blurred by a random penumbra) that darkens
the background multiplicatively, ``C = s·B``. Because every layer is rendered, the true background,
the foreground RGBA (object α from the anti-aliased silhouette, shadow α = 1 − s) and both masks are
known per instance. Deterministic from the seed; it is the demo's synthetic source, the test bed of stage 2,
the benchmark workload and part of the curator's training data.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from curation.core.compositing import to_uint8
from curation.core.data import BUNDLED
from curation.core.morphology import bbox_of

PHOTOS = ("sam_dog.jpg", "sam_truck.jpg", "sam_groceries.jpg", "soba_web-shadow0573.jpg")
SHAPES = ("disc", "box", "star", "blob", "pillar")
SUPERSAMPLE = 4


@dataclass
class Instance:
    """Ground truth for one object of a scene."""

    label: str
    mask: np.ndarray  # bool, object (alpha > 0.5)
    effect: np.ndarray  # bool, its cast shadow where visible (not under the object)
    background: np.ndarray  # RGB uint8: the scene without this object and its shadow
    foreground: np.ndarray  # RGBA uint8 straight alpha: object + shadow
    bbox: tuple[int, int, int, int]
    shadow_softness: float
    shadow_darkness: float


@dataclass
class Scene:
    composite: np.ndarray  # RGB uint8
    instances: list[Instance] = field(default_factory=list)


@functools.lru_cache(maxsize=8)
def _photos(names: tuple[str, ...] = PHOTOS) -> tuple[np.ndarray, ...]:
    out = []
    for name in names:
        bgr = cv2.imread(str(BUNDLED / name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"bundled photo {BUNDLED / name} is missing")
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
    return tuple(out)


def photo_crop(rng: np.random.Generator, h: int, w: int, photos: tuple[str, ...] = PHOTOS) -> np.ndarray:
    """A random crop of one of ``photos`` (bundled file names), float RGB resized to (h, w)."""
    pool = _photos(photos)
    photo = pool[rng.integers(len(pool))]
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.3, 0.9)
    ch, cw = max(8, int(ph * scale)), max(8, int(pw * scale * w / max(h, 1) * ph / pw))
    cw = min(cw, pw)
    y, x = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    return cv2.resize(photo[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA)


def _background(rng: np.random.Generator, size: int, photos: tuple[str, ...]) -> np.ndarray:
    """A textured ground: a real photo crop, or procedural tiles/noise with a light gradient."""
    if rng.random() < 0.5:
        bg = photo_crop(rng, size, size, photos)
    else:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        base = rng.uniform(0.35, 0.85, 3).astype(np.float32)
        period = rng.integers(8, 40)
        tiles = ((np.floor(yy * size / period) + np.floor(xx * size / period)) % 2) * 0.12 - 0.06
        noise = cv2.GaussianBlur(rng.normal(0, 0.08, (size, size)).astype(np.float32), (0, 0), rng.uniform(0.7, 3))
        grad = (yy - 0.5) * rng.uniform(-0.2, 0.2) + (xx - 0.5) * rng.uniform(-0.2, 0.2)
        bg = base[None, None, :] + (tiles + noise + grad)[..., None]
    # keep headroom so that shadows and relighting stay inside (0, 1]
    return np.clip(bg, 0.06, 0.96).astype(np.float32)


def silhouette(rng: np.random.Generator, shape: str, h: int, w: int) -> np.ndarray:
    """Anti-aliased object alpha in a (h, w) box, rendered supersampled then area-averaged."""
    H, W = h * SUPERSAMPLE, w * SUPERSAMPLE
    canvas = np.zeros((H, W), np.uint8)
    cx, cy = W // 2, H // 2
    if shape == "disc":
        cv2.ellipse(canvas, (cx, cy), (W // 2 - 2, H // 2 - 2), 0, 0, 360, 255, -1)
    elif shape == "box":
        r = int(min(H, W) * rng.uniform(0.05, 0.25))
        cv2.rectangle(canvas, (r, 2), (W - r, H - 2), 255, -1)
        cv2.rectangle(canvas, (2, r), (W - 2, H - r), 255, -1)
        for x, y in ((r, r), (W - r, r), (r, H - r), (W - r, H - r)):
            cv2.circle(canvas, (x, y), r, 255, -1)
    elif shape == "pillar":
        cv2.rectangle(canvas, (int(W * 0.3), int(H * 0.12)), (int(W * 0.7), H - 2), 255, -1)
        cv2.ellipse(canvas, (cx, int(H * 0.14)), (int(W * 0.2), int(H * 0.12)), 0, 0, 360, 255, -1)
    else:
        n = 10 if shape == "star" else 14
        ang = np.sort(rng.uniform(0, 2 * np.pi, n)) if shape == "blob" else np.linspace(0, 2 * np.pi, n, endpoint=False)
        rad = np.where(np.arange(n) % 2 == 0, 1.0, 0.5) if shape == "star" else rng.uniform(0.6, 1.0, n)
        pts: np.ndarray = np.stack([cx + rad * (W / 2 - 2) * np.cos(ang), cy + rad * (H / 2 - 2) * np.sin(ang)], 1)
        if shape == "blob":
            hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
            pts = hull
        cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 255)
    return cv2.resize(canvas.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)


def project_shadow(alpha: np.ndarray, shear: float, squash: float) -> np.ndarray:
    """The silhouette laid on the ground plane from its footprint (lowest row), which stays fixed.

    ``x' = x + shear·(base − y)``, ``y' = base − squash·(base − y)``: ``shear`` sets the sideways lean and
    ``squash`` the length (positive: the shadow falls behind the object, negative: towards the camera).
    """
    h, w = alpha.shape
    ys = np.nonzero(alpha.max(axis=1) > 0.5)[0]
    base = float(ys.max()) if len(ys) else h - 1.0
    m = np.array([[1.0, -shear, shear * base], [0.0, squash, base * (1 - squash)]], np.float32)
    return cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR)


def cast_shadow(alpha: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Project the silhouette onto the ground plane: anchored at its base, sheared and squashed."""
    shear = rng.uniform(-1.6, 1.6)
    squash = rng.uniform(0.3, 0.7) * rng.choice([-1.0, 1.0]) if rng.random() < 0.3 else rng.uniform(0.3, 0.7)
    sh = project_shadow(alpha, shear, squash)
    softness = float(rng.choice([0.0, rng.uniform(1.0, 2.5), rng.uniform(2.5, 6.0)]))
    if softness > 0:
        sh = cv2.GaussianBlur(sh, (0, 0), softness)
    return np.clip(sh, 0, 1), softness


def render_scene(
    seed: int, size: int = 256, max_objects: int = 2, occlusion_rate: float = 0.15, photos: tuple[str, ...] = PHOTOS
) -> Scene:
    """Render one scene with per-instance ground truth. Same arguments, same pixels.

    ``photos`` (bundled file names) are where ground and object textures come from; a caller that splits
    data by photo passes its split's share.
    """
    rng = np.random.default_rng(seed)
    bg = _background(rng, size, photos)
    n = int(rng.integers(1, max_objects + 1))
    occlude = n > 1 and rng.random() < occlusion_rate
    alphas, colours, shadows, labels, params = [], [], [], [], []
    boxes: list[tuple[int, int, int, int]] = []
    for i in range(n):
        oh = int(size * rng.uniform(0.18, 0.38))
        ow = int(oh * rng.uniform(0.6, 1.4))
        for _ in range(30):  # place away from the border (room for the shadow) and from the others
            x = int(rng.integers(size // 8, max(size // 8 + 1, size - ow - size // 8)))
            y = int(rng.integers(size // 10, max(size // 10 + 1, size - oh - size // 8)))
            if occlude and i == 1:
                px, py, pw, ph = boxes[0]
                x = int(np.clip(px + pw // 2 - ow // 3, 0, size - ow))
                y = int(np.clip(py + ph // 2 - oh // 3, 0, size - oh))
                break
            if all(
                x + ow + 12 < bx or bx + bw + 12 < x or y + oh + 12 < by or by + bh + 12 < y for bx, by, bw, bh in boxes
            ):
                break
        boxes.append((x, y, ow, oh))
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        a = np.zeros((size, size), np.float32)
        a[y : y + oh, x : x + ow] = silhouette(rng, shape, oh, ow)
        tex = photo_crop(rng, oh, ow, photos)
        tint = rng.uniform(0.6, 1.3, 3).astype(np.float32)
        shade = np.linspace(1.1, 0.8, oh, dtype=np.float32)[:, None, None]
        col = np.zeros((size, size, 3), np.float32)
        col[y : y + oh, x : x + ow] = np.clip(tex * tint * shade, 0.02, 1.0)
        sh, softness = cast_shadow(a, rng)
        darkness = float(rng.uniform(0.35, 0.75))
        alphas.append(a)
        colours.append(col)
        shadows.append(1.0 - darkness * sh)
        labels.append(shape)
        params.append((softness, darkness))

    def render(skip: int | None) -> np.ndarray:
        img = bg.copy()
        for j in range(n):
            if j != skip:
                img = img * shadows[j][..., None]
        for j in range(n):
            if j != skip:
                img = alphas[j][..., None] * colours[j] + (1 - alphas[j][..., None]) * img
        return img

    composite = to_uint8(render(None))
    scene = Scene(composite=composite)
    for i in range(n):
        # What of instance i is visible: objects drawn later cover it, and any other object covers its shadow.
        above = np.ones_like(alphas[i])
        others = np.ones_like(alphas[i])
        for k in range(n):
            if k != i:
                others = others * (1 - alphas[k])
                if k > i:
                    above = above * (1 - alphas[k])
        a = alphas[i] * above
        s = 1.0 - (1.0 - shadows[i]) * others
        alpha = 1.0 - (1.0 - a) * s  # object over its own shadow, as one layer
        fg_rgb = np.where(alpha[..., None] > 1e-6, a[..., None] * colours[i] / np.maximum(alpha, 1e-6)[..., None], 0)
        foreground = np.dstack([to_uint8(fg_rgb), to_uint8(alpha)])
        mask = a > 0.5
        effect = ((1.0 - s) > 0.04) & ~mask
        scene.instances.append(
            Instance(
                label=labels[i],
                mask=mask,
                effect=effect,
                background=to_uint8(render(i)),
                foreground=foreground,
                bbox=bbox_of(mask) or (0, 0, 0, 0),
                shadow_softness=params[i][0],
                shadow_darkness=params[i][1],
            )
        )
    return scene
