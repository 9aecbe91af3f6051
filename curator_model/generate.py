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

Each split draws only on its own photos (:mod:`curator_model.splits`) and its own scene seeds; the real
photos in no split (DESOBAv2) are the ``unseen`` split, scored and never trained or calibrated on. Every sample
is layered and labelled by one :class:`~curator_model.layering.Layering` (the fill and stage-2 settings of the
training config). Data are made in chunks by a process pool, and each chunk is cached under a key of everything
that makes it (:func:`content_key`), so a rerun or a resumed run makes only the chunks it lacks.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from curation.core.data import BUNDLED
from curation.core.decompose import Triplet
from curation.core.morphology import bbox_of, dilate
from curation.core.quality import failures, measure
from curation.core.realdata import PACKAGE_PHOTOS, RealInstance, every_real_instance, photo_path
from curation.core.scenes import PHOTOS, render_scene
from curator_model.composites import compose, jpeg
from curator_model.corruptions import CORRUPTIONS, safe_crop
from curator_model.features import CHANNELS, features
from curator_model.layering import Layering, Stage2Recipe
from curator_model.network import CLASSES
from curator_model.physical import ghost_ratio, physical_score
from curator_model.splits import SEED_BASE, split_of, texture_photos

GENERATOR_VERSION = 10  # bump when the data change in a way the content key cannot see
SCENE_SIZES = (160, 192, 224, 256)
KINDS: tuple[str, ...] = ("synthetic", "composite", "real")
#: the real photos in no split: scored only, never trained or calibrated on (DESOBAv2)
UNSEEN = "unseen"
#: scene seeds per chunk: the unit of work of the pool and of the cache
CHUNK = 10
#: the code whose change changes the data (every module of core, and the curator's data modules)
_CODE = (
    Path(__file__).resolve().parents[1] / "curation" / "core",
    *(
        Path(__file__).resolve().parent / f"{m}.py"
        for m in ("generate", "composites", "corruptions", "layering", "features", "splits", "physical", "network")
    ),
)
#: the packages whose releases can move the data's pixels
_PACKAGES = ("opencv-contrib-python-headless", "numpy", "scikit-image", "scipy", "torch")


@dataclass
class Sample:
    triplet: Triplet
    label: str  # "good" or a failure mode
    scene: str  # samples of one scene (or one real instance) share it
    kind: str = "synthetic"


def _with_corruptions(
    goods: list[Triplet], scene: str, rng: np.random.Generator, kind: str, lay: Layering
) -> list[Sample]:
    out = [Sample(safe_crop(good, rng) if rng.random() < 0.5 else good, "good", scene, kind) for good in goods]
    for name, corrupt in CORRUPTIONS.items():
        bad = corrupt(goods[int(rng.integers(len(goods)))], rng, lay)
        if bad is None:
            continue
        if name != "truncated" and rng.random() < 0.5:
            bad = safe_crop(bad, rng)
        out.append(Sample(bad, name, scene, kind))
    return out


def scene_samples(seed: int, lay: Layering, photos: tuple[str, ...] = PHOTOS) -> list[Sample]:
    """A rendered scene: per object, the paired and the unpaired decomposition, plus corruptions."""
    rng = np.random.default_rng([GENERATOR_VERSION, seed])
    size = int(SCENE_SIZES[int(rng.integers(len(SCENE_SIZES)))])
    scene = render_scene(seed, size, max_objects=2, occlusion_rate=0.0, photos=photos)
    out: list[Sample] = []
    for j, inst in enumerate(scene.instances):
        goods = [lay.decompose(scene.composite, lay.paired(scene.composite, inst.background, inst.mask), inst.mask)]
        unpaired = lay.decompose(scene.composite, lay.unpaired(scene.composite, inst.mask, inst.effect), inst.mask)
        if lay.labelled_good(unpaired):
            goods.append(unpaired)
        out += _with_corruptions(goods, f"synthetic:{seed}:{j}", rng, "synthetic", lay)
    return out


def composite_samples(split: str, seed: int, lay: Layering) -> list[Sample]:
    """A scene composited on a real photo of ``split``: one or two of stage 2's paths, plus corruptions."""
    rng = np.random.default_rng([GENERATOR_VERSION, 1, seed])
    scene = compose(rng, split)
    if scene is None:
        return []
    ways: dict[str, Callable[[], np.ndarray]] = {
        "paired": lambda: lay.paired(scene.composite, scene.plate, scene.mask),
        "shadowfree": lambda: lay.shadowfree(scene.composite, scene.shadowfree, scene.mask),
        "unpaired": lambda: lay.unpaired(scene.composite, scene.mask, scene.effect),
    }
    names = rng.choice(list(ways), size=2, replace=False)
    goods = [t for t in (lay.decompose(scene.composite, ways[n](), scene.mask) for n in names) if lay.labelled_good(t)]
    return _with_corruptions(goods, f"composite:{split}:{seed}", rng, "composite", lay) if goods else []


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


def recipe_good(inst: RealInstance, lay: Layering) -> Triplet:
    """A real instance layered the way a run would: its shadow-free photo, else inpaint + relight."""
    if inst.shadowfree is not None:
        background = lay.shadowfree(inst.composite, inst.shadowfree, inst.mask)
    else:
        background = lay.unpaired(inst.composite, inst.mask, inst.shadow)
    return lay.decompose(inst.composite, background, inst.mask)


def _view(t: Triplet, rng: np.random.Generator, lay: Layering) -> Triplet:
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
    return lay.decompose(comp, bg, mask)


def real_samples(index: int, view: int, lay: Layering) -> list[Sample]:
    """View ``view`` (0 = the photo as it is) of real instance ``index`` of :func:`every_real_instance`, with one
    corruption per mode.

    An instance cut by the photo's border is itself a real ``truncated`` sample and gets no corruptions.
    """
    inst = real_instance(index)
    rng = np.random.default_rng([GENERATOR_VERSION, 2, index, view])
    good = recipe_good(_around(inst), lay)
    if view:
        good = _view(good, rng, lay)
    if inst.touches_border:
        return [Sample(good, "truncated", f"real:{inst.name}", "real")]
    if not lay.labelled_good(good):  # the recipe failed on this view: no good to learn from, nor to corrupt
        return []
    return _with_corruptions([good], f"real:{inst.name}", rng, "real", lay)


@dataclass
class Arrays:
    """A labelled split as arrays: features, class index, physical-rule score, scene id, kind, and whether stage
    2's quality checks pass the sample (what a run lets reach stage 4)."""

    x: np.ndarray  # uint8 (N, C, S, S)
    y: np.ndarray  # int64 class index into CLASSES
    physical: np.ndarray  # float32
    scene: np.ndarray  # str
    kind: np.ndarray  # str, one of KINDS
    stage2_ok: np.ndarray  # bool

    FIELDS = ("x", "y", "physical", "scene", "kind", "stage2_ok")

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            k: {c: int(((self.y == i) & (self.kind == k)).sum()) for i, c in enumerate(CLASSES)}
            for k in KINDS
            if (self.kind == k).any()
        }

    def select(self, keep: np.ndarray) -> Arrays:
        return Arrays(*(getattr(self, f)[keep] for f in self.FIELDS))

    def only(self, kind: str) -> Arrays:
        return self.select(self.kind == kind)

    @classmethod
    def concat(cls, parts: list[Arrays], input_size: int) -> Arrays:
        if not parts:
            return cls.empty(input_size)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.FIELDS))

    @classmethod
    def empty(cls, input_size: int) -> Arrays:
        return cls(
            np.zeros((0, len(CHANNELS), input_size, input_size), np.uint8),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
            np.zeros(0, dtype=str),
            np.zeros(0, dtype=str),
            np.zeros(0, bool),
        )


def sample_arrays(samples: list[Sample], input_size: int, lay: Layering) -> Arrays:
    """Features, labels and the stage-2 verdict and physical-rule score of each sample."""
    if not samples:
        return Arrays.empty(input_size)
    quality = [measure(s.triplet.composite, s.triplet.background, s.triplet.mask, s.triplet.effect) for s in samples]
    opts = lay.recipe.quality
    return Arrays(
        np.stack([features(s.triplet, input_size) for s in samples]),
        np.array([CLASSES.index(s.label) for s in samples], np.int64),
        np.array(
            [
                physical_score(ghost_ratio(s.triplet.background, s.triplet.mask), q.as_dict(), opts)
                for s, q in zip(samples, quality, strict=True)
            ],
            np.float32,
        ),
        np.array([s.scene for s in samples], dtype=str),
        np.array([s.kind for s in samples], dtype=str),
        np.array([not failures(q, opts) for q in quality], bool),
    )


@functools.lru_cache(maxsize=2)
def _layering(recipe_json: str) -> Layering:
    """One Layering per recipe and process: a pool worker builds its fill once."""
    return Layering(Stage2Recipe.model_validate_json(recipe_json))


#: one unit of work: (kind, split, a, b); synthetic/composite: scene seeds [a, b); real: instance a, view b
Job = tuple[str, str, int, int]


def run_job(job: Job, input_size: int, recipe_json: str) -> Arrays:
    kind, split, a, b = job
    lay = _layering(recipe_json)
    samples: list[Sample] = []
    if kind == "synthetic":
        photos = texture_photos(split) if split != "test" else PHOTOS
        for seed in range(a, b):
            samples += scene_samples(seed, lay, photos)
    elif kind == "composite":
        for seed in range(a, b):
            samples += composite_samples(split, seed, lay)
    else:
        samples += real_samples(a, b, lay)
    return sample_arrays(samples, input_size, lay)


@functools.lru_cache(maxsize=1)
def _real() -> tuple[RealInstance, ...]:
    return tuple(every_real_instance())


def real_instance(index: int) -> RealInstance:
    """Real instance ``index`` of :func:`every_real_instance` (read once per process)."""
    return _real()[index]


def real_indices(split: str) -> list[int]:
    """Positions in :func:`every_real_instance` of the split's instances (``unseen``: those of no split)."""
    want = None if split == UNSEEN else split
    return [i for i, inst in enumerate(_real()) if split_of(inst.photo) == want]


def unseen_photos() -> tuple[str, ...]:
    """The real photos in no split: never trained or calibrated on."""
    return tuple(dict.fromkeys(_real()[i].photo for i in real_indices(UNSEEN)))


def jobs(split: str, synthetic: int, composite: int, real_views: int) -> list[Job]:
    """The split's chunks of work, in a fixed order (the order of the split's arrays)."""
    base = SEED_BASE.get(split, 0)
    out: list[Job] = [
        (kind, split, base + i, base + min(i + CHUNK, n))
        for kind, n in (("synthetic", synthetic), ("composite", composite))
        for i in range(0, n, CHUNK)
    ]
    return out + [("real", split, i, v) for i in real_indices(split) for v in range(real_views)]


def _digest_files(paths: Iterator[Path], h: hashlib._Hash, root: Path) -> None:
    for path in sorted(paths):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")


@functools.lru_cache(maxsize=1)
def inputs_digest() -> str:
    """sha256 of what makes the data besides the recipe: the code, the photos and the pixel-moving packages."""
    h = hashlib.sha256()
    repo = Path(__file__).resolve().parents[1]
    for src in _CODE:
        _digest_files(src.rglob("*.py") if src.is_dir() else iter([src]), h, repo)
    _digest_files((p for p in BUNDLED.rglob("*") if p.is_file()), h, BUNDLED)
    for name in sorted(PACKAGE_PHOTOS):
        path = photo_path(name)
        h.update(name.encode() + b"\0" + path.read_bytes())
    for package in _PACKAGES:
        try:
            h.update(f"{package}=={metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{package} absent".encode())
    return h.hexdigest()


def content_key(recipe: Stage2Recipe, input_size: int) -> str:
    """The cache key of every chunk made with this recipe and input size: the generator version, the stage-2
    recipe (fill, soft edge, relight, quality bounds), and :func:`inputs_digest`."""
    text = json.dumps(
        {
            "v": GENERATOR_VERSION,
            "recipe": recipe.model_dump(mode="json"),
            "input_size": input_size,
            "inputs": inputs_digest(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _chunk_path(cache: Path, job: Job) -> Path:
    kind, split, a, b = job
    return cache / split / f"{kind}-{a}-{b}.npz"


def _load(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as z:
        return Arrays(*(z[f] for f in Arrays.FIELDS))


def _save(path: Path, arrays: Arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # concurrent builders never share a temporary
    np.savez(tmp, **{f: getattr(arrays, f) for f in Arrays.FIELDS})
    tmp.rename(path)


def build_split(
    split: str,
    synthetic: int,
    composite: int,
    real_views: int,
    input_size: int,
    recipe: Stage2Recipe,
    workers: int = 1,
    cache_dir: Path | None = None,
) -> Arrays:
    """One split (``train``, ``calibration``, ``test`` or ``unseen``), made chunk by chunk by ``workers``
    processes; chunks already in ``cache_dir`` under this recipe's :func:`content_key` are read, not made."""
    todo = jobs(split, synthetic, composite, real_views)
    cache = None if cache_dir is None else Path(cache_dir) / content_key(recipe, input_size)
    done: dict[Job, Arrays] = {}
    if cache is not None:
        done = {j: _load(_chunk_path(cache, j)) for j in todo if _chunk_path(cache, j).exists()}
    missing = [j for j in todo if j not in done]
    recipe_json = recipe.model_dump_json()

    def keep(job: Job, arrays: Arrays) -> None:
        done[job] = arrays
        if cache is not None:  # at once: a killed build keeps every finished chunk
            _save(_chunk_path(cache, job), arrays)

    if workers > 1 and len(missing) > 1:
        with ProcessPoolExecutor(min(workers, len(missing))) as pool:
            futures = {pool.submit(run_job, j, input_size, recipe_json): j for j in missing}
            for future in as_completed(futures):
                keep(futures[future], future.result())
    else:
        for j in missing:
            keep(j, run_job(j, input_size, recipe_json))
    return Arrays.concat([done[j] for j in todo], input_size)
