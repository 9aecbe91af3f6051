"""Which real photo serves which purpose: train, calibration (the threshold is chosen there only), test.

Splits are by photo, so that no pixel of a calibration or test photo is ever trained on: a photo's
annotated instances, its crops as backgrounds and its textures all go where the photo goes. The lists
are written into every model card. Synthetic scenes are split by seed range on top of this.
"""

from __future__ import annotations

from curation.core.scenes import PHOTOS

SPLITS: tuple[str, ...] = ("train", "calibration", "test")

#: photo names as :func:`curation.core.realdata.read_photo` reads them; ``desoba/NN`` is that DESOBA sample
#: (its instances, and its shadow-free photo as a background)
PHOTO_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "desoba/05",
        "bundled:sam_dog.jpg",
        "bundled:sam_truck.jpg",
        "bundled:sam_groceries.jpg",
        "skimage:astronaut",
        "skimage:rocket",
        "skimage:brick",
        "skimage:grass",
        "sklearn:china.jpg",
    ),
    "calibration": ("bundled:soba_web-shadow0573.jpg", "skimage:chelsea", "skimage:gravel", "sklearn:flower.jpg"),
    "test": ("desoba/06", "desoba/07", "skimage:coffee"),
}

#: scene seeds per split for the synthetic generators (far from the demo's seeds 0…, never trained on)
SEED_BASE: dict[str, int] = {"train": 10_000_000, "calibration": 30_000_000, "test": 20_000_000}


def split_of(photo: str) -> str | None:
    """The split a photo belongs to (``None``: not used by the curator's data)."""
    return next((s for s, photos in PHOTO_SPLITS.items() if photo in photos), None)


def background_photos(split: str) -> tuple[str, ...]:
    """The split's photos as backgrounds: a DESOBA sample contributes its shadow-free photo."""
    return tuple(f"{p}:shadowfree" if p.startswith("desoba/") else p for p in PHOTO_SPLITS[split])


def texture_photos(split: str) -> tuple[str, ...]:
    """The bundled photos of the split, for :func:`curation.core.scenes.render_scene`'s textures."""
    return tuple(p.removeprefix("bundled:") for p in PHOTO_SPLITS[split] if p.removeprefix("bundled:") in PHOTOS)
