"""Paired folders (folder layout and CSV manifest) and plain image folders (segmenter proposals)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from curation.core.config.sources import FolderSourceConfig, PairedSourceConfig
from curation.core.morphology import iou
from curation.core.schema import get_image, get_json
from stages.sources.base import MANIFEST_ERROR
from stages.sources.folder import FolderSource
from stages.sources.paired import PairedSource

MAX_PX = 10**8
DESOBA = Path(__file__).resolve().parents[1] / "curation" / "data" / "real" / "desoba"


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def test_paired_manifest_streams_good_rows_and_flags_malformed_ones(tmp_path):
    comp = cv2.imread(str(DESOBA / "05" / "composite.png"))
    _write(tmp_path / "a" / "with.png", comp[..., ::-1])
    _write(tmp_path / "a" / "without.png", cv2.imread(str(DESOBA / "05" / "shadowfree.png"))[..., ::-1])
    _write(tmp_path / "a" / "obj.png", cv2.imread(str(DESOBA / "05" / "object_mask.png"), cv2.IMREAD_GRAYSCALE))
    (tmp_path / "pairs.csv").write_text(
        "id,composite,shadowfree,object_mask,label\n"
        "a,a/with.png,a/without.png,a/obj.png,person\n"
        "b,a/with.png,,,\n"  # neither clean image
        "a,a/with.png,a/without.png,a/obj.png,person\n"  # repeated id
        "c,a/with.png\n"  # too few fields
        "\n"
    )
    src = PairedSource(PairedSourceConfig(root=tmp_path, manifest=Path("pairs.csv")))
    units = list(src.units())
    assert [u.unit_id for u in units] == ["a", "line_3", "line_4", "line_5"]
    assert [MANIFEST_ERROR in u.ref for u in units] == [False, True, True, True]
    [row] = src.load(units[0], MAX_PX)
    assert row["key"] == "paired-a-0" and row["label"] == "person"
    assert get_json(row, "ann")["clean_kind"] == "shadowfree"
    assert get_image(row, "clean").shape == get_image(row, "composite").shape == (256, 256, 3)


def test_paired_manifest_with_unknown_column_fails_at_start(tmp_path):
    (tmp_path / "m.csv").write_text("id,composite,backgrnd\n")
    src = PairedSource(PairedSourceConfig(root=tmp_path, manifest=tmp_path / "m.csv"))
    with pytest.raises(ValueError, match="header"):
        list(src.units())


def test_paired_folders_as_bundled(tmp_path):
    src = PairedSource(PairedSourceConfig(root=Path("desoba"), name="desoba"))
    units = list(src.units())
    assert [u.unit_id for u in units] == ["05", "06", "07"]
    [row] = src.load(units[0], MAX_PX)
    assert row["key"] == "desoba-05-0"
    assert get_image(row, "ann_effect").any() and get_image(row, "ann_mask").any()


def _scene_with_disc(size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(170, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    disc = np.zeros((size, size), np.uint8)
    cv2.circle(disc, (size // 2, size // 2), size // 6, 1, -1)
    img[disc.astype(bool)] = (200, 30, 40)
    return img, disc.astype(bool)


def test_folder_source_rows_come_from_proposals(tmp_path):
    img, disc = _scene_with_disc()
    _write(tmp_path / "photos" / "sub" / "x.png", img)
    _write(tmp_path / "photos" / "x.png", img[:, ::-1].copy())
    (tmp_path / "photos" / "notes.txt").write_text("not an image, not listed")
    src = FolderSource(FolderSourceConfig(root=tmp_path / "photos", max_proposals=3))
    units = list(src.units())
    assert [u.ref["rel"] for u in units] == ["sub/x.png", "x.png"]
    assert len({u.unit_id for u in units}) == 2 and all("." not in u.unit_id for u in units)
    rows, scale = src.load_scaled(units[0], MAX_PX, 80)
    assert scale == 0.5 and 1 <= len(rows) <= 3
    assert all(r["key"] == f"folder-{units[0].unit_id}-{j}" for j, r in enumerate(rows))
    best = max(iou(get_image(r, "ann_mask"), cv2.resize(disc.astype(np.uint8), (80, 80)).astype(bool)) for r in rows)
    assert best > 0.7


def test_folder_list_file_paths_are_relative_to_it(tmp_path):
    img, _ = _scene_with_disc(96)
    _write(tmp_path / "imgs" / "a.jpg", img)
    (tmp_path / "list.txt").write_text("# photos\nimgs/a.jpg\n\nimgs/missing.jpg\n")
    src = FolderSource(FolderSourceConfig(list_file=tmp_path / "list.txt", name="web"))
    units = list(src.units())
    assert [u.ref["path"] for u in units] == [str(tmp_path / "imgs" / "a.jpg"), str(tmp_path / "imgs" / "missing.jpg")]
    assert src.load(units[0], MAX_PX)[0]["key"].startswith("web-imgs_a_jpg_")
