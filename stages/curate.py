"""Stage 4, curate: score each triplet's quality and reject those below the threshold.

The backend (``curate.backend``, :mod:`stages.curators`) is built once per actor. ``model`` runs the trained
curator (:mod:`curator_model`): a timm network over the stacked triplet, loaded from a safetensors checkpoint;
it catches the failures that still recomposite exactly (ghosts, lost shadows, stolen background, truncation,
occlusion). ``physical`` scores what physics can check without a model and what can fail: a ghost test and
stage 2's quality measures against their bounds (never the recomposite PSNR, which passes for any
background). With either, a row whose shadow came from stage 2's detector with a confidence below
``curate.min_shadow_confidence`` is rejected as a lost shadow before it is scored.
"""

from __future__ import annotations

from curation.core.config import RunConfig
from curation.core.schema import Reason, Row, StageName, get_json, reject, update_meta
from curation.core.stage import RowStage
from stages.curators import build_curator, check_curator


class Curate(RowStage):
    name = StageName.CURATE
    reads = ("composite", "background", "foreground", "mask", "effect")
    writes = ("score",)

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        self.curator = build_curator(cfg)

    @property
    def threshold(self) -> float:
        """The P(good) below which a row is rejected (the config's, else the backend's own)."""
        return self.curator.threshold

    @staticmethod
    def preflight(cfg: RunConfig) -> None:
        """Fail on the driver, in a second, when the curator cannot load (a missing checkpoint, say)."""
        check_curator(cfg)

    def process(self, rows: list[Row]) -> None:
        self.curator.score([row for row in rows if not self._missed_shadow(row)])

    def _missed_shadow(self, row: Row) -> bool:
        """Reject a row whose shadow stage 2's detector does not trust: a missed shadow stays in the
        background and the layer ships without it, which no score of the layers alone reliably shows."""
        confidence = get_json(row, "meta").get("masks", {}).get("shadow_confidence")
        limit = self.cfg.curate.min_shadow_confidence
        if confidence is None or confidence >= limit:
            return False
        row["score"] = 0.0
        update_meta(
            row,
            self.name,
            {"likely_failure": "lost_shadow", "shadow_confidence": confidence, "min_shadow_confidence": limit},
        )
        reject(
            row,
            self.name,
            Reason.LOW_CURATOR_SCORE,
            f"shadow detector confidence {confidence:.2f} < {limit}; most likely lost_shadow "
            "(a shadow the detector missed)",
        )
        return True
