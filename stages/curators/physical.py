"""The ``physical`` curator: the hand-made rule of :mod:`curator_model.physical`, no model."""

from __future__ import annotations

from curation.core.config import RunConfig
from curation.core.quality import measure
from curation.core.schema import Reason, Row, StageName, get_json, reject, require_image, update_meta
from curator_model.physical import PHYSICAL_THRESHOLD, ghost_ratio, physical_score
from stages.curators.base import CuratorBackend


class PhysicalCurator(CuratorBackend):
    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        self.threshold = cfg.curate.threshold if cfg.curate.threshold is not None else PHYSICAL_THRESHOLD

    def score(self, rows: list[Row]) -> None:
        for row in rows:
            background, mask = require_image(row, "background"), require_image(row, "mask")
            quality = get_json(row, "meta").get("masks", {}).get("quality")
            if quality is None:  # stage 2 records it on every row it passes; measure rows that came another way
                quality = measure(
                    require_image(row, "composite"), background, mask, require_image(row, "effect")
                ).as_dict()
            ghost = ghost_ratio(background, mask)
            score = physical_score(ghost, quality, self.cfg.masks.quality)
            row["score"] = round(score, 5)
            update_meta(
                row,
                StageName.CURATE,
                {"backend": "physical", "ghost_ratio": round(ghost, 4), "threshold": self.threshold},
            )
            if score < self.threshold:
                reject(
                    row,
                    StageName.CURATE,
                    Reason.LOW_CURATOR_SCORE,
                    f"score {score:.3f} < {self.threshold} (ghost ratio {ghost:.2f})",
                )
