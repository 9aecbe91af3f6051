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

from curation.core.data import BUNDLED, DESOBA
from curation.core.imageio import read_image, read_mask
from curation.core.morphology import dilate

MAX_PIXELS = 1 << 26


@dataclass
class RealInstance:
    """One annotated object of a real photo and its cast shadow (both bool masks, never overlapping)."""

    photo: str  # e.g. "desoba/05", "bundled:soba_web-shadow0573.jpg": instances of one photo share it, so splits by photo keep them together
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


def split_pairs(objects: np.ndarray, shadows: np.ndarray, contact_px: int = 3,
                min_object_px: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
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
        best = max(contact, key=contact.get, default=None)
        if best is not None and contact[best] > 0:
            shadow_of[best] |= comp
    return [(labels == i, shadow_of[i]) for i in kept]


def desoba_instances(root: Path = DESOBA) -> list[RealInstance]:
    """Every real instance of the DESOBA samples under ``root``: the target first, then the others, per photo."""
    out: list[RealInstance] = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        photo = f"desoba/{folder.name}"
        composite = read_image(folder / "composite.png", MAX_PIXELS)
        target = read_mask(folder / "object_mask.png", MAX_PIXELS)
        objects = read_mask(folder / "other_objects_mask.png", MAX_PIXELS) & ~target
        pairs = split_pairs(objects, read_mask(folder / "other_shadows_mask.png", MAX_PIXELS) & ~target)
        out.append(RealInstance(photo, f"{photo}/target", composite, target,
                                read_mask(folder / "shadow_mask.png", MAX_PIXELS) & ~target,
                                read_image(folder / "shadowfree.png", MAX_PIXELS), objects))
        for k, (mask, shadow) in enumerate(pairs, 1):
            out.append(RealInstance(photo, f"{photo}/other-{k}", composite, mask, shadow & ~mask, None,
                                    target | (objects & ~mask)))
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
            out.append(RealInstance(f"bundled:{photo.name}", f"{folder.name}/{n}", composite, masks[n],
                                    read_mask(folder / f"{n}_shadow.png", MAX_PIXELS) & ~masks[n], None, others & ~masks[n]))
    return out


def real_instances() -> list[RealInstance]:
    """Every annotated real instance the project ships: DESOBA's, then the bundled photos' own."""
    return desoba_instances() + annotated_instances()


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
    "sklearn:china": ("sklearn", "datasets/images/china.jpg"),  # danielbuechele (Flickr), CC BY 2.0
    "sklearn:flower": ("sklearn", "datasets/images/flower.jpg"),  # vultilion (Flickr), CC BY 2.0
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


def load_photo(name: str) -> np.ndarray:
    """A named photo as RGB uint8 (grey textures as three equal channels)."""
    return read_image(photo_path(name), MAX_PIXELS)
