"""Real photos and real object–shadow instances: the ground truth that metrics are measured on.

Instances come from the bundled DESOBA photos and from the project's own annotations of the other bundled
photos (``annotated/``). Photos without annotations, bundled or shipped inside installed packages, are
named here too, so that every user of real pixels refers to a photo by one name (splits are by photo).

Each DESOBA sample annotates one target (object mask, shadow mask, and the photo with that shadow removed)
and, as two merged masks, every other object and every other shadow. Split into connected components and
paired (a shadow belongs to the object it touches), those give several real object–shadow pairs per
photo. Only the target has a shadow-free photo: DESOBA removes just the target's shadow.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from curation.core.data import BUNDLED, DESOBA, DESOBAV2
from curation.core.imageio import read_image, read_mask
from curation.core.morphology import dilate

MAX_PIXELS = 1 << 26


@dataclass
class RealInstance:
    """One annotated object of a real photo and its cast shadow (both bool masks, never overlapping)."""

    #: e.g. "desoba/05", "bundled:soba_web-shadow0573.jpg": instances of one photo share it, so splits by photo
    #: keep them together
    photo: str
    name: str  # e.g. "desoba/05/target", "desoba/05/other-1"
    composite: np.ndarray  # RGB uint8
    mask: np.ndarray
    shadow: np.ndarray
    #: the photo with this instance's shadow removed (object kept); only the target has one
    shadowfree: np.ndarray | None
    #: every other annotated object of the photo (context: a neighbour is not an occluder unless it touches)
    others: np.ndarray

    @property
    def touches_border(self) -> bool:
        m = self.mask
        return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def split_pairs(
    objects: np.ndarray, shadows: np.ndarray, contact_px: int = 3, min_object_px: int = 64
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Connected objects, each with the shadow components that touch it (within ``contact_px``).

    A shadow touching several objects goes to the one it shares the longest contact with; a shadow that
    touches none (its object is not annotated, or out of frame) is left out.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(objects.astype(np.uint8))
    kept = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_object_px]
    grown = {i: dilate(labels == i, contact_px) for i in kept}
    shadow_of = {i: np.zeros_like(objects, dtype=bool) for i in kept}
    ns, slabels = cv2.connectedComponents((shadows & ~objects).astype(np.uint8))
    for j in range(1, ns):
        comp = slabels == j
        contact = {i: int((grown[i] & comp).sum()) for i in kept}
        best = max(contact, key=contact.__getitem__, default=None)
        if best is not None and contact[best] > 0:
            shadow_of[best] |= comp
    return [(labels == i, shadow_of[i]) for i in kept]


def desoba_instances(root: Path = DESOBA, prefix: str = "desoba") -> list[RealInstance]:
    """Every real instance of the DESOBA samples under ``root``: the target first, then the others, per photo
    (named ``<prefix>/<folder>``)."""
    out: list[RealInstance] = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        photo = f"{prefix}/{folder.name}"
        composite = read_image(folder / "composite.png", MAX_PIXELS)
        target = read_mask(folder / "object_mask.png", MAX_PIXELS)
        objects = read_mask(folder / "other_objects_mask.png", MAX_PIXELS) & ~target
        pairs = split_pairs(objects, read_mask(folder / "other_shadows_mask.png", MAX_PIXELS) & ~target)
        out.append(
            RealInstance(
                photo,
                f"{photo}/target",
                composite,
                target,
                read_mask(folder / "shadow_mask.png", MAX_PIXELS) & ~target,
                read_image(folder / "shadowfree.png", MAX_PIXELS),
                objects,
            )
        )
        for k, (mask, shadow) in enumerate(pairs, 1):
            out.append(
                RealInstance(
                    photo, f"{photo}/other-{k}", composite, mask, shadow & ~mask, None, target | (objects & ~mask)
                )
            )
    return out


#: the bundled photos' hand-made annotations: ``annotated/<photo stem>/<name>_object.png`` + ``_shadow.png``
ANNOTATED = BUNDLED / "annotated"


def annotated_instances(root: Path = ANNOTATED) -> list[RealInstance]:
    """Instances annotated for this project on the bundled photos (how: curation/data/real/README.md).

    No shadow-free photo exists for these; ``others`` is the union of the photo's other annotated objects.
    """
    out: list[RealInstance] = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        photo = next(BUNDLED.glob(f"{folder.name}.*"))
        composite = read_image(photo, MAX_PIXELS)
        names = sorted(p.name.removesuffix("_object.png") for p in folder.glob("*_object.png"))
        masks = {n: read_mask(folder / f"{n}_object.png", MAX_PIXELS) for n in names}
        for n in names:
            others = np.zeros_like(masks[n])
            for m in names:
                if m != n:
                    others |= masks[m]
            out.append(
                RealInstance(
                    f"bundled:{photo.name}",
                    f"{folder.name}/{n}",
                    composite,
                    masks[n],
                    read_mask(folder / f"{n}_shadow.png", MAX_PIXELS) & ~masks[n],
                    None,
                    others & ~masks[n],
                )
            )
    return out


def real_instances() -> list[RealInstance]:
    """Every annotated real instance the project ships: DESOBA's, then the bundled photos' own."""
    return desoba_instances() + annotated_instances()


def every_real_instance() -> list[RealInstance]:
    """:func:`real_instances` and the held-out DESOBAv2 photos' instances: what a detector is evaluated on.

    Separate from :func:`real_instances` because the curator's generator and its splits are built on that list;
    DESOBAv2 stays out of every training set.
    """
    return real_instances() + desoba_instances(DESOBAV2, "desobav2")


#: permissively licensed photos that ship inside installed packages (credits: curation/data/real/README.md);
#: grey ones are textures (brick, grass, gravel) that make plausible ground
PACKAGE_PHOTOS: dict[str, tuple[str, str]] = {
    "skimage:astronaut": ("skimage", "data/astronaut.png"),  # NASA, public domain
    "skimage:coffee": ("skimage", "data/coffee.png"),  # Rachel Michetti, CC0
    "skimage:chelsea": ("skimage", "data/chelsea.png"),  # Stefan van der Walt, CC0
    "skimage:rocket": ("skimage", "data/rocket.jpg"),  # SpaceX, public domain
    "skimage:brick": ("skimage", "data/brick.png"),  # CC0Textures, CC0
    "skimage:grass": ("skimage", "data/grass.png"),  # linolafett (DeviantArt), CC0
    "skimage:gravel": ("skimage", "data/gravel.png"),  # CC0Textures, CC0
    "sklearn:china.jpg": ("sklearn", "datasets/images/china.jpg"),  # danielbuechele (Flickr), CC BY 2.0
    "sklearn:flower.jpg": ("sklearn", "datasets/images/flower.jpg"),  # vultilion (Flickr), CC BY 2.0
}


def photo_path(name: str) -> Path:
    """The file of a named photo: ``bundled:<file>``, ``desoba/NN:<composite|shadowfree>`` or a package photo."""
    kind, _, rest = name.partition(":")
    if kind == "bundled":
        return BUNDLED / rest
    if kind.startswith("desoba/"):
        return DESOBA / kind.removeprefix("desoba/") / f"{rest}.png"
    package, rel = PACKAGE_PHOTOS[name]
    spec = importlib.util.find_spec(package)  # locates the package's files without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"photo {name}: package {package} is not installed")
    return Path(spec.submodule_search_locations[0]) / rel


def read_photo(name: str) -> np.ndarray:
    """A named photo as RGB uint8 (grey textures as three equal channels)."""
    return read_image(photo_path(name), MAX_PIXELS)


# --- the hole benchmark: real photos, object-shaped holes where the truth is the photo itself -------------


#: a photo of the hole benchmark: where it comes from, its licence, and where holes may be cut
@dataclass(frozen=True)
class PhotoSpec:
    name: str
    origin: str  # "skimage:<function>", "sklearn:<file>", "bundled:<file>" or "desoba:<NN>"
    licence: str
    #: boxes (x0, y0, x1, y1) in the 256-px square crop where a hole may lie: the ground, grass, wood, ...
    ground: tuple[tuple[int, int, int, int], ...] = ((0, 0, 256, 256),)


#: chosen by looking at the photos; ``tune`` chooses fill parameters and check thresholds, ``report`` is held out
HOLE_PHOTOS: dict[str, tuple[PhotoSpec, ...]] = {
    "tune": (
        PhotoSpec("brick", "skimage:brick", "CC0 (cc0textures.com, Bricks25)"),
        PhotoSpec("gravel", "skimage:gravel", "CC0 (cc0textures.com, Gravel04)"),
        PhotoSpec("chelsea", "skimage:chelsea", "CC0 (Stefan van der Walt)", ((0, 0, 256, 96),)),
        PhotoSpec("coffee", "skimage:coffee", "CC0 (Rachel Michetti)", ((0, 0, 80, 150), (176, 0, 256, 150))),
        PhotoSpec("sam_dog", "bundled:sam_dog.jpg", "Apache-2.0 (segment-anything)", ((100, 130, 200, 256),)),
        PhotoSpec(
            "sam_groceries", "bundled:sam_groceries.jpg", "Apache-2.0 (segment-anything)", ((20, 180, 250, 240),)
        ),
    ),
    "report": (
        PhotoSpec("grass", "skimage:grass", "CC0 (DeviantArt linolafett, Grass-01)"),
        PhotoSpec("rocket-sky", "skimage:rocket", "public domain (SpaceX)", ((0, 0, 110, 220),)),
        PhotoSpec("china-trees", "sklearn:china.jpg", "CC BY 2.0 (danielbuechele)", ((150, 96, 256, 256),)),
        PhotoSpec("flower-bokeh", "sklearn:flower.jpg", "CC BY 2.0 (vultilion)", ((0, 0, 256, 80),)),
        PhotoSpec("sam_truck-road", "bundled:sam_truck.jpg", "Apache-2.0 (segment-anything)", ((0, 186, 256, 256),)),
        PhotoSpec(
            "soba-plaza",
            "bundled:soba_web-shadow0573.jpg",
            "Apache-2.0 (InstanceShadowDetection)",
            ((0, 175, 256, 256),),
        ),
        PhotoSpec("desoba-05", "desoba:05", "MIT (DESOBA)"),
        PhotoSpec("desoba-06", "desoba:06", "MIT (DESOBA)"),
        PhotoSpec("desoba-07", "desoba:07", "MIT (DESOBA)"),
    ),
}
HOLE_SIZE = 256


@dataclass
class Hole:
    """A real photo with an object-shaped hole: the photo is the truth inside the hole."""

    name: str
    photo: np.ndarray  # RGB uint8, HOLE_SIZE square
    hole: np.ndarray  # bool


def square(image: np.ndarray, size: int = HOLE_SIZE) -> np.ndarray:
    """The centred square crop of a photo, resized to ``size``."""
    h, w = image.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    crop = image[y : y + s, x : x + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_CUBIC)


def load_photo(spec: PhotoSpec, root: Path = DESOBA) -> tuple[np.ndarray, np.ndarray]:
    """The photo (RGB uint8, 256 px square) and where holes may go (bool): the spec's boxes, and on a DESOBA
    shadow-free photo every pixel away from its annotated objects and shadows."""
    kind, _, ref = spec.origin.partition(":")
    allowed = np.zeros((HOLE_SIZE, HOLE_SIZE), bool)
    for x0, y0, x1, y1 in spec.ground:
        allowed[y0:y1, x0:x1] = True
    if kind != "desoba":
        image = read_photo(spec.origin)
    else:
        folder = Path(root) / ref
        image = read_image(folder / "shadowfree.png", MAX_PIXELS)
        busy = np.zeros(image.shape[:2], bool)
        for name in ("object_mask", "other_objects_mask", "other_shadows_mask"):
            busy |= read_mask(folder / f"{name}.png", MAX_PIXELS)
        allowed &= ~square(dilate(busy, 4).astype(np.uint8)).astype(bool)
    return square(image), allowed


def hole_shapes(seed: int = 0, synthetic: int = 6) -> list[tuple[str, np.ndarray]]:
    """Object outlines to cut holes with: every real DESOBA instance mask (cropped to its box) and a few
    synthetic silhouettes."""
    from curation.core.scenes import SHAPES, silhouette

    shapes = []
    for inst in desoba_instances():
        x, y, w, h = cv2.boundingRect(inst.mask.astype(np.uint8))
        shapes.append((inst.name, inst.mask[y : y + h, x : x + w]))
    rng = np.random.default_rng(seed)
    for k in range(synthetic):
        shape = SHAPES[k % len(SHAPES)]
        h = int(rng.integers(40, 80))
        shapes.append((f"synthetic/{shape}-{k}", silhouette(rng, shape, h, int(h * rng.uniform(0.5, 1.3))) > 0.5))
    return shapes


def cut_holes(split: str, per_photo: int = 4, seed: int = 0, root: Path = DESOBA) -> list[Hole]:
    """``per_photo`` holes in each photo of ``split``: a shape, scaled to 48–96 px (less where the ground is
    smaller), placed at random where it lies wholly on the allowed ground. Deterministic from ``seed``."""
    rng = np.random.default_rng([seed, sorted(HOLE_PHOTOS).index(split)])
    shapes = hole_shapes(seed)
    holes = []
    for spec in HOLE_PHOTOS[split]:
        photo, allowed = load_photo(spec, root)
        for k in range(per_photo):
            label, shape = shapes[int(rng.integers(len(shapes)))]
            hole = _place(rng, shape, allowed, float(rng.uniform(48, 96)))
            if hole is not None:
                holes.append(Hole(f"{spec.name}/{k}:{label}", photo, hole))
    return holes


def _place(
    rng: np.random.Generator, shape: np.ndarray, allowed: np.ndarray, side: float, tries: int = 200
) -> np.ndarray | None:
    """``shape`` scaled to ``side`` px on its long side (less after failed tries) and put where it lies inside
    ``allowed``; None when it never fits."""
    for attempt in range(tries):
        scale = side * (0.97**attempt) / max(shape.shape)
        h, w = max(8, int(shape.shape[0] * scale)), max(8, int(shape.shape[1] * scale))
        small = cv2.resize(shape.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        if h >= allowed.shape[0] or w >= allowed.shape[1]:
            continue
        y, x = int(rng.integers(0, allowed.shape[0] - h)), int(rng.integers(0, allowed.shape[1] - w))
        if allowed[y : y + h, x : x + w][small].all():
            out = np.zeros_like(allowed)
            out[y : y + h, x : x + w] = small
            return out
    return None


# --- the hole benchmark at real size: the photos at their own size (570-1024 px), holes up to a quarter -----


#: a photo of the real-size hole benchmark: ``ground`` boxes are fractions (x0, y0, x1, y1) of its width and
#: height; annotated objects and shadows of a DESOBA-style sample are kept out of the holes too
@dataclass(frozen=True)
class RealSizeSpec:
    name: str
    origin: str  # a photo name (photo_path) or "desobav2:<NN>" (its shadow-free photo)
    ground: tuple[tuple[float, float, float, float], ...] = ((0.0, 0.0, 1.0, 1.0),)


#: photos of at least 570 px (longest side), chosen by looking; the split follows HOLE_PHOTOS (tune, report),
#: and DESOBAv2, on which nothing was ever chosen, is held out
REAL_SIZE_PHOTOS: dict[str, tuple[RealSizeSpec, ...]] = {
    "tune": (
        RealSizeSpec("sam_dog-floor", "bundled:sam_dog.jpg", ((0.4, 0.6, 1.0, 1.0),)),
        RealSizeSpec("sam_groceries-bumper", "bundled:sam_groceries.jpg", ((0.05, 0.6, 0.95, 1.0),)),
        RealSizeSpec("coffee-wood", "skimage:coffee", ((0.0, 0.0, 0.3, 1.0), (0.72, 0.0, 1.0, 1.0))),
    ),
    "report": (
        RealSizeSpec("rocket-sky", "skimage:rocket", ((0.1, 0.0, 0.42, 0.75), (0.55, 0.0, 0.85, 0.75))),
        RealSizeSpec("china-trees", "sklearn:china.jpg", ((0.55, 0.55, 1.0, 1.0), (0.0, 0.0, 0.3, 0.35))),
        RealSizeSpec("flower-bokeh", "sklearn:flower.jpg", ((0.0, 0.0, 0.25, 1.0), (0.75, 0.0, 1.0, 1.0))),
        RealSizeSpec("sam_truck-road", "bundled:sam_truck.jpg", ((0.0, 0.65, 1.0, 1.0),)),
        RealSizeSpec("soba-plaza", "bundled:soba_web-shadow0573.jpg", ((0.0, 0.6, 1.0, 1.0),)),
        RealSizeSpec("desobav2-01", "desobav2:01"),
        RealSizeSpec("desobav2-02", "desobav2:02"),
        RealSizeSpec("desobav2-04", "desobav2:04"),
        RealSizeSpec("desobav2-06", "desobav2:06"),
    ),
}
#: the longest side a real-size photo is reduced to (stage 1's default ``ingest.max_side``)
REAL_SIZE_MAX_PX = 1024
#: the hole's share of the photo's pixels: one hole per bucket and round, drawn log-uniform within it
HOLE_SHARES: tuple[tuple[float, float], ...] = ((0.005, 0.02), (0.02, 0.08), (0.08, 0.25))


def load_real_size_photo(spec: RealSizeSpec, root: Path = DESOBAV2) -> tuple[np.ndarray, np.ndarray]:
    """The photo at its own size (at most ``REAL_SIZE_MAX_PX``) and where holes may go: the spec's boxes, less
    any annotated object or shadow (grown by 4 px)."""
    kind, _, ref = spec.origin.partition(":")
    busy = None
    if kind == "desobav2":
        folder = Path(root) / ref
        image = read_image(folder / "shadowfree.png", MAX_PIXELS)
        busy = np.zeros(image.shape[:2], bool)
        for name in ("object_mask", "other_objects_mask", "other_shadows_mask"):
            busy |= read_mask(folder / f"{name}.png", MAX_PIXELS)
    else:
        image = read_photo(spec.origin)
        annotated = [i for i in annotated_instances() if i.photo == spec.origin]
        if annotated:
            busy = np.zeros(image.shape[:2], bool)
            for inst in annotated:
                busy |= inst.mask | inst.shadow
    h, w = image.shape[:2]
    allowed = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in spec.ground:
        allowed[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)] = True
    if busy is not None:
        allowed &= ~dilate(busy, 4)
    scale = min(1.0, REAL_SIZE_MAX_PX / max(h, w))
    if scale < 1.0:
        size = (round(w * scale), round(h * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        allowed = cv2.resize(allowed.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    return image, allowed


def cut_real_size_holes(split: str, rounds: int = 1, seed: int = 0, root: Path = DESOBAV2) -> list[Hole]:
    """In each photo of ``split``, ``rounds`` holes per share bucket (``HOLE_SHARES``): a real object's outline
    (every bundled annotated instance's mask) scaled to that share of the photo's pixels, placed at random
    where it lies wholly on the allowed ground, shrunk where it never fits. Deterministic from ``seed``."""
    rng = np.random.default_rng([seed, sorted(REAL_SIZE_PHOTOS).index(split), 1])
    shapes = []
    for inst in every_real_instance():
        x, y, w, h = cv2.boundingRect(inst.mask.astype(np.uint8))
        shapes.append((inst.name, inst.mask[y : y + h, x : x + w]))
    holes = []
    for spec in REAL_SIZE_PHOTOS[split]:
        photo, allowed = load_real_size_photo(spec, root)
        for k in range(rounds):
            for lo, hi in HOLE_SHARES:
                label, shape = shapes[int(rng.integers(len(shapes)))]
                share = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
                side = max(shape.shape) * float(np.sqrt(share * allowed.size / shape.sum()))
                hole = _place_fitting(rng, shape, allowed, side)
                if hole is not None:
                    holes.append(Hole(f"{spec.name}/{k}:{label}", photo, hole))
    return holes


def _place_fitting(
    rng: np.random.Generator, shape: np.ndarray, allowed: np.ndarray, side: float, shrink: float = 0.9
) -> np.ndarray | None:
    """``shape`` scaled to ``side`` px on its long side and put at a random position among all those where it
    lies wholly inside ``allowed``, shrunk by ``shrink`` until one exists; None when none does at 16 px.

    Every position is tested at once (the count of forbidden pixels under the shape, by correlation), so a
    large hole finds the one place it fits where random tries would miss it.
    """
    forbidden = (~allowed).astype(np.float32)
    while side >= 16:
        scale = side / max(shape.shape)
        h, w = max(8, int(shape.shape[0] * scale)), max(8, int(shape.shape[1] * scale))
        if h < allowed.shape[0] and w < allowed.shape[1]:
            small = cv2.resize(shape.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
            under = cv2.matchTemplate(forbidden, small.astype(np.float32), cv2.TM_CCORR)
            ys, xs = np.nonzero(under < 0.5)
            if ys.size:
                i = int(rng.integers(ys.size))
                out = np.zeros_like(allowed)
                out[ys[i] : ys[i] + h, xs[i] : xs[i] + w] = small.astype(bool)
                return out
        side *= shrink
    return None
