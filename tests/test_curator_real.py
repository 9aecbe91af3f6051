"""The shipped curator on real photos it never trained or calibrated on, at its shipped threshold.

Two held-out sets of real photos: the test split's annotated instances (DESOBA 06 and 07, see
curator_model/splits.py) and the ``unseen`` ones (the DESOBAv2 photos, in no split). Each instance is layered
the way a run layers it, with the stage-2 recipe the checkpoint records, as is and in augmented views, and
corrupted once per failure mode; the instances cut by the photo's border are real truncated samples. What
"ships" is what stage 2's quality checks pass and the curator keeps (:func:`curator_model.evaluate.shipped`).

The bounds pin the measured figures (docs/curator.md, "Measured"), a little below them, so that a regression
fails: they are not targets. These are fewer views than the model card's (which has 16 per instance), so the
figures differ a little from the card's.
"""

from __future__ import annotations

import json

import pytest
from sklearn.metrics import roc_auc_score

from curator_model import generate
from curator_model.evaluate import shipped
from curator_model.network import DEFAULT_CHECKPOINT, Curator
from curator_model.splits import PHOTO_SPLITS

VIEWS = 4
#: (precision, yield, ROC-AUC of P(good)) a little below those measured on these views at the shipped threshold:
#: test 10/18 = 0.556, 10/11 = 0.909, 0.942; unseen 6/17 = 0.353, 6/10 = 0.6, 0.639 (far from the 0.9 aim; the
#: unseen photos' labels follow main's later lost_shadow refinements, which the checkpoint's data did not have)
PINNED = {"test": (0.5, 0.85, 0.9), "unseen": (0.3, 0.55, 0.6)}


@pytest.fixture(scope="module")
def scored():
    curator = Curator(DEFAULT_CHECKPOINT, "cpu")
    assert curator.spec.stage2 is not None
    out = {}
    for split in PINNED:
        arrays = generate.build_split(split, 0, 0, VIEWS, curator.spec.input_size, curator.spec.stage2, workers=1)
        out[split] = (arrays, curator.predict(arrays.x)[:, 0])
    return out, curator.spec.threshold


def test_the_real_held_out_photos_were_never_trained_or_calibrated_on():
    card = json.loads((DEFAULT_CHECKPOINT.parent / "model_card.json").read_text())
    splits = card["data"]["splits"]
    held_out = set(splits["test"]["photos"]) | set(splits["unseen"]["photos"])
    assert set(PHOTO_SPLITS["test"]) <= held_out and set(generate.unseen_photos()) <= held_out
    assert not held_out & (set(splits["train"]["photos"]) | set(splits["calibration"]["photos"]))


@pytest.mark.parametrize("split", list(PINNED))
def test_the_shipped_curators_real_photo_precision_and_yield_stay_at_their_measured_values(scored, split):
    by_split, threshold = scored
    arrays, p = by_split[split]
    result = shipped(p, arrays, threshold)
    precision, yield_, auc = PINNED[split]
    assert result["good"] >= VIEWS
    assert (result["precision"] or 0.0) >= precision, result
    assert result["yield"] >= yield_, result
    assert roc_auc_score(arrays.y == 0, p) >= auc
