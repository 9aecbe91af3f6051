"""Rows between actors: images cross as views of the Arrow buffers, a shared photo crosses once, nothing changes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curation.core.imageio import PNG_FILTERS, decode_png, encode_png
from curation.core.schema import ROW_SCHEMA, get_image, new_row, reject, rows_to_table, table_rows


def _rows() -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    rows = []
    for i in range(3):  # three instances of one photo, each with its own mask
        mask = np.zeros((24, 32), bool)
        mask[i : i + 5, i : i + 7] = True
        rows.append(
            new_row(
                f"s-1-{i}",
                "s",
                "ref",
                label="box",
                composite=photo,
                ann_mask=mask,
                ann={"bbox": [i, i, 7, 5]},
                psnr=40.0 + i,
            )
        )
    rows.append(
        reject(
            new_row("s-2-0", "s", "ref", composite=rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)),
            "ingest",
            "crowd",
            "a crowd",
        )
    )
    return rows, photo


def test_rows_cross_an_arrow_table_unchanged():
    rows, photo = _rows()
    table = rows_to_table(rows)
    assert table.schema == ROW_SCHEMA
    back = table_rows(pa.concat_tables([table.slice(0, 2), table.slice(2)]))  # as Ray hands over blocks
    for a, b in zip(rows, back, strict=True):
        for column in ROW_SCHEMA.names:  # what crosses Arrow (a reject's images set aside for its thumbnails do not)
            value = a[column]
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, b[column]) and value.dtype == b[column].dtype, column
            elif isinstance(value, float) and np.isnan(value):
                assert np.isnan(b[column])
            else:
                assert value == b[column], column
    assert back[3]["composite"] is None and back[3]["reject_reason"] == "crowd"
    assert back[0]["ann"] == {"bbox": [0, 0, 7, 5]} and back[0]["meta"] == {}


def test_a_photo_shared_by_instances_is_stored_once_and_read_back_shared():
    rows, photo = _rows()
    column = rows_to_table(rows).column("composite").chunk(0)
    assert len(column.dictionary) == 1  # the rejected row dropped its pixels; the three instances share one blob
    assert column.dictionary.nbytes < 2 * photo.nbytes
    back = table_rows(rows_to_table(rows))
    assert back[0]["composite"] is back[1]["composite"] is back[2]["composite"]
    assert len({id(r["ann_mask"]) for r in back[:3]}) == 3


def test_a_block_cut_from_a_batch_carries_only_its_own_photos():
    """Ray cuts blocks out of a stage's output by slicing; a slice keeps whole dictionaries, so each photo
    has a chunk of its own, and the other image columns are plain (their slices are cut to the rows)."""
    rng = np.random.default_rng(2)
    photos = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    rows = [new_row(f"k{i}", "s", "r", composite=photos[i // 2], background=photos[0][::-1]) for i in range(6)]
    table = rows_to_table(rows)
    cut = table.slice(4, 2).column("composite")
    carried = [c.dictionary for c in cut.chunks if len(c)]
    assert len(carried) == 1 and len(carried[0]) == 1
    assert np.array_equal(table_rows(table.slice(4, 2))[0]["composite"], photos[2])
    assert not pa.types.is_dictionary(table.schema.field("background").type)


def test_images_read_from_a_table_are_views_that_cannot_be_written():
    rows, _ = _rows()
    table = rows_to_table(rows)
    image = get_image(table_rows(table)[0], "composite")
    data = table.column("composite").chunk(0).dictionary.buffers()[2]
    assert data.address <= image.__array_interface__["data"][0] < data.address + data.size  # no copy
    with pytest.raises(ValueError):
        image[0, 0, 0] = 1
    with pytest.raises(ValueError):  # a row's own images are read-only too: other rows may share them
        rows[0]["composite"][0, 0, 0] = 1


@pytest.mark.parametrize("row_filter", sorted(PNG_FILTERS))
@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 3), (20, 30, 4)])
def test_png_is_lossless_at_every_setting(row_filter, shape):
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    for level in (0, 1, 9):
        assert np.array_equal(decode_png(encode_png(image, level, row_filter)), image)
