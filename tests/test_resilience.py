"""Faults found by reading the code (issue 12), each shown on the real stage or ingest code, without Ray.

- a batch that fails is retried row by row on fresh copies, so rows the failed attempt finished are not lost;
- a resumed unit still counts its already-written instances as occluders of the rest;
- two ids that sanitise alike (``a.b``, ``a_b``) get two keys; a repeated id is rejected as ``duplicate_key``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from curation.core.reasons import Reason, StageName
from curation.core.schema import OK, get_image, new_row, reject, set_image, table_rows, update_meta
from curation.core.stage import RowStage
from curation.worklist import write_units
from stages.ingest import Ingest
from stages.sources.base import make_key
from tests.conftest import small_config


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


class Consuming(RowStage):
    """Like the masks stage: reads its input, empties it (consumed), writes its output; one row always raises."""

    name = StageName.MASKS
    reads = ("ann_mask",)
    writes = ("mask",)

    def process(self, rows):
        for row in rows:
            mask = get_image(row, "ann_mask")
            row["ann_mask"] = None
            update_meta(row, self.name, {"attempted": True})
            if mask is None:
                reject(row, self.name, Reason.EMPTY_MASK, "no mask")
            elif row["key"] == "bad":
                raise ValueError("this row always fails")
            else:
                set_image(row, "mask", mask)


def test_a_failed_batch_is_retried_on_fresh_copies_so_finished_rows_are_kept():
    mask = np.ones((4, 4), bool)
    rows = [new_row(key=k, source="t", source_ref="t", ann_mask=mask) for k in ("good1", "bad", "good2")]
    Consuming(small_config(Path("/tmp/unused"))).run(rows)
    by_key = {r["key"]: r for r in rows}
    assert by_key["good1"]["status"] == OK and get_image(by_key["good1"], "mask") is not None
    assert by_key["good2"]["status"] == OK and get_image(by_key["good2"], "mask") is not None
    assert by_key["bad"]["reject_reason"] == Reason.STAGE_ERROR.value
    assert "always fails" in by_key["bad"]["reject_detail"]


def _two_touching_objects(root: Path) -> Path:
    """A COCO file: one 64x64 photo with two squares that touch, so each occludes the other."""
    image = np.full((64, 64, 3), 120, np.uint8)
    image[10:30, 10:30] = (200, 30, 30)
    image[10:30, 30:50] = (30, 30, 200)
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(_png(image))

    def square(x0, y0, x1, y1):
        return [[x0, y0, x1, y0, x1, y1, x0, y1]]

    ann = {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
        "categories": [{"id": 1, "name": "box"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [10, 10, 20, 20],
                "segmentation": square(10, 10, 30, 30),
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [30, 10, 20, 20],
                "segmentation": square(30, 10, 50, 30),
            },
        ],
    }
    (root / "ann.json").write_text(json.dumps(ann))
    return root / "ann.json"


def _ingest(cfg, tmp_path: Path, **kwargs) -> list[dict]:
    units = tmp_path / "units.parquet"
    write_units(cfg, units)
    return Ingest(cfg, **kwargs).run(table_rows(pq.read_table(units)))


def test_a_written_neighbour_still_occludes_on_resume(tmp_path):
    ann = _two_touching_objects(tmp_path / "coco")
    cfg = small_config(
        tmp_path / "out",
        ingest={"dedupe": False},
        sources=[
            {"type": "coco", "name": "coco", "annotations": str(ann), "images": str(tmp_path / "coco" / "images")}
        ],
    )
    fresh = {r["key"]: r["reject_reason"] for r in _ingest(cfg, tmp_path)}
    assert fresh == {"coco-1-1": "occluded", "coco-1-2": "occluded"}
    resumed = {r["key"]: r["reject_reason"] for r in _ingest(cfg, tmp_path, done_keys=frozenset({"coco-1-1"}))}
    assert resumed == {"coco-1-2": "occluded"}  # as in the fresh run: the written neighbour still touches it


def test_ids_that_sanitise_alike_get_distinct_keys(tmp_path):
    root = tmp_path / "pairs"
    root.mkdir()
    rng = np.random.default_rng(0)
    lines = ["id,composite,background"]
    for n, sid in enumerate(("a.b", "a_b")):
        comp = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        bg = comp.copy()
        bg[16:32, 16:32] = 128
        (root / f"c{n}.png").write_bytes(_png(comp))
        (root / f"b{n}.png").write_bytes(_png(bg))
        lines.append(f"{sid},c{n}.png,b{n}.png")
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    cfg = small_config(
        tmp_path / "out", sources=[{"type": "paired", "name": "pairs", "root": str(root), "manifest": "m.csv"}]
    )
    rows = _ingest(cfg, tmp_path)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == 2, keys
    assert {json.loads(r["ann"])["image_id"] if isinstance(r["ann"], str) else r["ann"]["image_id"] for r in rows} == {
        "a.b",
        "a_b",
    }
    assert make_key("pairs", "a.b", 0) != make_key("pairs", "a_b", 0)
    assert make_key("synth", "000001", 0) == "synth-000001-0"  # clean ids keep their readable keys


def test_a_repeated_unit_id_is_rejected_as_a_key_collision(tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(_png(image))
    (tmp_path / "list.txt").write_text("a.png\na.png\n")  # one file listed twice: the same unit id, the same keys
    cfg = small_config(
        tmp_path / "out", sources=[{"type": "folder", "name": "photos", "list_file": str(tmp_path / "list.txt")}]
    )
    units = tmp_path / "units.parquet"
    write_units(cfg, units)
    rows = table_rows(pq.read_table(units))
    assert rows[0]["unit_id"] != rows[1]["unit_id"]
    second = Ingest(cfg).run(rows[1:])
    assert [(r["reject_reason"], "repeats an earlier unit" in r["reject_detail"]) for r in second] == [
        ("key_collision", True)
    ]


def test_links_and_dotdot_that_leave_the_source_root_are_rejected(tmp_path):
    rng = np.random.default_rng(2)
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.png").write_bytes(_png(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)))
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    (photos / "inside.png").write_bytes(_png(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)))
    (photos / "sub" / "link.png").symlink_to(outside / "secret.png")
    (photos / "sub" / "same.png").symlink_to(photos / "inside.png")  # a link that stays inside is fine
    cfg = small_config(
        tmp_path / "out",
        ingest={"dedupe": False},
        sources=[{"type": "folder", "name": "photos", "root": str(photos), "max_proposals": 1}],
    )
    rows = _ingest(cfg, tmp_path)
    reasons = {
        name: {r["reject_reason"] for r in rows if f"{name}_png" in r["key"]} for name in ("link", "same", "inside")
    }
    assert reasons["link"] == {"outside_root"}
    assert "outside_root" not in reasons["same"] | reasons["inside"] and reasons["same"] and reasons["inside"]
    assert any("outside the source root" in r["reject_detail"] for r in rows if "link_png" in r["key"])

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    (pairs / "m.csv").write_text("id,composite,background\nup,../private/secret.png,../private/secret.png\n")
    cfg = small_config(
        tmp_path / "out2", sources=[{"type": "paired", "name": "pairs", "root": str(pairs), "manifest": "m.csv"}]
    )
    (row,) = _ingest(cfg, tmp_path)
    assert row["reject_reason"] == "outside_root"


def test_a_nan_in_one_coco_annotation_rejects_that_annotation_only(tmp_path):
    ann_path = _two_touching_objects(tmp_path / "coco")
    data = json.loads(ann_path.read_text())
    data["annotations"][0]["area"] = float("nan")  # as Python's json.dump writes it: a bare NaN
    data["annotations"][1]["bbox"] = [30, 10, 20, float("inf")]
    data["annotations"].append(
        {
            "id": 3,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [50, 40, 8, 8],
            "segmentation": [[50, 40, 58, 40, 58, 48, 50, 48]],
        }
    )
    ann_path.write_text(json.dumps(data))
    assert "NaN" in ann_path.read_text() and "Infinity" in ann_path.read_text()
    cfg = small_config(
        tmp_path / "out",
        ingest={"dedupe": False},
        sources=[
            {"type": "coco", "name": "coco", "annotations": str(ann_path), "images": str(tmp_path / "coco" / "images")}
        ],
    )
    rows = {r["key"]: r for r in _ingest(cfg, tmp_path)}
    assert {k: r["reject_reason"] for k, r in rows.items() if k != "coco-1-3"} == {
        "coco-1-1": "bad_annotation",
        "coco-1-2": "bad_annotation",
    }
    assert "NaN or Infinity" in rows["coco-1-1"]["reject_detail"]
    assert rows["coco-1-3"]["reject_reason"] != "bad_annotation"  # the same file's clean annotation is used


def test_a_resumed_unit_whose_keys_are_all_done_is_not_decoded(tmp_path, monkeypatch):
    import stages.sources.coco as coco

    ann = _two_touching_objects(tmp_path / "coco")
    cfg = small_config(
        tmp_path / "out",
        ingest={"dedupe": False},
        sources=[
            {"type": "coco", "name": "coco", "annotations": str(ann), "images": str(tmp_path / "coco" / "images")}
        ],
    )
    keys = frozenset(r["key"] for r in _ingest(cfg, tmp_path))
    decoded = []
    real = coco.decode_oriented
    monkeypatch.setattr(coco, "decode_oriented", lambda *a, **k: decoded.append(1) or real(*a, **k))
    assert _ingest(cfg, tmp_path, done_keys=keys) == [] and decoded == []
    left = _ingest(cfg, tmp_path, done_keys=keys - {"coco-1-2"})  # one instance left: the photo is read
    assert [r["key"] for r in left] == ["coco-1-2"] and decoded == [1]
