"""Object proposals for unannotated images (offline backend; the SAM backend is in test_sam.py).

Tolerance: on 8 synthetic 256-px scenes, the best offline proposal reaches IoU >= 0.5 with at least half
of the objects (measured: mean best IoU 0.52 on 20 scenes; the offline proposer is a weak fallback).
"""

from __future__ import annotations

import numpy as np
import pytest

from curation.core.morphology import iou
from curation.core.scenes import render_scene
from stages.segmenters.proposals import propose_objects


def test_offline_proposals_find_synthetic_objects():
    hits = []
    for seed in range(8):
        scene = render_scene(seed, 256)
        masks = propose_objects(scene.composite, 4)
        assert len(masks) <= 4
        for m in masks:
            assert m.dtype == bool and m.shape == (256, 256)
            assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
        hits += [max((iou(m, inst.mask) for m in masks), default=0.0) >= 0.5 for inst in scene.instances]
    assert np.mean(hits) >= 0.5, hits


def test_a_flat_image_has_no_objects_and_bad_arguments_fail_clearly():
    assert propose_objects(np.full((64, 64, 3), 128, np.uint8), 3) == []
    with pytest.raises(ValueError, match="unknown proposal backend"):
        propose_objects(np.zeros((8, 8, 3), np.uint8), 1, backend="magic")
    with pytest.raises(ValueError, match="checkpoint"):
        propose_objects(np.zeros((8, 8, 3), np.uint8), 1, backend="sam")
