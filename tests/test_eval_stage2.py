"""``python -m curation.eval_stage2``: stage 2's CPU per sample on real photos at their own size."""

from __future__ import annotations

from curation.core.data import DESOBAV2
from curation.eval_stage2 import bundled_photos, measure, summary


def test_stage2_cpu_is_measured_per_sample_and_summarised_per_photo_size():
    photo = DESOBAV2 / "06" / "composite.png"
    assert photo in bundled_photos()
    records = measure({}, [photo])
    assert records and all(r["side"] == 570 and r["cpu_seconds"] > 0 for r in records), records
    table = summary(records)
    assert set(table) == {"all", "570 px"} and table["all"]["samples"] == len(records)
    assert table["all"]["mean"] <= table["all"]["max"]
