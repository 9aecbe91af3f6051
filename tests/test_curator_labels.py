"""The curator's generator labels a triplet ``good`` by checks that can fail, never by the recomposite PSNR.

F and α are solved from C and B, so a black or a noise fill recomposites the photo exactly (the PSNR rule
labelled 9 of 9 such triplets good); stage 2's quality checks must refuse them while they keep the true
decomposition of the same instances, so that the test cannot pass by refusing everything.
"""

from __future__ import annotations

import numpy as np
import pytest

from curation.core.compositing import recomposite_psnr
from curation.core.decompose import background_unpaired
from curation.core.scenes import render_scene
from curator_model.layering import Layering, Stage2Recipe

LAY = Layering(Stage2Recipe())  # a default run's stage 2
decompose, labelled_good = LAY.decompose, LAY.labelled_good

SEEDS = range(9)  # the held-out synthetic seeds of `curate eval-layers` (thresholds are chosen on 1000+)


class Fill:
    """An inpainter that paints the hole with a constant or with noise (a broken fill)."""

    def __init__(self, kind: str):
        self.name, self.rng = kind, np.random.default_rng(0)

    def __call__(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        out = image.copy()
        n = int(region.sum())
        out[region] = 0 if self.name == "black" else self.rng.integers(0, 256, (n, 3), dtype=np.uint8)
        return out


def _instances():
    for seed in SEEDS:
        scene = render_scene(seed, 160, max_objects=1, occlusion_rate=0.0)
        yield scene, scene.instances[0]


@pytest.mark.parametrize("kind", ["black", "noise"])
def test_a_black_or_noise_fill_is_never_labelled_good(kind):
    for scene, inst in _instances():
        bad = decompose(
            scene.composite, background_unpaired(scene.composite, inst.mask, inst.effect, Fill(kind)), inst.mask
        )
        assert recomposite_psnr(bad.composite, bad.background, bad.foreground) >= 35.0  # the PSNR cannot tell
        assert not labelled_good(bad)


def test_the_true_decomposition_and_the_default_fill_are_labelled_good():
    truth = [decompose(scene.composite, inst.background, inst.mask) for scene, inst in _instances()]
    assert sum(labelled_good(t) for t in truth) >= len(truth) - 1
    recipe = [
        decompose(scene.composite, LAY.unpaired(scene.composite, inst.mask, inst.effect), inst.mask)
        for scene, inst in _instances()
    ]
    assert sum(labelled_good(t) for t in recipe) >= len(recipe) // 2
