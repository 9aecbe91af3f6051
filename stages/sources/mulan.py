"""MuLAn (Tudosiu et al., CVPR 2024): real photos decomposed into an inpainted background and RGBA instance layers.

MuLAn ships annotations only (CC BY-NC-SA 4.0); the pixels come from the base dataset. One pickle per photo,
zlib-compressed as ``<id>.p.zl``, holding (field names as the dataset card lists them)::

    captioning   {llava, blip2, clip}: the captioning models' details
    background   {llava, blip2, original_image_mask, inpainted_delta}
    image        {llava, blip2}: captions of the photo
    instances    per instance {blip2, original_image_mask, inpainted_delta, instance_alpha}
                 (and ``instance_mask``, which the card's reconstruction script multiplies in when present)

A layer's RGB is ``photo * original_image_mask + inpainted_delta`` (the photo's own pixels where the layer is
visible, the additive inpainted content where it was hidden); an instance with an ``instance_mask`` takes the photo
times both masks. An instance's alpha is ``instance_alpha``. Masks and alphas may be arrays or PIL images (the
script hands ``instance_alpha`` to ``putalpha``). Instances are stacked in the order they are stored, the first
nearest the background.

The pickles are read only by ``load_restricted`` in ``curation/core/safe_pickle.py``: numpy arrays, PIL images as
pixel data and builtin data; any other global is an ``unsafe_pickle`` reject. Each annotation is paired with its photo:
with ``annotations:`` by its file name (``<id>.p.zl``: COCO 2017 ``{id:012d}.jpg`` in ``images``, or its
``train2017`` / ``val2017``; LAION: the img2dataset file of row ``id``), or with ``pairs:`` from a CSV of
``image,annotation`` paths.

Each instance becomes a row: the photo, its visible mask, and as the clean plate the background with every other
instance layered back on it (``clean_kind: mulan``), so that stage 2 takes the real decomposition instead of a
fill. MuLAn's captions travel in the row's annotation as ``source_captions``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from curation.core.config.sources import MulanSourceConfig
from curation.core.imageio import ImageError, read_image, within
from curation.core.morphology import bbox_of
from curation.core.reasons import Reason
from curation.core.safe_pickle import PickleRefused, load_restricted
from curation.core.schema import Row, new_row
from stages.sources.base import Source, Unit, bad_unit, fit_size, make_key, path_id, resize_image, resize_mask
from stages.sources.coco_json import AnnotationError

#: annotation file names the folder listing picks up
SUFFIXES = (".p.zl", ".p", ".pkl", ".pickle")
#: the instance fields a layer needs, as the card names them
LAYER_FIELDS = ("original_image_mask", "inpainted_delta")


def annotation_id(path: Path) -> str:
    """``000000123456.p.zl`` → ``000000123456``: the base photo's id."""
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def coco_names(image_id: str) -> list[str]:
    """COCO 2017 file names for an id (``123456`` and ``000000123456`` both name ``000000123456.jpg``)."""
    return [f"{int(image_id):012d}.jpg"] if image_id.isdigit() else [f"{image_id}.jpg"]


def laion_relpath(image_id: str, per_shard: int) -> str | None:
    """img2dataset's file for input row ``image_id``: ``{shard:05d}/{shard:05d}{index:0Nd}.jpg``."""
    if not image_id.isdigit():
        return None
    shard, index = divmod(int(image_id), per_shard)
    digits = max(1, math.ceil(math.log10(per_shard)))
    return f"{shard:05d}/{shard:05d}{index:0{digits}d}.jpg"


def as_weight(array: Any, what: str, shape: tuple[int, int]) -> np.ndarray:
    """A mask or alpha (bool, 0..1 float, 0..255 integer; HxW or HxWx1/3) as float32 HxWx1 in 0..1."""
    a = _array(array, what)
    if a.ndim == 3 and a.shape[2] in (1, 3):
        a = a[..., :1]
    elif a.ndim == 2:
        a = a[..., None]
    else:
        raise AnnotationError(f"{what} has shape {a.shape}, not HxW")
    _check_size(a, what, shape)
    w = a.astype(np.float32)
    if a.dtype.kind in "iu" and a.size and a.max() > 1:
        w /= 255.0
    return np.clip(w, 0.0, 1.0)


def as_delta(array: Any, what: str, shape: tuple[int, int]) -> np.ndarray:
    a = _array(array, what)
    if a.ndim != 3 or a.shape[2] != 3:
        raise AnnotationError(f"{what} has shape {a.shape}, not HxWx3")
    _check_size(a, what, shape)
    return a.astype(np.float32)


def _array(value: Any, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise AnnotationError(f"{what} is a {type(value).__name__}, not a numeric array")
    return value


def _check_size(a: np.ndarray, what: str, shape: tuple[int, int]) -> None:
    if a.shape[:2] != shape:
        raise ImageError(
            Reason.SIZE_MISMATCH, f"{what} is {a.shape[1]}x{a.shape[0]} but the photo is {shape[1]}x{shape[0]}"
        )


def _field(record: Any, key: str, where: str) -> Any:
    if not isinstance(record, dict) or key not in record:
        raise AnnotationError(f"{where} has no {key!r}")
    return record[key]


def _captions(record: Any, keys: tuple[str, ...] = ("llava", "blip2")) -> dict[str, str]:
    if not isinstance(record, dict):
        return {}
    return {k: record[k].strip() for k in keys if isinstance(record.get(k), str) and record[k].strip()}


def instance_records(annotation: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(instance id, record) in stacking order: a dict keeps its keys, a list is numbered."""
    instances = _field(annotation, "instances", "the annotation")
    items = (
        list(instances.items())
        if isinstance(instances, dict)
        else list(enumerate(instances))
        if isinstance(instances, (list, tuple))
        else None
    )
    if items is None:
        raise AnnotationError(f"instances is a {type(instances).__name__}, not a dict or list")
    out: list[tuple[str, dict[str, Any]]] = []
    for key, rec in items:
        if not isinstance(rec, dict):
            raise AnnotationError(f"instance {key!r} is a {type(rec).__name__}, not a dict")
        if any(str(key) == k for k, _ in out):  # 1 and "1" would give two rows one key
            raise AnnotationError(f"instance id {key!r} is repeated")
        out.append((str(key), rec))
    return out


Layer = tuple[str, dict[str, Any], np.ndarray, np.ndarray]  # id, record, RGB uint8 HxWx3, alpha uint8 HxWx1


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def shown(record: dict[str, Any], where: str, shape: tuple[int, int]) -> np.ndarray:
    """Where a layer takes the photo's own pixels: ``original_image_mask`` (times ``instance_mask`` if given)."""
    weight = as_weight(record["original_image_mask"], f"{where}.original_image_mask", shape)
    if record.get("instance_mask") is not None:
        weight = weight * as_weight(record["instance_mask"], f"{where}.instance_mask", shape)
    return weight


def layers_of(photo: np.ndarray, annotation: Any) -> tuple[np.ndarray, list[Layer]]:
    """The background's RGB and each instance's (id, record, RGB, alpha), uint8 in the photo's frame (a layer of a
    large photo is held in a quarter of the memory float32 would take)."""
    if not isinstance(annotation, dict):
        raise AnnotationError(f"the annotation is a {type(annotation).__name__}, not a dict")
    shape = photo.shape[:2]

    def layer_rgb(record: Any, where: str) -> np.ndarray:
        for f in LAYER_FIELDS:
            _field(record, f, where)
        weight = shown(record, where, shape)
        return _to_uint8(photo * weight + as_delta(record["inpainted_delta"], f"{where}.inpainted_delta", shape))

    background = layer_rgb(_field(annotation, "background", "the annotation"), "background")
    layers = []
    for key, rec in instance_records(annotation):
        where = f"instances[{key}]"
        rgb = layer_rgb(rec, where)
        alpha = as_weight(_field(rec, "instance_alpha", where), f"{where}.instance_alpha", shape)
        layers.append((key, rec, rgb, _to_uint8(alpha * 255)))
    return background, layers


def clean_plates(
    background: np.ndarray, layers: list[Layer], finish: Callable[[np.ndarray], np.ndarray] = lambda plate: plate
) -> list[np.ndarray]:
    """For each instance, the scene without it: the background with every other layer over it, in order;
    ``finish`` (a resize) is applied to each plate as soon as it is made.

    Linear in the number of layers: what lies below instance k (the background and the layers before it) is
    composited forwards once, and what lies above it (the later layers, premultiplied) backwards once, so only one
    full-size float image is alive at a time.
    """
    below = [background]
    for _, _, rgb, alpha in layers[:-1]:
        a = alpha.astype(np.float32) / 255
        below.append(_to_uint8(rgb * a + below[-1] * (1 - a)))
    plates: list[np.ndarray] = [background] * len(layers)
    color = np.zeros(background.shape, np.float32)
    cover = np.zeros(background.shape[:2] + (1,), np.float32)
    for k in reversed(range(len(layers))):
        plates[k] = finish(_to_uint8(color + below.pop() * (1 - cover)))
        _, _, rgb, alpha = layers[k]
        a = alpha.astype(np.float32) / 255 * (1 - cover)
        color += rgb * a
        cover += a
    return plates


class MulanSource(Source):
    def __init__(self, cfg: MulanSourceConfig):
        self.cfg = cfg
        self.name = cfg.name
        self.images = [p.expanduser() for p in cfg.images]

    # -- driver side ---------------------------------------------------------------------------------
    def units(self) -> Iterator[Unit]:
        if self.cfg.pairs is not None:
            yield from self._pair_units(self.cfg.pairs.expanduser())
            return
        root = self.cfg.annotations.expanduser() if self.cfg.annotations else Path()
        if not root.is_dir():
            raise FileNotFoundError(f"mulan source {self.name!r}: annotations {root} is not a folder")
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES)):
            yield Unit(unit_id=annotation_id(path), ref={"annotation": str(path), "root": str(root)})

    def _pair_units(self, csv_path: Path) -> Iterator[Unit]:
        with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if "image" not in header or "annotation" not in header:
                raise ValueError(f"{csv_path}: header {header} must name image and annotation")
            for n, fields in enumerate(reader, 2):
                if not any(v.strip() for v in fields):
                    continue
                if len(fields) != len(header):
                    yield bad_unit(
                        f"line_{n}",
                        f"{csv_path.name} line {n} has {len(fields)} fields, expected {len(header)}",
                        fields,
                    )
                    continue
                rec = dict(zip(header, (v.strip() for v in fields), strict=True))
                if not rec.get("image") or not rec.get("annotation"):
                    yield bad_unit(f"line_{n}", f"{csv_path.name} line {n} needs an image and an annotation", fields)
                    continue
                ann = csv_path.parent / rec["annotation"]
                yield Unit(
                    unit_id=path_id(rec["annotation"]),
                    ref={
                        "annotation": str(ann),
                        "image": str(csv_path.parent / rec["image"]),
                        "root": str(csv_path.parent),
                    },
                )

    # -- worker side ---------------------------------------------------------------------------------
    def base_image(self, unit: Unit) -> Path:
        """The photo an annotation decomposes; a missing one is ``missing_file``."""
        if "image" in unit.ref:  # a CSV's photo: under the CSV's folder or one of the images folders
            for root in self.images:
                if Path(unit.ref["image"]).resolve().is_relative_to(root.resolve()):
                    return within(root, unit.ref["image"])
            return within(unit.ref["root"], unit.ref["image"])
        image_id = unit.unit_id
        if self.cfg.base == "laion":
            rel = laion_relpath(image_id, self.cfg.laion_samples_per_shard)
            tried = [(folder, folder / rel) for folder in self.images] if rel else []
        else:
            tried = [
                (folder, folder / sub / name)
                for folder in self.images
                for sub in ("", "train2017", "val2017")
                for name in coco_names(image_id)
            ]
        for folder, path in tried:
            if path.is_file():
                return within(folder, path)
        where = ", ".join(str(p) for _, p in tried[:3]) or f"no {self.cfg.base} file name for id {image_id!r}"
        raise ImageError(Reason.MISSING_FILE, f"no base photo for annotation {image_id} (looked for {where})")

    def load(self, unit: Unit, max_pixels: int) -> list[Row]:
        return self.load_scaled(unit, max_pixels, None)[0]

    def load_scaled(self, unit: Unit, max_pixels: int, max_side: int | None) -> tuple[list[Row], float]:
        ann_path = within(unit.ref["root"], unit.ref["annotation"])
        photo_path = self.base_image(unit)
        photo = read_image(photo_path, max_pixels)
        try:  # a photo's layers hold at most 3 values per pixel: a larger array is not MuLAn's
            annotation = load_restricted(ann_path, max_elements=3 * max_pixels, max_bytes=self.cfg.max_annotation_bytes)
        except PickleRefused as err:
            raise ImageError(err.reason, f"{ann_path.name}: {err.detail}") from None
        background, layers = layers_of(photo, annotation)
        th, tw, scale = fit_size(photo.shape[0], photo.shape[1], max_side)
        plates = clean_plates(background, layers, lambda plate: resize_image(plate, th, tw))
        del background
        composite = resize_image(photo, th, tw)
        captions = {"image": _captions(annotation.get("image")), "background": _captions(annotation.get("background"))}
        rows = []
        for (inst_id, rec, _, _), plate in zip(layers, plates, strict=True):
            visible = shown(rec, f"instances[{inst_id}]", photo.shape[:2])[..., 0] > 0.5
            mask = resize_mask(visible, th, tw)
            label = _captions(rec, ("blip2",)).get("blip2", "object")
            ann = {
                "image_id": unit.unit_id,
                "instance_id": inst_id,
                "category": label,
                "clean_kind": "mulan",
                "bbox": list(bbox_of(mask) or (0, 0, 0, 0)),
                "scale": round(scale, 5),
                "source_captions": {**captions, "instance": _captions(rec, ("blip2",))},
            }
            rows.append(
                new_row(
                    key=make_key(self.name, unit.unit_id, inst_id),
                    source=self.name,
                    source_ref=f"{photo_path}#{ann_path.name}:{inst_id}",
                    label=label,
                    composite=composite,
                    clean=plate,
                    ann_mask=mask,
                    ann=ann,
                )
            )
        return rows, scale
