"""Stage 4, curate: score each triplet's quality and reject those below the threshold.

Two backends. ``model`` runs the trained curator (:mod:`curator_model`): a timm network over the stacked
triplet, loaded once per actor from a safetensors checkpoint, batched on the actor's device; it catches
the failures that still recomposite exactly (ghosts, lost shadows, stolen background, truncation,
occlusion). ``physical`` scores what physics can check without a model: the recomposite PSNR against
the floor, and a ghost test (does the background still show edges along the removed object's outline
that its surroundings do not have?). With either, a row whose shadow came from stage 2's detector with a
confidence below ``curate.min_shadow_confidence`` is rejected as a lost shadow before it is scored.
"""
from __future__ import annotations

import numpy as np

from curation.core.config import RunConfig
from curation.core.decompose import Triplet
from curation.core.schema import LAYER_MEMBERS, Reason, Row, StageName, get_json, reject, require_image, update_meta
from curation.core.stage import RowStage
from curator_model.physical import PHYSICAL_THRESHOLD, ghost_ratio, physical_score

class Curate(RowStage):
    name = StageName.CURATE
    reads = ("composite", "background", "foreground", "mask", "effect", "psnr")
    writes = ("score",)

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        c = cfg.curate
        self.curator = None
        self.threshold = c.threshold if c.threshold is not None else PHYSICAL_THRESHOLD
        if c.backend == "model":
            from curator_model.network import DEFAULT_CHECKPOINT, Curator

            self.checkpoint = c.checkpoint or DEFAULT_CHECKPOINT
            self.curator = Curator(self.checkpoint, c.device)  # CheckpointError says which file and why
            if c.threshold is None:
                self.threshold = self.curator.spec.threshold

    @staticmethod
    def preflight(cfg: RunConfig) -> None:
        """Fail on the driver, in a second, when the curator checkpoint is missing or unreadable."""
        if cfg.curate.backend == "model":
            from curator_model.network import DEFAULT_CHECKPOINT, load_checkpoint

            load_checkpoint(cfg.curate.checkpoint or DEFAULT_CHECKPOINT)

    def process(self, rows: list[Row]) -> None:
        scored = [row for row in rows if not self._missed_shadow(row)]
        if self.curator is None:
            self._physical(scored)
        else:
            self._model(scored)

    def _missed_shadow(self, row: Row) -> bool:
        """Reject a row whose shadow stage 2's detector does not trust: a missed shadow stays in the
        background and the layer ships without it, which no score of the layers alone reliably shows."""
        confidence = get_json(row, "meta").get("masks", {}).get("shadow_confidence")
        limit = self.cfg.curate.min_shadow_confidence
        if confidence is None or confidence >= limit:
            return False
        row["score"] = 0.0
        update_meta(row, self.name, {"likely_failure": "lost_shadow", "shadow_confidence": confidence,
                                     "min_shadow_confidence": limit})
        reject(row, self.name, Reason.LOW_CURATOR_SCORE,
               f"shadow detector confidence {confidence:.2f} < {limit}; most likely lost_shadow (a shadow the detector missed)")
        return True

    def _physical(self, rows: list[Row]) -> None:
        for row in rows:
            ghost = ghost_ratio(require_image(row, "background"), require_image(row, "mask"))
            score = physical_score(row["psnr"], ghost, self.cfg.masks.psnr_floor)
            row["score"] = round(score, 5)
            update_meta(row, self.name, {"backend": "physical", "ghost_ratio": round(ghost, 4), "threshold": self.threshold})
            if score < self.threshold:
                reject(row, self.name, Reason.LOW_CURATOR_SCORE,
                       f"score {score:.3f} < {self.threshold} (ghost ratio {ghost:.2f})")

    def _model(self, rows: list[Row]) -> None:
        from curator_model.features import features

        assert self.curator is not None, "process() picks _model only when a curator model is loaded"
        spec = self.curator.spec
        scored, feats = [], []
        for row in rows:
            triplet = Triplet(*(require_image(row, c) for c in LAYER_MEMBERS))
            try:
                feats.append(features(triplet, spec.input_size))
            except ValueError as exc:
                reject(row, self.name, Reason.SIZE_MISMATCH, f"layers do not fit together: {exc}")
                continue
            scored.append(row)
        if not scored:
            return
        probs = self.curator.predict(np.stack(feats), batch_size=len(feats))
        for row, p in zip(scored, probs, strict=True):
            score = float(p[0])
            k = 1 + int(np.argmax(p[1:]))
            row["score"] = round(score, 5)
            update_meta(row, self.name, {
                "backend": "model", "checkpoint": self.checkpoint.name, "arch": spec.arch, "threshold": self.threshold,
                "likely_failure": spec.classes[k], "p_failure": round(float(p[k]), 4),
            })
            if score < self.threshold:
                reject(row, self.name, Reason.LOW_CURATOR_SCORE,
                       f"P(good) {score:.3f} < {self.threshold:.3f}; most likely {spec.classes[k]} ({p[k]:.2f})")
