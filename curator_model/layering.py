"""Stage 2's layering recipe as the curator's data are made with it, and the check that a run layers the same way.

The curator judges layers by how they look, and the fill decides much of that look: a network trained on one
fill scores another fill's texture as something it never saw. So the recipe the training data were layered with
(:class:`Stage2Recipe`: the fill and every other stage-2 setting that changes the layers' pixels, plus the quality
bounds that label a decomposition good) is recorded in the checkpoint, and a run whose stage 2 layers differently
is refused at start (:func:`check_run`) unless ``curate.allow_fill_mismatch`` says otherwise.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from curation.core.config import ConfigError, MasksConfig
from curation.core.config.base import Strict
from curation.core.config.masks import InpaintOptions, QualityOptions
from curation.core.decompose import Triplet, background_shadowfree, background_unpaired, paired_plate
from curation.core.decompose import decompose as decompose_with
from curation.core.inpaint import Inpainter, build_inpainter
from curation.core.quality import failures, measure

_STAGE2 = MasksConfig.model_fields
#: what "good" means in the generated labels, written into every model card
LABEL_DEFINITION = (
    "good: a decomposition made by stage 2's recipe (the recorded fill, soft edge and relight) from the true "
    "object and shadow masks that stage 2's quality checks (curation.core.quality.failures, the recorded "
    "masks.quality bounds) pass; each failure mode: a realistic corruption of a good one, re-layered by the same "
    "recipe (curator_model/corruptions.py)"
)


class Stage2Recipe(Strict):
    """The stage-2 settings a curator's training data were made with (``masks.*`` keys of a run config)."""

    #: the fill of the object's hole (``masks.inpaint``)
    inpaint: InpaintOptions = Field(default_factory=lambda: MasksConfig().inpaint)
    soft_edge_px: int = _STAGE2["soft_edge_px"].default
    relight_smooth_px: float = _STAGE2["relight_smooth_px"].default
    #: the bounds that label a decomposition good (they change the labels, not the layers' pixels)
    quality: QualityOptions = Field(default_factory=lambda: MasksConfig().quality)

    @classmethod
    def of(cls, masks: MasksConfig) -> Stage2Recipe:
        return cls(
            inpaint=masks.inpaint,
            soft_edge_px=masks.soft_edge_px,
            relight_smooth_px=masks.relight_smooth_px,
            quality=masks.quality,
        )

    def layering(self) -> dict[str, object]:
        """The settings that change the layers' pixels, by their run-config key (the fill's device does not)."""
        fill = self.inpaint.model_dump(mode="json", exclude={"device"})
        return {
            **{f"masks.inpaint.{k}": v for k, v in fill.items()},
            "masks.soft_edge_px": self.soft_edge_px,
            "masks.relight_smooth_px": self.relight_smooth_px,
        }

    def differences(self, masks: MasksConfig) -> list[str]:
        """``key: checkpoint X, run Y`` for every layering setting in which a run's stage 2 differs."""
        run = Stage2Recipe.of(masks).layering()
        return [f"{k} {v!r} (run: {run[k]!r})" for k, v in self.layering().items() if run[k] != v]


class FillMismatch(ConfigError):
    """The run's stage 2 layers differently from the data the curator checkpoint was trained on."""


def check_run(recipe: Stage2Recipe | None, masks: MasksConfig, checkpoint: str, allow: bool) -> None:
    """Raise :class:`FillMismatch` (one line) when the run's layering differs from ``recipe``, unless ``allow``."""
    if allow:
        return
    if recipe is None:
        raise FillMismatch(
            f"curator checkpoint {checkpoint} records no stage-2 recipe (fill) for its training data, so it cannot "
            "be matched to this run's masks.inpaint; retrain it with `curate train-curator`, or set "
            "curate.allow_fill_mismatch: true"
        )
    diff = recipe.differences(masks)
    if diff:
        raise FillMismatch(
            f"curator checkpoint {checkpoint} was trained on data layered with {'; '.join(diff)}; a curator "
            "judges the fill it was trained on: retrain it on this run's stage 2 (`curate train-curator`), or set "
            "curate.allow_fill_mismatch: true"
        )


class Layering:
    """Stage 2's recipe bound to its fill: how the generator and the corruptions layer and label a triplet."""

    def __init__(self, recipe: Stage2Recipe):
        self.recipe = recipe
        self.inpaint: Inpainter = build_inpainter(recipe.inpaint)

    def decompose(self, composite: np.ndarray, background: np.ndarray, obj: np.ndarray) -> Triplet:
        """Stage 2's layering (its soft edge) for a given background and object mask."""
        return decompose_with(composite, background, obj, self.recipe.soft_edge_px)

    def unpaired(self, composite: np.ndarray, obj: np.ndarray, effect: np.ndarray) -> np.ndarray:
        """The background stage 2 makes without a plate: relight the shadow, fill the object."""
        return background_unpaired(composite, obj, effect, self.inpaint, self.recipe.relight_smooth_px)

    @staticmethod
    def paired(composite: np.ndarray, plate: np.ndarray, obj: np.ndarray) -> np.ndarray:
        """The background stage 2 makes from a clean plate: the plate, less the pair's noise."""
        return paired_plate(composite, plate, obj)

    def shadowfree(self, composite: np.ndarray, shadowfree: np.ndarray, obj: np.ndarray) -> np.ndarray:
        """The background stage 2 makes from a shadow-free photo: less the pair's noise, the object filled."""
        return background_shadowfree(paired_plate(composite, shadowfree, obj), obj, self.inpaint)

    def labelled_good(self, t: Triplet) -> bool:
        """Whether a decomposition made by this recipe may be labelled ``good``: stage 2's quality checks pass it
        (checks that can fail; the recomposite PSNR passes for any background, a black fill included)."""
        return not failures(measure(t.composite, t.background, t.mask, t.effect), self.recipe.quality)
