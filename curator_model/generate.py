"""Labelled training data without human labels: correct triplets and their realistic corruptions.

Correct triplets come from synthetic scenes with exact ground truth (decomposed the two ways stage 2
does it: with the true clean plate, and unpaired by inpaint + relight) and from the bundled DESOBA photos
(shadow-free plate + inpaint). Each correct triplet also yields one corruption per failure mode
(:mod:`curator_model.corruptions`). Everything is deterministic from the scene seed; the train and held-out
splits use disjoint scene seeds (and disjoint DESOBA photos), so no scene is on both sides.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from curation.core.compositing import recomposite_psnr
from curation.core.data import DESOBA
from curation.core.decompose import Triplet, background_shadowfree, background_unpaired
from curation.core.imageio import read_image, read_mask
from curation.core.scenes import render_scene
from curator_model.corruptions import CORRUPTIONS, decompose, inpaint, safe_crop
from curator_model.features import features
from curator_model.network import CLASSES
from curator_model.physical import ghost_ratio, physical_score

GENERATOR_VERSION = 5  # bump when the data changes, so cached arrays are rebuilt
TRAIN_SEED_BASE = 10_000_000  # far from the demo's scene seeds (0…), so the demo is never trained on
HELDOUT_SEED_BASE = 20_000_000
SCENE_SIZES = (160, 192, 224, 256)
# 07 is left out: its object touches the photo's right border, i.e. it is a truncated sample, not a correct one
DESOBA_SPLIT = {"train": ("05",), "heldout": ("06",)}
DESOBA_COPIES = 12  # augmented copies per real photo (scale, flip, crop)
PSNR_FLOOR = 35.0  # stage 2's default: a good triplet below it would never reach stage 4


@dataclass
class Sample:
    triplet: Triplet
    label: str  # "good" or a failure mode
    scene: str


def physical(t: Triplet, psnr_floor: float = PSNR_FLOOR) -> float:
    """The skeleton's hand-made rule on one triplet, for the side-by-side comparison."""
    value = min(recomposite_psnr(t.composite, t.background, t.foreground), 99.0)
    return physical_score(value, ghost_ratio(t.background, t.mask), psnr_floor)


def _with_corruptions(goods: list[Triplet], scene: str, rng: np.random.Generator) -> list[Sample]:
    out = []
    for good in goods:
        out.append(Sample(safe_crop(good, rng) if rng.random() < 0.5 else good, "good", scene))
    for name, corrupt in CORRUPTIONS.items():
        bad = corrupt(goods[int(rng.integers(len(goods)))], rng)
        if bad is None:
            continue
        if name != "truncated" and rng.random() < 0.5:
            bad = safe_crop(bad, rng)
        out.append(Sample(bad, name, scene))
    return out


def scene_samples(seed: int) -> list[Sample]:
    """All samples of one synthetic scene: per object, the paired and the unpaired decomposition, plus corruptions."""
    rng = np.random.default_rng([GENERATOR_VERSION, seed])
    size = int(SCENE_SIZES[int(rng.integers(len(SCENE_SIZES)))])
    scene = render_scene(seed, size, max_objects=2, occlusion_rate=0.0)
    out: list[Sample] = []
    for j, inst in enumerate(scene.instances):
        goods = [decompose(scene.composite, inst.background, inst.mask)]
        unpaired = decompose(scene.composite, background_unpaired(scene.composite, inst.mask, inst.effect, inpaint), inst.mask)
        if recomposite_psnr(unpaired.composite, unpaired.background, unpaired.foreground) >= PSNR_FLOOR:
            goods.append(unpaired)
        out += _with_corruptions(goods, f"synthetic:{seed}:{j}", rng)
    return out


def desoba_good(sample_id: str) -> Triplet:
    folder = DESOBA / sample_id
    composite = read_image(folder / "composite.png", 1 << 24)
    obj = read_mask(folder / "object_mask.png", 1 << 24)
    bg = background_shadowfree(read_image(folder / "shadowfree.png", 1 << 24), obj, inpaint)
    return decompose(composite, bg, obj)


def _augment(t: Triplet, rng: np.random.Generator) -> Triplet:
    """Rescale and maybe mirror a real photo's layers, so three photos give varied views."""
    scale = rng.uniform(0.6, 1.0)
    h, w = t.mask.shape
    size = (max(32, int(w * scale)), max(32, int(h * scale)))
    flip = rng.random() < 0.5

    def tx(a: np.ndarray, nearest: bool = False) -> np.ndarray:
        a = cv2.resize(a, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
        return np.ascontiguousarray(a[:, ::-1]) if flip else a

    comp, bg, mask = tx(t.composite), tx(t.background), tx(t.mask, nearest=True)
    return decompose(comp, bg, mask > 0)


def desoba_samples(sample_id: str, copy: int) -> list[Sample]:
    rng = np.random.default_rng([GENERATOR_VERSION, int(sample_id), copy])
    good = desoba_good(sample_id)
    return _with_corruptions([_augment(good, rng)], f"desoba:{sample_id}", rng)


@dataclass
class Arrays:
    """A labelled split as arrays: features, class index, physical-rule score, scene id."""

    x: np.ndarray  # uint8 (N, C, S, S)
    y: np.ndarray  # int64 class index into CLASSES
    physical: np.ndarray  # float32
    scene: np.ndarray  # str

    def counts(self) -> dict[str, int]:
        return {c: int((self.y == i).sum()) for i, c in enumerate(CLASSES)}


def _job(args: tuple[str, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    kind, a, b, input_size = args
    samples: list[Sample] = []
    if kind == "synthetic":
        for seed in range(a, b):
            samples += scene_samples(seed)
    else:
        samples += desoba_samples(f"{a:02d}", b)
    return (np.stack([features(s.triplet, input_size) for s in samples]),
            np.array([CLASSES.index(s.label) for s in samples], np.int64),
            np.array([physical(s.triplet) for s in samples], np.float32),
            np.array([s.scene for s in samples]))


def build_split(split: str, scenes: int, input_size: int, workers: int = 2, cache_dir: Path | None = None,
                desoba_copies: int = DESOBA_COPIES) -> Arrays:
    """The ``train`` or ``heldout`` split, from the .npz cache when the same recipe was built before."""
    recipe = {"v": GENERATOR_VERSION, "split": split, "scenes": scenes, "input_size": input_size, "desoba": desoba_copies}
    cache = None
    if cache_dir is not None:
        digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
        cache = Path(cache_dir) / f"{split}-{scenes}-{input_size}-{digest}.npz"  # recipe in the name
        if cache.exists():
            with np.load(cache, allow_pickle=False) as z:
                return Arrays(z["x"], z["y"], z["physical"], z["scene"])
    base = TRAIN_SEED_BASE if split == "train" else HELDOUT_SEED_BASE
    step = 25
    jobs = [("synthetic", base + i, base + min(i + step, scenes), input_size) for i in range(0, scenes, step)]
    jobs += [("desoba", int(sid), c, input_size) for sid in DESOBA_SPLIT[split] for c in range(desoba_copies)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_job, jobs))
    else:
        parts = [_job(j) for j in jobs]
    arrays = Arrays(*(np.concatenate([p[k] for p in parts]) for k in range(4)))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # concurrent builders never share a temporary
        np.savez(tmp, x=arrays.x, y=arrays.y, physical=arrays.physical, scene=arrays.scene)
        tmp.rename(cache)
    return arrays
