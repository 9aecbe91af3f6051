"""Labelled data without human labels: correct triplets and their realistic corruptions, split by photo.

Three kinds of correct triplets, each layered with stage 2's own recipe and then corrupted once per
failure mode (:mod:`curator_model.corruptions`):

- ``synthetic``: rendered scenes with exact truth (:func:`curation.core.scenes.render_scene`), decomposed
  with the true clean plate and unpaired (inpaint + relight);
- ``composite``: objects, real cutouts and clutter composited on real photos (:mod:`curator_model.composites`),
  decomposed paired, DESOBA-style (shadow-free plate) or unpaired;
- ``real``: the annotated real instances (:func:`curation.core.realdata.real_instances`) decomposed the way
  a run would (shadow-free photo when there is one, else inpaint + relight of the annotated shadow), as is
  and in augmented views. An instance cut by the photo's border is a real ``truncated`` sample.

Each split draws only on its own photos (:mod:`curator_model.splits`) and its own scene seeds. Everything
is deterministic from the seeds and cached, so a rerun of training spends its time on the model.
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

from curation.core.config.masks import QualityOptions
from curation.core.decompose import Triplet, background_shadowfree, background_unpaired
from curation.core.morphology import bbox_of, dilate
from curation.core.quality import failures, measure
from curation.core.realdata import RealInstance, real_instances
from curation.core.scenes import PHOTOS, render_scene
from curator_model.composites import compose, jpeg
from curator_model.corruptions import CORRUPTIONS, STAGE2, decompose, inpaint, safe_crop
from curator_model.features import CHANNELS, features
from curator_model.network import CLASSES
from curator_model.physical import ghost_ratio, physical_score
from curator_model.splits import SEED_BASE, split_of, texture_photos

GENERATOR_VERSION = 9  # bump when the data change, so cached arrays are rebuilt
SCENE_SIZES = (160, 192, 224, 256)
#: stage 2's quality bounds (its defaults): a "good" triplet must pass them, as it must to reach stage 4
QUALITY = QualityOptions()
KINDS: tuple[str, ...] = ("synthetic", "composite", "real")


@dataclass
class Sample:
    triplet: Triplet
    label: str  # "good" or a failure mode
    scene: str  # samples of one scene (or one real instance) share it
    kind: str = "synthetic"


def physical(t: Triplet) -> float:
    """The hand-made rule on one triplet, for the side-by-side comparison."""
    quality = measure(t.composite, t.background, t.mask, t.effect).as_dict()
    return physical_score(ghost_ratio(t.background, t.mask), quality, QUALITY)


def labelled_good(t: Triplet) -> bool:
    """Whether a decomposition made by stage 2's recipe may be labelled ``good``: stage 2's quality checks
    pass it (checks that can fail; the recomposite PSNR passes for any background, a black fill included)."""
    return not failures(measure(t.composite, t.background, t.mask, t.effect), QUALITY)


def _with_corruptions(goods: list[Triplet], scene: str, rng: np.random.Generator, kind: str) -> list[Sample]:
    out = [Sample(safe_crop(good, rng) if rng.random() < 0.5 else good, "good", scene, kind) for good in goods]
    for name, corrupt in CORRUPTIONS.items():
        bad = corrupt(goods[int(rng.integers(len(goods)))], rng)
        if bad is None:
            continue
        if name != "truncated" and rng.random() < 0.5:
            bad = safe_crop(bad, rng)
        out.append(Sample(bad, name, scene, kind))
    return out


def scene_samples(seed: int, photos: tuple[str, ...] = PHOTOS) -> list[Sample]:
    """A rendered scene: per object, the paired and the unpaired decomposition, plus corruptions."""
    rng = np.random.default_rng([GENERATOR_VERSION, seed])
    size = int(SCENE_SIZES[int(rng.integers(len(SCENE_SIZES)))])
    scene = render_scene(seed, size, max_objects=2, occlusion_rate=0.0, photos=photos)
    out: list[Sample] = []
    for j, inst in enumerate(scene.instances):
        goods = [decompose(scene.composite, inst.background, inst.mask)]
        unpaired = decompose(
            scene.composite, background_unpaired(scene.composite, inst.mask, inst.effect, inpaint), inst.mask
        )
        if labelled_good(unpaired):
            goods.append(unpaired)
        out += _with_corruptions(goods, f"synthetic:{seed}:{j}", rng, "synthetic")
    return out


def composite_samples(split: str, seed: int) -> list[Sample]:
    """A scene composited on a real photo of ``split``: one or two of stage 2's paths, plus corruptions."""
    rng = np.random.default_rng([GENERATOR_VERSION, 1, seed])
    scene = compose(rng, split)
    if scene is None:
        return []
    ways = {
        "paired": lambda: scene.plate,
        "shadowfree": lambda: background_shadowfree(scene.shadowfree, scene.mask, inpaint),
        "unpaired": lambda: background_unpaired(scene.composite, scene.mask, scene.effect, inpaint),
    }
    names = rng.choice(list(ways), size=2, replace=False)
    goods = [t for t in (decompose(scene.composite, ways[n](), scene.mask) for n in names) if labelled_good(t)]
    return _with_corruptions(goods, f"composite:{split}:{seed}", rng, "composite") if goods else []


def _around(inst: RealInstance, margin: float = 1.0) -> RealInstance:
    """The instance in a crop of its photo that keeps ``margin`` × its size on every side (where the photo
    has it): the curator sees 1.5 × the object's box, so a large photo costs time and adds nothing."""
    box = bbox_of(inst.mask | inst.shadow)
    assert box is not None, "a real instance has object pixels"
    x, y, w, h = box
    m = int(margin * max(w, h))
    ys, xs = slice(max(0, y - m), y + h + m), slice(max(0, x - m), x + w + m)
    return RealInstance(
        inst.photo,
        inst.name,
        inst.composite[ys, xs],
        inst.mask[ys, xs],
        inst.shadow[ys, xs],
        None if inst.shadowfree is None else inst.shadowfree[ys, xs],
        inst.others[ys, xs],
    )


def recipe_good(inst: RealInstance) -> Triplet:
    """A real instance layered the way a run layers it: its shadow-free photo, else inpaint + relight."""
    if inst.shadowfree is not None:
        background = background_shadowfree(inst.shadowfree, inst.mask, inpaint)
    else:
        background = background_unpaired(inst.composite, inst.mask, inst.shadow, inpaint)
    return decompose(inst.composite, background, inst.mask)


def _view(t: Triplet, rng: np.random.Generator) -> Triplet:
    """Another photo of the same scene: rescaled, maybe mirrored, maybe JPEG-compressed, re-layered."""
    scale = rng.uniform(0.5, 1.0)
    h, w = t.mask.shape
    size = (max(32, int(w * scale)), max(32, int(h * scale)))
    flip = rng.random() < 0.5

    def tx(a: np.ndarray, nearest: bool = False) -> np.ndarray:
        a = cv2.resize(a, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
        return np.ascontiguousarray(a[:, ::-1]) if flip else a

    # where plate and photo differ
    changed: np.ndarray = dilate((t.mask > 0) | (t.foreground[..., 3] > 0), 3).astype(np.uint8)
    comp, bg, mask, changed = tx(t.composite), tx(t.background), tx(t.mask, True) > 0, tx(changed, True) > 0
    if rng.random() < 0.5:
        q = int(rng.integers(50, 96))
        comp = jpeg(comp, q)
        bg = np.where(changed[..., None], jpeg(bg, q), comp)
    return decompose(comp, bg, mask)


def real_samples(index: int, view: int) -> list[Sample]:
    """View ``view`` (0 = the photo as it is) of real instance ``index``, with one corruption per mode.

    An instance cut by the photo's border is itself a real ``truncated`` sample and gets no corruptions.
    """
    inst = real_instances()[index]
    rng = np.random.default_rng([GENERATOR_VERSION, 2, index, view])
    good = recipe_good(_around(inst))
    if view:
        good = _view(good, rng)
    if inst.touches_border:
        return [Sample(good, "truncated", f"real:{inst.name}", "real")]
    if not labelled_good(good):  # the recipe failed on this view: no good to learn from, nor to corrupt
        return []
    return _with_corruptions([good], f"real:{inst.name}", rng, "real")


@dataclass
class Arrays:
    """A labelled split as arrays: features, class index, physical-rule score, scene id, kind."""

    x: np.ndarray  # uint8 (N, C, S, S)
    y: np.ndarray  # int64 class index into CLASSES
    physical: np.ndarray  # float32
    scene: np.ndarray  # str
    kind: np.ndarray  # str, one of KINDS

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            k: {c: int(((self.y == i) & (self.kind == k)).sum()) for i, c in enumerate(CLASSES)}
            for k in KINDS
            if (self.kind == k).any()
        }

    def only(self, kind: str) -> Arrays:
        keep = self.kind == kind
        return Arrays(self.x[keep], self.y[keep], self.physical[keep], self.scene[keep], self.kind[keep])


def _job(args: tuple[str, str, int, int, int]) -> tuple[np.ndarray, ...]:
    kind, split, a, b, input_size = args
    samples: list[Sample] = []
    if kind == "synthetic":
        photos = texture_photos(split) if split != "test" else PHOTOS
        for seed in range(a, b):
            samples += scene_samples(seed, photos)
    elif kind == "composite":
        for seed in range(a, b):
            samples += composite_samples(split, seed)
    else:
        samples += real_samples(a, b)
    return (
        np.stack([features(s.triplet, input_size) for s in samples])
        if samples
        else np.zeros((0, len(CHANNELS), input_size, input_size), np.uint8),
        np.array([CLASSES.index(s.label) for s in samples], np.int64),
        np.array([physical(s.triplet) for s in samples], np.float32),
        np.array([s.scene for s in samples], dtype=str),
        np.array([s.kind for s in samples], dtype=str),
    )


def real_indices(split: str) -> list[int]:
    """Positions in :func:`real_instances` of the split's instances."""
    return [i for i, inst in enumerate(real_instances()) if split_of(inst.photo) == split]


def build_split(
    split: str,
    synthetic: int,
    composite: int,
    real_views: int,
    input_size: int,
    workers: int = 2,
    cache_dir: Path | None = None,
) -> Arrays:
    """One split (``train``, ``calibration`` or ``test``), from the .npz cache when this recipe was built before."""
    recipe = {
        "v": GENERATOR_VERSION,
        "split": split,
        "synthetic": synthetic,
        "composite": composite,
        "real_views": real_views,
        "input_size": input_size,
        "fill": STAGE2.inpaint.model_dump(mode="json"),
    }
    cache = None
    if cache_dir is not None:
        digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
        cache = Path(cache_dir) / f"{split}-{input_size}-{digest}.npz"
        if cache.exists():
            with np.load(cache, allow_pickle=False) as z:
                return Arrays(z["x"], z["y"], z["physical"], z["scene"], z["kind"])
    base, step = SEED_BASE[split], 25
    jobs = [
        ("synthetic", split, base + i, base + min(i + step, synthetic), input_size) for i in range(0, synthetic, step)
    ]
    jobs += [
        ("composite", split, base + i, base + min(i + step, composite), input_size) for i in range(0, composite, step)
    ]
    jobs += [("real", split, i, v, input_size) for i in real_indices(split) for v in range(real_views)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_job, jobs))
    else:
        parts = [_job(j) for j in jobs]
    arrays = Arrays(*(np.concatenate([p[k] for p in parts]) for k in range(5)))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # concurrent builders never share a temporary
        np.savez(tmp, x=arrays.x, y=arrays.y, physical=arrays.physical, scene=arrays.scene, kind=arrays.kind)
        tmp.rename(cache)
    return arrays
