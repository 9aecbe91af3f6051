"""Stage 2 config: segmenter, effect source, decomposition and its checks."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from curation.core.config.base import Resources, Strict


class SamOptions(Strict):
    """SAM through ``segment-anything``, from a local checkpoint (never downloaded)."""

    checkpoint: Path | None = None
    #: checked against the weights at start-up; ``auto`` accepts any encoder geometry
    model_type: Literal["vit_b", "vit_l", "vit_h", "auto"] = "vit_b"
    #: ``auto`` = cuda when this actor has a GPU, else cpu
    device: str = "auto"
    #: autocast dtype for the image encoder (bf16/fp16 only take effect on cuda)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    #: images per image-encoder forward pass
    embed_batch_size: int = Field(4, ge=1)
    #: pick among SAM's three masks by predicted IoU + agreement with the annotation
    multimask: bool = True


class GrabCutOptions(Strict):
    """Annotation mask refined by GrabCut: pixels near its outline are re-decided by colour."""

    iterations: int = Field(3, ge=1)
    #: width (px) of the uncertain band around the annotation's outline
    band_px: int = Field(4, ge=1)


class LightPriorOptions(Strict):
    """The photo's light direction as a prior on each object's shadow (``stages/shadows/light.py``): read from the
    detector's shadows of the photo's other annotated instances (a source that annotates several per photo).

    The knobs are ``python -m stages.shadows.tune``'s choice on all real photos (docs/layers.md).
    """

    enabled: bool = True
    #: keep shadow only beyond this far behind the object's base, against the light (object sizes); None: no cut
    margin: float | None = Field(0.25, ge=0)
    #: search out to this times the other shadows' reach (never less than the detector's own); 0: off
    stretch: float = Field(0.0, ge=0)
    #: a shadow below this share of the others' relative area loses confidence in proportion; 0: off
    small: float = Field(0.0, ge=0)
    #: the prior reads the shadows of at most this many other instances (the largest): its cost per row
    max_others: int = Field(8, ge=1)


class DetectorOptions(Strict):
    """The single-image shadow detector (``effects: detector`` or ``auto`` without a source effect).

    ``rule`` needs no weights (the offline default); ``sam`` prompts SAM inside the shadow the rule found;
    ``exported`` runs a learned detector from a ``torch.export`` program. The rule's parameters serve all three.
    """

    backend: Literal["rule", "sam", "exported"] = "rule"
    #: the rule's parameters: ``python -m stages.shadows.tune``'s choice on every real photo (docs/layers.md)
    ratio: float = Field(0.88, gt=0, lt=1)
    chroma_tol: float = Field(0.45, gt=0)
    search: float = Field(1.2, gt=0)
    base_band: float = Field(0.2, gt=0, le=1)
    window: float = Field(1.2, gt=0)
    #: ``sam``: a local SAM ``.pth``; ``exported``: a ``.pt2`` program
    #: ``model(image[1,3,H,W] 0..1, object[1,1,H,W] {0,1}) -> shadow probability[1,1,H,W]``, dynamic H, W
    checkpoint: Path | None = None
    #: ``sam`` only: checked against the weights at start-up; ``auto`` accepts any encoder geometry
    model_type: Literal["vit_b", "vit_l", "vit_h", "auto"] = "vit_b"
    #: ``auto`` = cuda when this actor has a GPU, else cpu
    device: str = "auto"
    light: LightPriorOptions = LightPriorOptions()

    @model_validator(mode="after")
    def _models_have_weights(self) -> DetectorOptions:
        if self.backend != "rule" and self.checkpoint is None:
            raise ValueError(f"shadow detector '{self.backend}' needs masks.detector.checkpoint (a local path)")
        return self


class InpaintOptions(Strict):
    """How the object region of an unpaired image is filled: OpenCV, or a learned model from a local path."""

    backend: Literal[
        "telea", "navier_stokes", "fsr_fast", "fsr_best", "shiftmap", "fsr_texture", "coarse_to_fine", "exported"
    ] = "coarse_to_fine"
    radius: int = Field(5, ge=1)
    #: the xphoto fills work on the object's window reduced to at most this many pixels on its long side:
    #: lower it to bound stage 2's CPU on large photos, at the cost of the finest texture (docs/layers.md)
    window_px: int = Field(1024, ge=32)
    #: ``exported``: a ``torch.export`` program (.pt2) ``(image[B,3,S,S] in 0..1, mask[B,1,S,S]) -> image``, e.g.
    #: LaMa; B dynamic (or static: partial batches are padded), S each of ``window_sizes`` (or one static side)
    checkpoint: Path | None = None
    #: ``exported``: ``auto`` = cuda when the masks actor has a GPU (``masks.resources.num_gpus``), else cpu
    device: str = "auto"
    #: ``exported``: the fixed window sides (px) the model runs at; each hole goes to the smallest that holds it
    #: with its context (the largest, reduced, when none does), and the windows of one side in a stage batch
    #: (``masks.resources.batch_size`` rows) share one forward pass
    window_sizes: list[int] = Field(default_factory=lambda: [256, 512, 1024], min_length=1)

    @model_validator(mode="after")
    def _window_sizes(self) -> InpaintOptions:
        if any(s < 32 for s in self.window_sizes) or len(set(self.window_sizes)) != len(self.window_sizes):
            raise ValueError(f"window_sizes {self.window_sizes}: distinct sides of at least 32 px")
        return self


class QualityOptions(Strict):
    """Thresholds of the quality checks (``curation/core/quality.py``); each failed check is a reject reason.

    Chosen on the tuning data of ``curate eval-layers`` (synthetic scenes with seeds 1000+, the hole
    benchmark's tuning photos): each at the value that keeps about 97.5 % of the ground-truth triplets
    there. The held-out figures are in docs/layers.md.
    """

    enabled: bool = True
    #: share of the pixels outside object+effect where background and composite differ beyond noise
    max_drift: float = Field(0.01, ge=0, le=1)
    #: share of the effect where the composite is brighter than the background (a shadow only darkens)
    max_brightened: float = Field(0.1, ge=0, le=1)
    #: share of the effect darker than 0.12 × the background; None = measured, not gated: contact shadows
    #: (under a car) are that dark on real photos
    max_too_dark: float | None = Field(None, ge=0, le=1)
    #: mean deviation of the log shading ratio from its 5-px median inside the effect; None = measured, not
    #: gated: the unpaired relight sets B to the smooth lit surface, so its ratio keeps the ground's texture
    max_ratio_roughness: float | None = Field(None, ge=0)
    #: fine detail of the fill under the object relative to a ring of ground around it (a smear is low)
    min_fill_texture: float = Field(0.5, ge=0)
    #: ... and at most this much: a fill far busier than the ground around it is noise, not texture (set above
    #: every ground-truth fill of the tuning split: docs/layers.md)
    max_fill_texture: float = Field(3.0, gt=0)
    #: colour step across the fill's border, in units of the ring's colour spread
    max_fill_seam: float = Field(2.0, ge=0)
    #: correlation of the fill's gradients with the removed object's (a ghost of the object)
    max_fill_ghost: float = Field(0.6, ge=-1, le=1)
    #: effect area relative to the object's
    max_effect_area: float = Field(4.0, gt=0)
    #: share of the shadow whose smoothed shading ratio has another colour than the shadow's own
    max_effect_foreign: float = Field(0.05, ge=0, le=1)
    #: area (× the object's) of shade left in the background at the object's footprint, ground texture
    #: continuing beneath it: a shadow the effect missed (chosen leave-one-photo-out: docs/layers.md)
    max_lost_shadow: float | None = Field(0.05, ge=0)


class MasksConfig(Strict):
    resources: Resources = Resources(num_cpus=0.5, batch_size=8, concurrency=1)
    segmenter: Literal["annotation", "grabcut", "sam"] = "annotation"
    sam: SamOptions = SamOptions()
    grabcut: GrabCutOptions = GrabCutOptions()
    #: source: the source's effect annotation / paired plate; detector: always the detector; auto: source, else detector
    effects: Literal["source", "detector", "auto"] = "auto"
    detector: DetectorOptions = DetectorOptions()
    inpaint: InpaintOptions = InpaintOptions()
    #: smoothing (px) of the shadow's shading ratio when relighting; 0 = the lit inpaint itself (best measured)
    relight_smooth_px: float = Field(0.0, ge=0)
    #: a segmenter mask whose IoU with the annotation (mask, else box) is below this is rejected (mask_failed)
    min_mask_agreement: float = Field(0.5, ge=0, le=1)
    #: width (px) of the object's outline band where alpha is estimated softly
    soft_edge_px: int = Field(1, ge=0)
    #: below this recomposite PSNR (dB) a decomposition is rejected
    psnr_floor: float = 35.0
    #: the checks that can fail (background drift, shadow consistency, fill quality, effect plausibility)
    quality: QualityOptions = QualityOptions()
    #: an effect region this far (px) from the object counts as detached
    max_effect_gap_px: int = Field(24, ge=0)

    @model_validator(mode="after")
    def _backends_have_weights(self) -> MasksConfig:
        if self.segmenter == "sam" and self.sam.checkpoint is None:
            raise ValueError("segmenter 'sam' needs masks.sam.checkpoint (a local .pth path)")
        if self.inpaint.backend == "exported" and self.inpaint.checkpoint is None:
            raise ValueError("inpaint backend 'exported' needs masks.inpaint.checkpoint (a local path)")
        return self
