"""A corpus of bad inputs through the real ingest path: each ends as a rejected row with its reason, none crashes.

The units go through the same parquet work list the pipeline uses, and duplicates through the
cluster-wide registry actor.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curation.core.imageio import ImageError, decode_image
from curation.core.schema import IMAGE_COLUMNS, OK, REJECTED, get_image, rows_to_table, table_rows
from curation.worklist import write_units
from devdata.coco_synth import encode, write_dataset
from stages.dedupe import DedupeRegistry, claimed_digests
from stages.ingest import Ingest
from tests.conftest import small_config


def png_bytes(array: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG", **save)
    return buf.getvalue()


def png_header_only(w: int, h: int) -> bytes:
    """A valid PNG header declaring w×h pixels with almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=90)
    return buf.getvalue()


#: unit key → the reason its row(s) must carry
EXPECTED = {
    "coco-2": "empty_file",
    "coco-3": "truncated",
    "coco-4": "not_image",
    "coco-5": "decode_error",
    "coco-6": "too_many_pixels",
    "coco-7": "missing_file",
    "coco-8": "not_image",
    "coco-9": "size_mismatch",
    "coco-10": "no_instances",
    "coco-12": "duplicate_image",
    "coco-13": "truncated",
    "coco-images_13": "bad_manifest_row",
    "coco-14": "no_instances",
    "coco-14_dup15": "bad_manifest_row",
    "coco-annotation_104": "bad_manifest_row",
    "pairs-p1": "size_mismatch",
    "pairs-line_3": "bad_manifest_row",
    "pairs-p3": "missing_file",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    ann_path = write_dataset(root / "coco", n_images=1, objects_per_image=3, size=(160, 120), seed=2)
    images = root / "coco" / "val2017"
    good_name = "000000000000.jpg"
    good = images / good_name
    data = json.loads(ann_path.read_text())
    rgb = np.asarray(Image.open(good).convert("RGB"))
    files = {
        "empty.jpg": b"",
        "trunc.jpg": jpeg_bytes(rgb)[:800],
        "text.jpg": b"this is not a photo\n" * 20,
        "corrupt.png": png_bytes(rgb)[:40] + bytes(range(256)) * 8,
        "bomb.png": png_header_only(100_000, 100_000),
        "wrongsize.png": png_bytes(rgb[:60, :80]),
        "noanns.png": png_bytes(rgb[::-1].copy()),
        "twoanns.png": png_bytes(rgb[:, ::-1].copy()),
        "trunc.png": png_bytes(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8))[:5000],
    }
    for name, payload in files.items():
        (images / name).write_bytes(payload)
    (images / "dir.jpg").mkdir()
    shutil.copy(good, images / "copy_of_good.jpg")
    names = [
        "empty.jpg",
        "trunc.jpg",
        "text.jpg",
        "corrupt.png",
        "bomb.png",
        "missing.jpg",
        "dir.jpg",
        "wrongsize.png",
        "noanns.png",
        "twoanns.png",
        "copy_of_good.jpg",
        "trunc.png",
    ]
    for i, name in enumerate(names, start=2):
        data["images"].append({"id": i, "file_name": name, "width": 160, "height": 120})
    data["images"].append({"id": 14, "width": 160, "height": 120})  # no file_name
    data["images"].append({"id": 14, "file_name": "noanns.png", "width": 160, "height": 120})
    data["images"].append({"id": 14, "file_name": "noanns.png", "width": 160, "height": 120})  # id repeated
    m = np.zeros((120, 160), bool)
    m[40:80, 50:100] = True
    base = {"iscrowd": 0, "bbox": [50, 40, 50, 40], "category_id": 1}
    data["annotations"] += [
        {**base, "id": 101, "image_id": 11, "segmentation": encode(m, "polygon")},
        {**base, "id": 102, "image_id": 11, "segmentation": {"size": [120, 160], "counts": "%%%%"}},
        {**base, "id": 103, "image_id": 11, "segmentation": encode(m, "rle"), "category_id": 99},
        {**base, "id": 101, "image_id": 11, "segmentation": encode(m, "rle")},  # id repeated
        {**base, "id": 104, "image_id": 999, "segmentation": encode(m, "rle")},  # no such image
    ]
    # the duplicate carries the same annotations as the original
    data["annotations"] += [{**a, "id": 200 + k, "image_id": 12} for k, a in enumerate(data["annotations"][:3])]
    ann_path.write_text(json.dumps(data))

    pairs = root / "pairs"
    (pairs / "p1").mkdir(parents=True)
    (pairs / "p1" / "c.png").write_bytes(png_bytes(rgb))
    (pairs / "p1" / "b.png").write_bytes(png_bytes(rgb[:100, :100].copy()))
    (pairs / "m.csv").write_text(
        "id,composite,background\np1,p1/c.png,p1/b.png\nbroken,p1/c.png\np3,p1/gone.png,p1/b.png\n"
    )
    return root, ann_path


def _ingest(cfg, tmp_path) -> list[dict]:
    units = tmp_path / "units.parquet"
    n = write_units(cfg, units)
    table = pq.read_table(units)
    assert table.num_rows == n
    ingest = Ingest(cfg, dedupe=DedupeRegistry.remote())
    return table_rows(ingest(table))


def test_every_bad_input_is_a_rejected_row_with_its_reason(ray_session, corpus, tmp_path):
    root, ann_path = corpus
    cfg = small_config(
        tmp_path / "out",
        sources=[
            {"type": "coco", "name": "coco", "annotations": str(ann_path), "images": str(root / "coco" / "val2017")},
            {"type": "paired", "name": "pairs", "root": str(root / "pairs"), "manifest": "m.csv"},
        ],
    )
    rows = _ingest(cfg, tmp_path)
    assert {r["status"] for r in rows} <= {OK, REJECTED}
    by_key = {r["key"]: r for r in rows}
    for key, reason in EXPECTED.items():
        unit_rows = [r for k, r in by_key.items() if k == key or k.startswith(key + "-")]
        assert unit_rows, f"{key} produced no row"
        assert {r["reject_reason"] for r in unit_rows} == {reason}, (key, [r["reject_detail"] for r in unit_rows])
        assert all(r["reject_detail"] and r["reject_stage"] == "ingest" for r in unit_rows)
    # per instance: one good polygon, one corrupt RLE, one unknown category, one repeated id
    assert by_key["coco-11-101"]["status"] == OK
    assert by_key["coco-11-102"]["reject_reason"] == "bad_annotation"
    assert by_key["coco-11-103"]["reject_reason"] == "bad_annotation"
    assert by_key["coco-11-101_dup3"]["reject_reason"] == "bad_annotation"
    # the original of the duplicate is fine, its rows carry pixels, rejected rows carry none
    assert [by_key[f"coco-1-{i}"]["status"] for i in (1, 2, 3)] == [OK] * 3
    assert all(get_image(r, "composite") is None for r in rows if r["status"] == REJECTED)
    # ingested = accepted + rejected, and every unit is accounted for
    assert len(rows) == sum(r["status"] == OK for r in rows) + sum(r["status"] == REJECTED for r in rows)
    assert len(EXPECTED) + 2 == len(
        {r["key"].rsplit("-", 1)[0] if r["key"].count("-") == 2 else r["key"] for r in rows}
    )


def test_pixel_cap_comes_from_the_config(ray_session, corpus, tmp_path):
    root, ann_path = corpus
    cfg = small_config(
        tmp_path / "out",
        ingest={"max_pixels": 160 * 120 - 1},
        sources=[
            {"type": "coco", "name": "coco", "annotations": str(ann_path), "images": str(root / "coco" / "val2017")}
        ],
    )
    rows = _ingest(cfg, tmp_path)
    assert {r["key"]: r["reject_reason"] for r in rows}["coco-1"] == "too_many_pixels"


def test_folder_list_with_missing_and_undecodable_lines(ray_session, tmp_path):
    (tmp_path / "list.txt").write_bytes(b"missing.jpg\n\xff\xfe\x00bad\n")
    cfg = small_config(
        tmp_path / "out", sources=[{"type": "folder", "name": "web", "list_file": str(tmp_path / "list.txt")}]
    )
    reasons = sorted(r["reject_reason"] for r in _ingest(cfg, tmp_path))
    assert reasons == ["bad_manifest_row", "missing_file"]


def test_duplicate_claims_survive_a_resume(ray_session, corpus, tmp_path):
    """Segment 1 wrote some rows; segment 2 must neither accept a twin of them nor reject their unit's rest."""
    root, ann_path = corpus
    cfg = small_config(
        tmp_path / "out",
        sources=[
            {"type": "coco", "name": "coco", "annotations": str(ann_path), "images": str(root / "coco" / "val2017")}
        ],
    )
    first = _ingest(cfg, tmp_path)
    written = [r for r in first if r["key"] in ("coco-1-1", "coco-12-200")]  # as if one shard had completed
    pq.write_table(rows_to_table(written).drop_columns(list(IMAGE_COLUMNS)), tmp_path / "shard.parquet")
    seed = claimed_digests([str(tmp_path / "shard.parquet")])
    assert list(seed.values()) == ["coco-1"]  # the duplicate's row is no claim
    units = tmp_path / "units.parquet"
    write_units(cfg, units)
    resumed = Ingest(cfg, done_keys=frozenset(r["key"] for r in written), dedupe=DedupeRegistry.remote(seed)).run(
        table_rows(pq.read_table(units))
    )
    by_key = {r["key"]: r for r in resumed}
    assert "coco-1-1" not in by_key and by_key["coco-1-2"]["status"] == OK  # same unit: not its own duplicate
    assert by_key["coco-12-201"]["reject_reason"] == "duplicate_image"  # the twin stays rejected
    registry = DedupeRegistry.remote({"abc": "s-1"})
    assert ray_session.get(registry.claim.remote("def", "s-9")) == "s-9"
    assert ray_session.get(registry.claim.remote("def", "s-9")) == "s-9"  # a retried claim still wins


@pytest.mark.parametrize(
    "mode,array,expect",
    [
        ("L", np.full((8, 8), 77, np.uint8), (77, 77, 77)),
        ("I;16", np.full((8, 8), 257 * 200, np.uint16), (200, 200, 200)),
        ("RGBA", np.dstack([np.full((8, 8, 3), 100, np.uint8), np.full((8, 8), 0, np.uint8)]), (255, 255, 255)),
        ("LA", np.dstack([np.full((8, 8), 10, np.uint8), np.full((8, 8), 255, np.uint8)]), (10, 10, 10)),
    ],
)
def test_modes_are_converted_deliberately(mode, array, expect):
    data = png_bytes(array)
    assert Image.open(io.BytesIO(data)).mode == mode
    out = decode_image(data, 10**6)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    assert tuple(out[0, 0]) == expect


def test_palette_and_cmyk_become_rgb():
    pal = Image.new("P", (8, 8))
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.paste(1, (0, 0, 8, 8))
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    assert tuple(decode_image(buf.getvalue(), 10**6)[0, 0]) == (10, 200, 30)
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    buf = io.BytesIO()
    cmyk.save(buf, "JPEG", quality=100)
    r, g, b = decode_image(buf.getvalue(), 10**6)[4, 4]
    assert r > 200 and g < 40 and b < 40


def test_exif_orientation_is_applied():
    a = np.zeros((10, 20, 3), np.uint8)
    a[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90° counter-clockwise to display
    out = decode_image(png_bytes(a, exif=exif.tobytes()), 10**6)
    assert out.shape == (20, 10, 3) and out[-1, 0, 0] == 255


def test_unsupported_mode_is_a_reason_not_a_crash():
    buf = io.BytesIO()
    Image.new("LAB", (4, 4)).save(buf, "TIFF")
    with pytest.raises(ImageError) as err:
        decode_image(buf.getvalue(), 10**6)
    assert err.value.reason == "unsupported_mode"
