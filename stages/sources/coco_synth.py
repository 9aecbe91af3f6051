"""Write small datasets in the real COCO / SOBA formats: image files plus an annotation JSON.

Tests and the ingest benchmark need annotation files with the real structure (polygons, compressed and
uncompressed RLE, ``iscrowd``, categories, SOBA's object–shadow association) and photos whose pixels
match them. Scenes are deterministic from ``(seed, index)``. The JSON is written element by element, so
a benchmark file of 100K instances never exists as Python objects in the writer either.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
from pycocotools import mask as mask_utils

COCO_CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
                   {"id": 3, "name": "car", "supercategory": "vehicle"},
                   {"id": 18, "name": "dog", "supercategory": "animal"}]
SOBA_CATEGORIES = [{"id": 1, "name": "object", "supercategory": "object"},
                   {"id": 2, "name": "shadow", "supercategory": "shadow"}]
ENCODINGS = ("polygon", "rle", "rle_counts")


@dataclass
class SceneObject:
    category_id: int
    mask: np.ndarray  # bool
    shadow: np.ndarray | None  # bool, SOBA only


def render(seed: int, index: int, width: int, height: int, n_objects: int, shadows: bool) -> tuple[np.ndarray, list[SceneObject]]:
    """A textured ground with ``n_objects`` coloured ellipses/boxes laid out on a grid (no overlaps)."""
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(90, 200, 3).astype(np.float32)
    ground = base + 25 * np.sin(xx / rng.uniform(6, 20))[..., None] + rng.normal(0, 6, (height, width, 1))
    image = np.clip(ground, 0, 255).astype(np.uint8)
    cols = int(np.ceil(np.sqrt(n_objects)))
    rows = int(np.ceil(n_objects / cols))
    cw, ch = width // cols, height // rows
    objects = []
    for k in range(n_objects):
        cx, cy = (k % cols) * cw + cw // 2, (k // cols) * ch + ch // 2
        ax, ay = max(3, int(cw * rng.uniform(0.15, 0.3))), max(3, int(ch * rng.uniform(0.15, 0.3)))
        mask = np.zeros((height, width), np.uint8)
        if rng.random() < 0.5:
            cv2.ellipse(mask, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            cv2.rectangle(mask, (cx - ax, cy - ay), (cx + ax, cy + ay), 1, -1)
        shadow = None
        if shadows:
            sh = np.zeros((height, width), np.uint8)
            cv2.ellipse(sh, (cx + ax, cy + ay), (ax, max(2, ay // 3)), 20.0, 0, 360, 1, -1)
            shadow = sh.astype(bool) & ~mask.astype(bool)
            image[shadow] = (image[shadow] * 0.45).astype(np.uint8)
        image[mask.astype(bool)] = rng.integers(0, 255, 3, dtype=np.uint8)
        cat = SOBA_CATEGORIES[0]["id"] if shadows else COCO_CATEGORIES[k % len(COCO_CATEGORIES)]["id"]
        objects.append(SceneObject(cat, mask.astype(bool), shadow))
    return image, objects


def encode(mask: np.ndarray, encoding: str) -> Any:
    """A bool mask as a COCO segmentation: polygons, compressed RLE (string counts) or uncompressed RLE."""
    h, w = mask.shape
    if encoding == "polygon":
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        # pixel centres → COCO's continuous coordinates (a pixel spans [x, x+1])
        return [(c.reshape(-1, 2).astype(np.float64) + 0.5).round(2).ravel().tolist() for c in contours if len(c) >= 3]
    if encoding == "rle":
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    if encoding == "rle_counts":
        flat = mask.astype(np.uint8).ravel(order="F")
        change = np.flatnonzero(np.diff(flat)) + 1
        bounds = np.concatenate([[0], change, [flat.size]])
        runs = np.diff(bounds).tolist()
        if flat[0] == 1:
            runs = [0] + runs
        return {"size": [h, w], "counts": runs}
    raise ValueError(f"unknown encoding {encoding!r}")


def decoded(segm: Any, h: int, w: int) -> np.ndarray:
    """What pycocotools makes of ``segm``: the reference a reader must reproduce."""
    if isinstance(segm, list):
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segm, h, w))).astype(bool)
    if isinstance(segm["counts"], list):
        return mask_utils.decode(mask_utils.frPyObjects(segm, h, w)).astype(bool)
    return mask_utils.decode({"size": segm["size"], "counts": segm["counts"].encode()}).astype(bool)


class _ArrayWriter:
    """Writes ``"name": [ ... ]`` one element at a time."""

    def __init__(self, f: TextIO, name: str, first: bool):
        self.f, self.n = f, 0
        f.write(("" if first else ",\n") + json.dumps(name) + ": [\n")

    def add(self, item: Any) -> None:
        self.add_raw(json.dumps(item, separators=(",", ":")))

    def add_raw(self, text: str) -> None:
        self.f.write((",\n" if self.n else "") + text)
        self.n += 1

    def close(self) -> None:
        self.f.write("\n]")


@functools.lru_cache(maxsize=1024)
def scene_records(seed: int, index: int, width: int, height: int, n_objects: int, soba: bool) -> tuple[str, ...]:
    """The annotation records of one scene as JSON text, ids left as placeholders (cached: a benchmark
    file repeats a small pool of scenes). Encodings rotate so that every kind appears."""
    _, objects = render(seed, index, width, height, n_objects, soba)
    out = []
    for k, obj in enumerate(objects):
        enc = ENCODINGS[(index + k) % len(ENCODINGS)]
        # as in COCO, a crowd region (the last object of every third COCO scene) is uncompressed RLE
        crowd = not soba and index % 3 == 2 and k == len(objects) - 1
        if crowd:
            enc = "rle_counts"
        x, y, w, h = cv2.boundingRect(obj.mask.astype(np.uint8))
        ann = {"category_id": obj.category_id, "iscrowd": int(crowd), "area": int(obj.mask.sum()),
               "bbox": [x, y, w, h], "segmentation": encode(obj.mask, enc)}
        if soba:
            ann["association"] = k + 1
        out.append(ann)
        if soba and obj.shadow is not None and obj.shadow.any():
            sx, sy, sw, sh = cv2.boundingRect(obj.shadow.astype(np.uint8))
            out.append({"category_id": SOBA_CATEGORIES[1]["id"], "iscrowd": 0, "area": int(obj.shadow.sum()),
                        "bbox": [sx, sy, sw, sh], "association": k + 1,
                        "segmentation": encode(obj.shadow, "polygon" if enc == "polygon" else "rle")})
    return tuple(json.dumps(a, separators=(",", ":")) for a in out)


def write_dataset(root: Path, n_images: int, objects_per_image: int = 3, size: tuple[int, int] = (160, 120),
                  seed: int = 0, soba: bool = False, distinct_files: int | None = None,
                  split: str = "val2017") -> Path:
    """Write ``root/{split}/*.jpg|png`` and ``root/annotations/instances_{split}.json``; returns the JSON path.

    ``distinct_files`` caps how many image files are rendered (entry ``i`` shows scene ``i % distinct_files``),
    which keeps a benchmark's file writing short while its annotation file stays full size.
    """
    width, height = size
    images_dir, ann_dir = root / split, root / "annotations"
    images_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    pool = distinct_files or n_images

    def name(i: int) -> str:
        return f"{i % pool:012d}." + ("png" if (i % pool) % 2 else "jpg")

    for i in range(min(pool, n_images)):
        image, _ = render(seed, i, width, height, objects_per_image, soba)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if name(i).endswith(".jpg") else []
        cv2.imwrite(str(images_dir / name(i)), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    path = ann_dir / f"instances_{split}.json"
    with open(path, "w") as f:
        f.write('{"info": {"description": "synthetic COCO-format fixture"}, "licenses": []')
        arr = _ArrayWriter(f, "images", first=False)
        for i in range(n_images):
            arr.add({"id": i + 1, "file_name": name(i), "width": width, "height": height, "license": 0})
        arr.close()
        arr = _ArrayWriter(f, "annotations", first=False)
        next_id = 1
        for i in range(n_images):
            for record in scene_records(seed, i % pool, width, height, objects_per_image, soba):
                arr.add_raw(f'{{"id":{next_id},"image_id":{i + 1},{record[1:]}')
                next_id += 1
        arr.close()
        arr = _ArrayWriter(f, "categories", first=False)
        for cat in SOBA_CATEGORIES if soba else COCO_CATEGORIES:
            arr.add(cat)
        arr.close()
        if soba:
            f.write(',\n"association": [{"id": 1, "name": "object-shadow", "supercategory": "association"}]')
        f.write("}\n")
    return path
