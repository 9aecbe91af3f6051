"""The synthetic generator: deterministic, and its ground truth satisfies the layer invariant."""

from __future__ import annotations

import numpy as np

from curation.core.compositing import over, recomposite_psnr
from curation.core.scenes import render_scene


def test_same_seed_same_pixels():
    a, b = render_scene(11, 96), render_scene(11, 96)
    assert np.array_equal(a.composite, b.composite)
    assert len(a.instances) == len(b.instances)
    for x, y in zip(a.instances, b.instances, strict=True):
        assert np.array_equal(x.foreground, y.foreground) and np.array_equal(x.background, y.background)
    assert not np.array_equal(render_scene(12, 96).composite, a.composite)


def test_ground_truth_recomposites_and_has_shadow_alpha():
    shadows = 0
    for seed in range(12):
        scene = render_scene(seed, 128)
        for inst in scene.instances:
            unoccluded = len(scene.instances) == 1
            if unoccluded:
                # 8-bit quantisation of three layers is the only error: well above 40 dB
                assert recomposite_psnr(scene.composite, inst.background, inst.foreground) > 40
            alpha = inst.foreground[..., 3]
            assert (alpha[inst.mask] > 100).all()
            if inst.effect.any():
                shadows += 1
                a = alpha[inst.effect]
                assert a.min() > 0 and np.median(a) < 255  # shadows are partial alpha, not opaque
    assert shadows >= 8
    assert over(np.zeros((2, 2, 4), np.uint8), np.full((2, 2, 3), 7, np.uint8)).max() == 7
