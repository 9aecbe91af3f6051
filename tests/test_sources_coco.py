"""COCO and SOBA adapters on fixture datasets written in the real formats (polygons, both RLE forms)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from curation.core.config.sources import CocoSourceConfig, SobaSourceConfig
from curation.core.imageio import orient_array
from curation.core.schema import get_image, get_json
from devdata.coco_synth import ENCODINGS, decoded, encode, write_dataset
from stages.sources.coco import CocoSource
from stages.sources.coco_json import AnnotationError, decode_segmentation, rle_string_counts
from stages.sources.soba import SobaSource

MAX_PX = 10**8


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    ann = write_dataset(root, n_images=6, objects_per_image=3, size=(160, 120), seed=1)
    return CocoSource(CocoSourceConfig(annotations=ann, images=root / "val2017")), ann


def test_units_group_annotations_per_image(coco):
    src, ann = coco
    data = json.loads(ann.read_text())
    units = list(src.units())
    assert [u.unit_id for u in units] == [str(im["id"]) for im in data["images"]]
    for u in units:
        want = [str(a["id"]) for a in data["annotations"] if a["image_id"] == int(u.unit_id)]
        assert [i["id"] for i in u.ref["instances"]] == want
        json.dumps(u.ref)  # the unit travels through the parquet work list as JSON


def test_masks_match_pycocotools_for_every_encoding(coco):
    src, ann = coco
    data = json.loads(ann.read_text())
    by_id = {str(a["id"]): a for a in data["annotations"]}
    kinds, crowds = set(), 0
    for unit in src.units():
        rows = src.load(unit, MAX_PX)
        assert len(rows) == 3
        for row in rows:
            a = by_id[get_json(row, "ann")["instance_id"]]
            assert get_json(row, "ann")["iscrowd"] == a["iscrowd"]
            crowds += a["iscrowd"]
            seg = a["segmentation"]
            kinds.add(
                "polygon" if isinstance(seg, list) else "rle_counts" if isinstance(seg["counts"], list) else "rle"
            )
            mask = get_image(row, "ann_mask")
            assert mask.dtype == bool and mask.shape == (120, 160)
            assert np.array_equal(mask, decoded(seg, 120, 160))
            assert get_image(row, "composite").shape == (120, 160, 3)
            assert row["label"] in ("person", "car", "dog")
    assert kinds == set(ENCODINGS) and crowds == 2


def test_keys_are_deterministic_unique_and_dot_free(coco):
    src, _ = coco
    keys = [r["key"] for u in src.units() for r in src.load(u, MAX_PX)]
    again = [r["key"] for u in src.units() for r in src.load(u, MAX_PX)]
    assert keys == again and len(set(keys)) == len(keys)
    assert all("." not in k and k.startswith("coco-") for k in keys)
    assert keys[0] == "coco-1-1"


def test_load_scaled_shrinks_photo_and_masks_together(coco):
    src, _ = coco
    unit = next(iter(src.units()))
    rows, scale = src.load_scaled(unit, MAX_PX, 80)
    assert scale == pytest.approx(0.5)
    for row in rows:
        assert get_image(row, "composite").shape == (60, 80, 3)
        mask = get_image(row, "ann_mask")
        assert mask.shape == (60, 80) and mask.any()
        x, y, w, h = get_json(row, "ann")["bbox"]
        ys, xs = np.nonzero(mask)
        assert (x, y) == (xs.min(), ys.min())


def test_category_filter_keeps_other_instances_as_occluders(coco):
    src, ann = coco
    only_dogs = CocoSource(CocoSourceConfig(annotations=ann, images=src.images, categories=["dog"]))
    rows = [r for u in only_dogs.units() for r in only_dogs.load(u, MAX_PX)]
    assert len(rows) == 18  # every instance still loads (it may occlude a dog) ...
    flagged = {r["label"] for r in rows if get_json(r, "ann").get("candidate") is False}
    assert flagged == {"person", "car"}  # ... but only dogs are candidates


def test_exif_rotated_photo_with_annotations_on_stored_pixels(tmp_path):
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[5:15, 10:30] = 255  # the object, in the stored (unrotated) frame
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    (tmp_path / "img").mkdir()
    Image.fromarray(stored).save(tmp_path / "img" / "a.png", exif=exif.tobytes())
    m = np.zeros((40, 60), bool)
    m[5:15, 10:30] = True
    data = {
        "images": [{"id": 7, "file_name": "a.png", "width": 60, "height": 40}],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [10, 5, 20, 10],
                "segmentation": encode(m, "rle"),
            }
        ],
        "categories": [{"id": 1, "name": "box"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    src = CocoSource(CocoSourceConfig(annotations=tmp_path / "ann.json", images=tmp_path / "img"))
    [row] = src.load(next(iter(src.units())), MAX_PX)
    comp, mask = get_image(row, "composite"), get_image(row, "ann_mask")
    assert comp.shape == (60, 40, 3)  # displayed upright
    assert np.array_equal(mask, orient_array(m, 6))
    assert (comp[mask] == 255).all() and (comp[~mask] == 0).all()  # mask and pixels stay aligned


def test_decode_segmentation_rejects_malformed_geometry():
    h, w = 20, 30
    good = np.zeros((h, w), np.uint8)
    good[3:9, 4:12] = 1
    rle = mask_utils.encode(np.asfortranarray(good))["counts"].decode()
    assert rle_string_counts(rle.encode())[:2] == [3 + 4 * h, 6]
    for bad in (
        [[1.0, 2.0, 3.0, 4.0]],  # fewer than 3 points
        [[0, 0, 10, "x", 5, 5]],  # not numbers
        [[0, 0, 1e12, 0, 5, 5]],  # absurd coordinates
        {"size": [h, w], "counts": rle[:-3]},  # truncated compressed RLE
        {"size": [h, w], "counts": "\x7f\x7f"},  # not RLE characters
        {"size": [h, w], "counts": [5, 10]},  # runs do not cover the image
        {"size": [h + 1, w], "counts": rle},  # wrong size
        {"counts": rle},  # no size
        "polygon",
        None,
    ):
        with pytest.raises(AnnotationError):
            decode_segmentation(bad, h, w)


def test_soba_object_rows_carry_their_associated_shadow(tmp_path):
    ann = write_dataset(tmp_path, n_images=3, objects_per_image=2, size=(160, 120), seed=4, soba=True)
    data = json.loads(ann.read_text())
    src = SobaSource(SobaSourceConfig(annotations=ann, images=tmp_path / "val2017"))
    shadows = {(a["image_id"], a["association"]): a for a in data["annotations"] if a["category_id"] == 2}
    objects = {str(a["id"]): a for a in data["annotations"] if a["category_id"] == 1}
    n = 0
    for unit in src.units():
        for row in src.load(unit, MAX_PX):
            ann_ = get_json(row, "ann")
            obj = objects[ann_["instance_id"]]  # only objects become rows
            shadow = shadows[(obj["image_id"], obj["association"])]
            effect = get_image(row, "ann_effect")
            assert ann_["effect_annotated"] and np.array_equal(effect, decoded(shadow["segmentation"], 120, 160))
            assert not (effect & get_image(row, "ann_mask")).any()
            # the shadow really is darker ground in the photo: that is what stage 2 will lift out
            comp = get_image(row, "composite").astype(float)
            ring = np.zeros_like(effect)
            ys, xs = np.nonzero(effect)
            ring[max(0, ys.min() - 6) : ys.max() + 7, max(0, xs.min() - 6) : xs.max() + 7] = True
            ring &= ~effect & ~get_image(row, "ann_mask")
            assert comp[effect].mean() < 0.8 * comp[ring].mean()
            n += 1
    assert n == 6


def test_soba_object_without_shadow_has_no_effect(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(buf, "PNG")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(buf.getvalue())
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "association": 1,
                "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]],
            },
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[20, 5, 30, 5, 30, 15, 20, 15]]},
            {"id": 3, "image_id": 1, "category_id": 2, "association": 1, "segmentation": [[15, 15, 20, 15, 20, 20]]},
        ],
        "categories": [{"id": 1, "name": "Object"}, {"id": 2, "name": "Shadow"}],
    }
    (tmp_path / "soba.json").write_text(json.dumps(data))
    src = SobaSource(SobaSourceConfig(annotations=tmp_path / "soba.json", images=tmp_path / "img"))
    rows = src.load(next(iter(src.units())), MAX_PX)
    assert [r["key"] for r in rows] == ["soba-1-1", "soba-1-2"]
    assert get_image(rows[0], "ann_effect").any()
    assert get_image(rows[1], "ann_effect") is None and not get_json(rows[1], "ann")["effect_annotated"]
