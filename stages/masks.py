"""Stage 2, masks + layers: object mask, effect mask, then background + foreground RGBA.

Object mask from the configured segmenter (annotation, GrabCut-refined annotation, or SAM prompted by
the annotation), effect (shadow) mask from the source or the single-image detector, background from the
paired clean plate when the source has one (otherwise inpaint + relight), and the foreground from the
minimal-alpha rule with a soft object outline. Cheap physical checks reject what cannot be a valid layer,
then the quality checks (``curation/core/quality.py``) reject what the decomposition could not have fitted:
a background that drifts beyond its region, an effect that is not a shadow, a smeared fill, an effect
that holds a piece of another object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from curation.core.compositing import recomposite_psnr
from curation.core.config import RunConfig
from curation.core.decompose import decompose, fill_region, paired_plate, shadow_relit
from curation.core.inpaint import build_inpainter, fill_all
from curation.core.instance_labels import other_masks
from curation.core.morphology import bbox_of, box_iou, dilate, iou
from curation.core.quality import failures, measure
from curation.core.schema import (
    Reason,
    Row,
    StageName,
    get_image,
    get_json,
    image_identity,
    reject,
    require_image,
    set_image,
    update_meta,
)
from curation.core.stage import RowStage
from stages.segmenters import Prompt, build_segmenter, points_from_ann
from stages.shadows import ShadowDetection, build_detector
from stages.shadows.light import LightPrior, PriorKnobs, detect_with_prior, prior_from


class LayerIntegrityError(RuntimeError):
    """The stored layers do not recomposite the photo: a fault of the layering code (a ``stage_error``, counted
    by the run's error budget), never a quality verdict: the recomposite PSNR passes for any background."""


@dataclass
class _Job:
    """One row between planning and layering: its background is known (a clean plate), or filled from
    ``fill_from`` together with the rest of the batch's fills (``window``: how a learned fill ran)."""

    row: Row
    composite: np.ndarray
    obj: np.ndarray
    meta: dict[str, Any]
    background: np.ndarray | None = None
    fill_from: np.ndarray | None = None
    shadow_confidence: float | None = None
    window: dict[str, int] | None = None


class MasksAndLayers(RowStage):
    name = StageName.MASKS
    reads = ("composite", "clean", "ann_mask", "ann_effect", "ann_instances", "ann")
    writes = ("background", "foreground", "mask", "effect", "psnr")

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        m = cfg.masks
        self.segmenter = build_segmenter(m)
        self.detector = build_detector(m.detector)
        self.inpainter = build_inpainter(m.inpaint)
        #: the detector's shadows of the photos' annotated instances, for the light prior (one batch's photos)
        self._instance_shadows: dict[tuple, ShadowDetection] = {}

    @staticmethod
    def preflight(cfg: RunConfig) -> None:
        """A SAM, shadow-detector or inpainting checkpoint that is not there fails now, not in every actor."""
        m = cfg.masks
        for key, path in (
            ("masks.sam.checkpoint", m.sam.checkpoint if m.segmenter == "sam" else None),
            ("masks.detector.checkpoint", m.detector.checkpoint if m.detector.backend != "rule" else None),
            ("masks.inpaint.checkpoint", m.inpaint.checkpoint if m.inpaint.backend == "exported" else None),
        ):
            if path is not None and not path.is_file():
                raise FileNotFoundError(f"{key}: {path} is not a file")

    def prompt(self, row: Row, composite: np.ndarray) -> Prompt:
        ann = get_json(row, "ann")
        mask = get_image(row, "ann_mask")
        box: tuple[float, float, float, float] | None = None
        if ann.get("bbox") and ann["bbox"][2] > 0:
            x, y, w, h = (float(v) for v in ann["bbox"])
            box = (x, y, w, h)
        image_id = hashlib.blake2b(np.ascontiguousarray(composite).data, digest_size=16).hexdigest()
        return Prompt(
            image=composite,
            image_id=image_id,
            box=box,
            points=points_from_ann(ann),
            mask=None if mask is None else mask.astype(bool),
        )

    def effect_mask(
        self, row: Row, composite: np.ndarray, obj: np.ndarray
    ) -> tuple[np.ndarray, str, float | None, LightPrior | None]:
        """The object's shadow region, where it came from (``source`` or the detector's name), the
        detector's confidence in it (None for a source annotation) and the light prior it was searched with."""
        eff = get_image(row, "ann_effect")
        mode = self.cfg.masks.effects
        if mode == "source" or (mode == "auto" and eff is not None):
            return (np.zeros_like(obj) if eff is None else (eff.astype(bool) & ~obj)), "source", None, None
        prior = self.light_prior(row, composite, obj)
        opts = self.cfg.masks.detector.light
        found = detect_with_prior(self.detector, composite, obj, prior, PriorKnobs.from_options(opts))
        return found.mask, f"detector-{self.detector.name}", round(found.confidence, 4), prior

    def light_prior(self, row: Row, composite: np.ndarray, obj: np.ndarray) -> LightPrior | None:
        """The photo's light direction from the detector's shadows of its other annotated instances (each found
        once per batch, whichever row asks first); None when the prior is off or the row's source annotates
        one instance per photo."""
        opts = self.cfg.masks.detector.light
        labels, own = get_image(row, "ann_instances"), get_json(row, "ann").get("photo_instance")
        if not opts.enabled or labels is None or not own or labels.shape != obj.shape:
            return None
        photo = (image_identity(labels), image_identity(composite))
        found = []
        for k, mask in other_masks(labels, own, opts.max_others):
            if (photo, k) not in self._instance_shadows:
                self._instance_shadows[photo, k] = self.detector.detect_scored(composite, mask)
            found.append((mask, self._instance_shadows[photo, k]))
        return prior_from(found)

    def process(self, rows: list[Row]) -> None:
        self._instance_shadows.clear()  # keyed by the arrays' memory: valid while this batch holds them
        composites = [require_image(row, "composite") for row in rows]
        prompts = [self.prompt(row, c) for row, c in zip(rows, composites, strict=True)]
        results = self.segmenter.segment(prompts)
        jobs = [
            job
            for row, composite, prompt, seg in zip(rows, composites, prompts, results, strict=True)
            if (job := self._plan(row, composite, prompt, seg.mask, seg.score)) is not None
        ]
        # every fill of the batch at once: a learned inpainter runs the rows' windows through its model together
        to_fill = [(job, job.fill_from) for job in jobs if job.fill_from is not None]
        fills = fill_all(self.inpainter, [src for _, src in to_fill], [fill_region(job.obj) for job, _ in to_fill])
        for (job, _), filled in zip(to_fill, fills, strict=True):
            job.background, job.window = filled.image, filled.window
        for job in jobs:
            self._layers(job)

    def _plan(
        self, row: Row, composite: np.ndarray, prompt: Prompt, obj: np.ndarray | None, score: float
    ) -> _Job | None:
        """Check the object mask and choose where the background comes from (a clean plate, or a fill of the object
        from the photo with its shadow relit); None when the row was rejected."""
        cfg = self.cfg.masks
        if obj is None or not obj.any():
            reject(row, self.name, Reason.EMPTY_MASK, f"segmenter {self.segmenter.name} returned no object pixels")
            return None
        agreement = self._agreement(obj, prompt)
        if agreement is not None and agreement < cfg.min_mask_agreement:
            set_image(row, "mask", obj)  # a reviewer compares it with the annotation's
            reject(
                row,
                self.name,
                Reason.MASK_FAILED,
                f"{self.segmenter.name} mask IoU {agreement:.2f} with the annotation < {cfg.min_mask_agreement}",
            )
            return None
        clean = get_image(row, "clean")
        ann = get_json(row, "ann")
        if clean is not None and clean.shape != composite.shape:
            reject(row, self.name, Reason.SIZE_MISMATCH, f"clean {clean.shape} vs composite {composite.shape}")
            return None
        meta: dict[str, Any] = {
            "segmenter": self.segmenter.name,
            "segmenter_score": round(score, 4),
            "mask_agreement": None if agreement is None else round(agreement, 4),
            "light_prior_n": None,
        }
        kind = ann.get("clean_kind", "background")
        if clean is not None and kind in ("background", "mulan"):  # a real clean plate: the object and effects gone
            method = "paired" if kind == "background" else kind
            background = paired_plate(composite, clean, obj)
            return _Job(row, composite, obj, {**meta, "effects": method, "background": method}, background=background)
        if clean is not None:
            meta |= {"effects": "paired", "background": f"shadowfree+{self.inpainter.name}"}
            return _Job(row, composite, obj, meta, fill_from=paired_plate(composite, clean, obj))
        effect_in, effect_source, shadow_confidence, prior = self.effect_mask(row, composite, obj)
        # the light prior's shadows of other instances it rested on (null: no prior)
        meta |= {
            "effects": effect_source,
            "background": f"{self.inpainter.name}+relight",
            "light_prior_n": None if prior is None else prior.n,
        }
        relit = shadow_relit(composite, obj, effect_in, cfg.relight_smooth_px)
        return _Job(row, composite, obj, meta, fill_from=relit, shadow_confidence=shadow_confidence)

    def _layers(self, job: _Job) -> None:
        """Decompose the photo over the job's background, then the physical and quality checks."""
        cfg = self.cfg.masks
        row, composite, obj, background = job.row, job.composite, job.obj, job.background
        assert background is not None
        layers = decompose(composite, background, obj, cfg.soft_edge_px)
        effect = layers.effect > 0
        # the layers go on the row before the checks: a reject keeps thumbnails of what it was judged on
        for column in ("background", "foreground", "mask", "effect"):
            set_image(row, column, getattr(layers, column))
        if self._check(row, composite, background, layers.foreground, obj, effect):
            return
        quality = measure(composite, background, obj, effect)
        failed = failures(quality, cfg.quality) if cfg.quality.enabled else []
        if failed:
            (reason, detail), more = failed[0], [f"{r}: {d}" for r, d in failed[1:]]
            reject(row, self.name, reason, detail + (f"; also {'; '.join(more)}" if more else ""))
            return
        for col in ("clean", "ann_mask", "ann_effect", "ann_instances"):  # consumed: keep blocks small downstream
            row[col] = None
        update_meta(
            row,
            self.name,
            {
                **job.meta,
                "psnr": round(float(row["psnr"]), 3),
                "object_px": int(obj.sum()),
                "effect_px": int(effect.sum()),
                "quality": quality.as_dict(),
                "shadow_confidence": job.shadow_confidence,
                **({"fill": job.window} if job.window else {}),
            },
        )

    @staticmethod
    def _agreement(obj: np.ndarray, prompt: Prompt) -> float | None:
        """IoU of the segmenter's mask with the annotation (its mask, else its box); None without either."""
        if prompt.mask is not None:
            return iou(obj, prompt.mask)
        box = bbox_of(obj)
        if prompt.box is not None and box is not None:  # _layers has rejected an empty object already
            return box_iou(box, prompt.box)
        return None

    def _check(self, row: Row, composite, background, foreground, obj, effect) -> bool:
        """Physical checks; returns True when the row was rejected. Raises :class:`LayerIntegrityError` when
        the layers do not recomposite the photo."""
        cfg = self.cfg.masks
        alpha = foreground[..., 3]
        if not (alpha[obj & ~dilate(~obj, cfg.soft_edge_px)] == 255).all():
            reject(row, self.name, Reason.ALPHA_OUT_OF_RANGE, "object interior is not opaque")
            return True
        if effect.any():
            # one labelling pass: a component is attached when any of its pixels lies near the object
            n, labels, stats, _ = cv2.connectedComponentsWithStats(effect.astype(np.uint8))
            attached = set(np.unique(labels[dilate(obj, cfg.max_effect_gap_px)]).tolist())
            min_area = 0.02 * effect.sum()
            big = [i for i in range(1, n) if i not in attached and stats[i, cv2.CC_STAT_AREA] > min_area]
            if big:
                reject(
                    row,
                    self.name,
                    Reason.EFFECT_DETACHED,
                    f"{len(big)} effect region(s) farther than {cfg.max_effect_gap_px} px from the object",
                )
                return True
        value = recomposite_psnr(composite, background, foreground)
        row["psnr"] = min(value, 99.0)
        if value < cfg.psnr_floor:  # F and α are solved from C and B: only a bug in the layering gets here
            raise LayerIntegrityError(
                f"recomposite integrity: over(F, B) is {value:.2f} dB from C (< masks.psnr_floor {cfg.psnr_floor})"
            )
        return False
