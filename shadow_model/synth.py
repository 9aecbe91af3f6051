"""Training samples for the learned shadow detector, the SynShadow recipe: shadows cast onto real photos.

A shadow matte is projected from an object mask (real masks where the split has them, rendered silhouettes
otherwise) along a drawn light direction from the object's footprint, blurred more with distance from the
footprint (penumbra), and darkens the ground multiplicatively with a slightly bluish tint (shade is lit by the
sky, not the sun). The object is pasted over it with a texture cut from another photo. Some scenes hold a
second object with its own shadow (same light; not the target's shadow), some none (overcast). Each sample is
then cut exactly as the ``exported`` backend cuts a photo (:func:`stages.shadows.exported.crop_window`) and
resized to the network's working size, so training sees what serving sees.

Real instances of a split's photos add views of real shadows: the crop around the instance, its own shadow
as the label.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from curation.core.compositing import to_float
from curation.core.realdata import RealInstance, read_photo
from curation.core.scenes import SHAPES, project_shadow, silhouette
from stages.shadows.exported import crop_window

log = logging.getLogger(__name__)

#: bump when a change to this module changes the samples: it is part of every cache key
GENERATOR_VERSION = 2
#: the network's working size: every crop is resized to SIZE x SIZE
SIZE = 96
CANVAS = 224
#: photos that hold none of the evaluated instances: ground and object texture for every split
GROUND_PHOTOS: tuple[str, ...] = (
    "bundled:sam_dog.jpg",
    "bundled:sam_truck.jpg",
    "bundled:sam_groceries.jpg",
    "skimage:brick",
    "skimage:grass",
    "skimage:gravel",
    "skimage:coffee",
    "skimage:chelsea",
    "skimage:astronaut",
    "skimage:rocket",
    "sklearn:china.jpg",
    "sklearn:flower.jpg",
)


@dataclass
class Samples:
    """Network inputs and labels at SIZE: image RGB uint8 [n,S,S,3], object and shadow uint8 0..255 [n,S,S]."""

    image: np.ndarray
    obj: np.ndarray
    shadow: np.ndarray

    def __len__(self) -> int:
        return len(self.image)

    @staticmethod
    def concat(parts: Sequence[Samples]) -> Samples:
        return Samples(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("image", "obj", "shadow")))


@dataclass
class Ground:
    """A photo to cast on (float RGB 0..1). Shadows already in it belong to other objects: never the label."""

    name: str
    image: np.ndarray


def photo_grounds(names: Sequence[str] = GROUND_PHOTOS) -> list[Ground]:
    return [Ground(n, to_float(read_photo(n))) for n in names]


def instance_grounds(instances: Sequence[RealInstance]) -> list[Ground]:
    """The split's real photos, each once."""
    out: dict[str, Ground] = {}
    for inst in instances:
        out.setdefault(inst.photo, Ground(inst.photo, to_float(inst.composite)))
    return list(out.values())


def _crop(photo: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A random square crop of ``photo`` resized to ``size``."""
    ph, pw = photo.shape[:2]
    side = int(min(ph, pw) * rng.uniform(0.4, 1.0))
    y, x = int(rng.integers(0, ph - side + 1)), int(rng.integers(0, pw - side + 1))
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(photo[y : y + side, x : x + side], (size, size), interpolation=interp)


def cast(
    alpha: np.ndarray, rng: np.random.Generator, direction: tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float]]:
    """The shadow matte (0..1) of an object alpha on the ground: projected from its footprint along the light
    (``(shear, squash)``, drawn when not given), with a penumbra that widens away from the footprint."""
    if direction is None:
        # squash > 0: the shadow falls behind the object (up the frame); < 0: towards the camera
        squash = float(rng.uniform(0.15, 1.4)) * (1.0 if rng.random() < 0.6 else -1.0)
        direction = (float(rng.uniform(-1.8, 1.8)), squash)
    sharp = np.clip(project_shadow(alpha, *direction), 0, 1)
    rows = np.nonzero(alpha.max(axis=1) > 0.5)[0]
    h = max(1, int(np.ptp(rows)) if len(rows) else 1)
    # the penumbra's width grows with the object's size (the sun's angular size times the distance)
    soft = h * float(rng.choice([rng.uniform(0.005, 0.02), rng.uniform(0.02, 0.05)]))
    near = cv2.GaussianBlur(sharp, (0, 0), max(0.4, soft * 0.3))
    far = cv2.GaussianBlur(sharp, (0, 0), max(0.6, soft))
    # distance from the footprint (in object heights) blends the sharp contact into the soft far end
    ys, xs = np.nonzero(alpha > 0.5)
    dist = np.ones_like(alpha)
    if len(ys):
        base = ys.max()
        foot = (np.abs(np.arange(alpha.shape[0])[:, None] - base) < 3) & (alpha > 0.5)
        if foot.any():
            d = cv2.distanceTransform((~foot).astype(np.uint8), cv2.DIST_L2, 3)
            dist = np.clip(d / h, 0, 1)
    return np.clip(near * (1 - dist) + far * dist, 0, 1), direction


def shade(ground: np.ndarray, matte: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Darken ``ground`` under ``matte``: lit/shadow ratio drawn per shadow, shade slightly bluer than the sun."""
    ratio = float(rng.uniform(0.2, 0.75))
    blue = float(rng.uniform(0.0, 0.15))
    tint = np.array([1.0 - blue, 1.0, 1.0 + blue], np.float32)
    keep = np.clip(ratio * tint, 0, 1)
    return ground * (1.0 - matte[..., None] * (1.0 - keep[None, None, :]))


def _object(
    rng: np.random.Generator, shapes: Sequence[np.ndarray], size: int, height: float
) -> tuple[np.ndarray, int, int]:
    """An object alpha (h, w) from a real mask or a silhouette, ``height`` x ``size`` tall."""
    oh = max(8, int(size * height))
    if shapes and rng.random() < 0.7:
        m = shapes[int(rng.integers(len(shapes)))].astype(np.float32)
        ow = max(4, int(oh * m.shape[1] / m.shape[0] * rng.uniform(0.8, 1.25)))
        a = cv2.resize(m, (ow, oh), interpolation=cv2.INTER_AREA)
    else:
        ow = max(4, int(oh * rng.uniform(0.3, 1.3)))
        a = silhouette(rng, SHAPES[int(rng.integers(len(SHAPES)))], oh, ow)
    return a, oh, ow


def scene_sample(
    rng: np.random.Generator, grounds: Sequence[Ground], textures: Sequence[Ground], shapes: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic scene cut as the backend would: (image uint8, object float, shadow label float) at SIZE."""
    g = grounds[int(rng.integers(len(grounds)))]
    img = _crop(g.image, rng, CANVAS)
    label = np.zeros((CANVAS, CANVAS), np.float32)
    direction: tuple[float, float] | None = None
    overcast = rng.random() < 0.1
    target = np.zeros((CANVAS, CANVAS), np.float32)
    layers = []
    for k in range(1 if rng.random() < 0.7 else 2):
        a_small, oh, ow = _object(rng, shapes, CANVAS, float(rng.uniform(0.15, 0.4)))
        y = int(rng.integers(CANVAS // 10, CANVAS - oh - CANVAS // 10))
        x = int(rng.integers(0, max(1, CANVAS - ow)))
        a = np.zeros((CANVAS, CANVAS), np.float32)
        a[y : y + oh, x : x + ow] = a_small[: CANVAS - y, : CANVAS - x]
        if not overcast:
            matte, direction = cast(a, rng, direction)
            img = shade(img, matte, rng)
            if k == 0:  # a second object's shadow is not the target's
                label = (matte > 0.5).astype(np.float32)
        tex = _crop(textures[int(rng.integers(len(textures)))].image, rng, CANVAS)
        col = np.clip(tex * rng.uniform(0.5, 1.4, 3).astype(np.float32), 0, 1)
        layers.append((a, col))
        if k == 0:
            target = a
    for a, col in layers:
        img = a[..., None] * col + (1 - a[..., None]) * img
    return cut(img, target > 0.5, label > 0.5, float(rng.uniform(0.5, 0.9)))


def cut(
    image: np.ndarray, obj: np.ndarray, shadow: np.ndarray, search: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backend's crop around ``obj`` resized to SIZE: image uint8, object and label as float 0..1."""
    window = crop_window(obj, search)
    if window is None:
        raise ValueError("empty object")
    ys, xs, _ = window
    img = image[ys, xs]
    if img.dtype == np.uint8:
        img = to_float(img)

    def size(x: np.ndarray) -> np.ndarray:
        interp = cv2.INTER_AREA if x.shape[0] > SIZE or x.shape[1] > SIZE else cv2.INTER_LINEAR
        return cv2.resize(x.astype(np.float32), (SIZE, SIZE), interpolation=interp)

    o = obj[ys, xs]
    return (
        np.clip(size(img) * 255 + 0.5, 0, 255).astype(np.uint8),
        np.clip(size(o), 0, 1),
        np.clip(size(shadow[ys, xs] & ~o), 0, 1),
    )


def real_views(instances: Sequence[RealInstance], rng: np.random.Generator, views: int) -> Samples:
    """``views`` crops of every real instance (search radius drawn, half of them mirrored)."""
    out = []
    for inst in instances:
        for v in range(views):
            img, o, s = cut(inst.composite, inst.mask, inst.shadow, 0.6 if v == 0 else float(rng.uniform(0.5, 0.9)))
            if v % 2:
                img, o, s = img[:, ::-1], o[:, ::-1], s[:, ::-1]
            out.append((img, o, s))
    return _pack(out)


def _pack(items: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Samples:
    def u8(x: np.ndarray) -> np.ndarray:
        return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)

    return Samples(
        np.stack([i[0] for i in items]), np.stack([u8(i[1]) for i in items]), np.stack([u8(i[2]) for i in items])
    )


def synthesize(
    n: int, seed: int, grounds: Sequence[Ground], textures: Sequence[Ground], shapes: Sequence[np.ndarray]
) -> Samples:
    rng = np.random.default_rng(seed)
    return _pack([scene_sample(rng, grounds, textures, shapes) for _ in range(n)])


def content_key(*parts: object) -> str:
    """A cache key from the generator version and the content of every array/str given."""
    h = hashlib.sha256(f"v{GENERATOR_VERSION}:{SIZE}:{CANVAS}".encode())
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.shape, p.dtype)).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        elif isinstance(p, Ground):
            h.update(p.name.encode())
            h.update(np.ascontiguousarray(p.image).tobytes())
        elif isinstance(p, list | tuple):
            h.update(content_key(*p).encode())
        else:
            h.update(repr(p).encode())
    return h.hexdigest()[:20]


def cached(cache_dir: Path | None, key: str, make) -> Samples:
    """``make()`` once per content key: later runs read the arrays back from ``cache_dir``."""
    if cache_dir is None:
        return make()
    path = Path(cache_dir) / f"{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return Samples(z["image"], z["obj"], z["shadow"])
    samples = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, image=samples.image, obj=samples.obj, shadow=samples.shadow)
    tmp.replace(path)
    log.info("cached %d samples in %s", len(samples), path)
    return samples
