"""The ``model`` curator: the trained network of :mod:`curator_model`, batched on the actor's device."""

from __future__ import annotations

import numpy as np

from curation.core.config import RunConfig
from curation.core.decompose import Triplet
from curation.core.schema import LAYER_MEMBERS, Reason, Row, StageName, reject, require_image, update_meta
from curator_model.features import features
from curator_model.layering import check_run
from curator_model.network import DEFAULT_CHECKPOINT, Curator, ModelSpec, load_checkpoint
from stages.curators.base import CuratorBackend


class ModelCurator(CuratorBackend):
    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        self.checkpoint = cfg.curate.checkpoint or DEFAULT_CHECKPOINT
        self.curator = Curator(self.checkpoint, cfg.curate.device)  # CheckpointError says which file and why
        self._check_recipe(cfg, self.curator.spec)
        self.threshold = cfg.curate.threshold if cfg.curate.threshold is not None else self.curator.spec.threshold

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        """A missing or unreadable checkpoint, or one trained on another fill, fails now, not in every actor."""
        _, spec = load_checkpoint(cfg.curate.checkpoint or DEFAULT_CHECKPOINT)
        cls._check_recipe(cfg, spec)

    @staticmethod
    def _check_recipe(cfg: RunConfig, spec: ModelSpec) -> None:
        """The network judges the layers it was trained on: the run's stage 2 must layer as its data were."""
        path = str(cfg.curate.checkpoint or DEFAULT_CHECKPOINT)
        check_run(spec.stage2, cfg.masks, path, cfg.curate.allow_fill_mismatch)

    def score(self, rows: list[Row]) -> None:
        spec = self.curator.spec
        scored, feats = [], []
        for row in rows:
            triplet = Triplet(*(require_image(row, c) for c in LAYER_MEMBERS))
            try:
                feats.append(features(triplet, spec.input_size))
            except ValueError as exc:
                reject(row, StageName.CURATE, Reason.SIZE_MISMATCH, f"layers do not fit together: {exc}")
                continue
            scored.append(row)
        if not scored:
            return
        probs = self.curator.predict(np.stack(feats), batch_size=len(feats))
        for row, p in zip(scored, probs, strict=True):
            score = float(p[0])
            k = 1 + int(np.argmax(p[1:]))
            row["score"] = round(score, 5)
            update_meta(
                row,
                StageName.CURATE,
                {
                    "backend": "model",
                    "checkpoint": self.checkpoint.name,
                    "arch": spec.arch,
                    "threshold": self.threshold,
                    "likely_failure": spec.classes[k],
                    "p_failure": round(float(p[k]), 4),
                },
            )
            if score < self.threshold:
                reject(
                    row,
                    StageName.CURATE,
                    Reason.LOW_CURATOR_SCORE,
                    f"P(good) {score:.3f} < {self.threshold:.3f}; most likely {spec.classes[k]} ({p[k]:.2f})",
                )
