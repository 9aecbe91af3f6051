"""A reject can be judged from the report: it keeps thumbnails of every layer it was judged on, and its
detail names only the gates that failed, each with its value and bound."""

from __future__ import annotations

import numpy as np

from curation.core.config import parse_config
from curation.core.config.masks import QualityOptions
from curation.core.quality import Quality, failures, measure
from curation.core.realdata import desoba_instances
from curation.core.rejects import RejectSampler
from curation.core.schema import LAYER_MEMBERS, SET_ASIDE, new_row
from stages.masks import MasksAndLayers


def _quality(**values) -> Quality:
    passing = dict(
        drift=0.0,
        brightened=0.0,
        too_dark=0.0,
        ratio_roughness=0.0,
        fill_texture=0.9,
        fill_seam=0.01,
        fill_ghost=0.1,
        effect_area=1.0,
        effect_foreign=0.0,
    )
    return Quality(**{**passing, **values})


def test_the_detail_names_only_the_gates_that_failed_with_value_and_bound():
    opts = QualityOptions()
    assert failures(_quality(), opts) == []
    [(reason, detail)] = failures(_quality(fill_texture=0.446), opts)
    assert str(reason) == "fill_smeared"
    assert detail == f"fill texture 0.446 (< {opts.min_fill_texture:g})"  # not the seam, not the ghost
    [(_, detail)] = failures(_quality(fill_ghost=0.8, fill_seam=3.5), opts)
    assert "texture" not in detail and "seam 3.500 (> 2)" in detail and "ghost 0.800 (> 0.6)" in detail
    [(reason, detail)] = failures(_quality(effect_area=6.0), opts)
    assert str(reason) == "effect_implausible" and detail == "effect area (× the object) 6.000 (> 4)"


def test_a_stage_2_quality_reject_keeps_every_layer_it_was_judged_on():
    inst = desoba_instances()[3]  # paired with its shadow-free photo; another exposure of it drifts
    darker = np.clip(inst.shadowfree.astype(int) - 12, 0, 255).astype(np.uint8)
    row = new_row(
        key="q",
        source="t",
        source_ref="t",
        composite=inst.composite,
        clean=darker,
        ann_mask=inst.mask,
        ann={"bbox": [0, 0, 1, 1], "clean_kind": "shadowfree"},
    )
    MasksAndLayers(parse_config({"sources": [{"type": "synthetic"}]})).process([row])
    assert (row["status"], row["reject_reason"]) == ("rejected", "background_drift")
    assert row["reject_detail"].startswith("pixels outside object+effect that differ from the composite ")
    assert "(> 1.0%)" in row["reject_detail"]
    # the other checks it fails follow, each with its value and bound; the gates it passes are not named
    aside = row[SET_ASIDE]
    q = measure(aside["composite"], aside["background"], aside["mask"] > 0, aside["effect"] > 0)
    failed = failures(q, QualityOptions())
    assert len(failed) > 1 and all(detail in row["reject_detail"] for _, detail in failed)
    assert "fill_smeared" not in [str(r) for r, _ in failed] and "fill" not in row["reject_detail"]
    RejectSampler("masks", per_reason=4, px=64)([row])
    thumbs = row["thumbnails"]
    assert set(thumbs) == set(LAYER_MEMBERS) and all(thumbs[m] for m in LAYER_MEMBERS), [
        m for m in LAYER_MEMBERS if not thumbs[m]
    ]
