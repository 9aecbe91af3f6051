"""Scoring exported shadow networks on the real instances, each by the network that never saw its photo:
``python -m shadow_model.evaluate [--checkpoint P]`` prints the learned detector next to the rule.

Same measures as :mod:`stages.shadows.evaluate`: every instance with a shadow, its IoU and the backend's
confidence, the confidence's ROC-AUC at telling a miss (IoU < 0.3) from a hit.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curation.core.config.masks import DetectorOptions
from curation.core.morphology import iou
from curation.core.realdata import RealInstance, every_real_instance
from stages.shadows import build_detector
from stages.shadows.evaluate import MISSED, roc_auc
from stages.shadows.rule import RuleShadowDetector


@dataclass
class Scores:
    names: list[str]
    iou: np.ndarray
    confidence: np.ndarray

    def summary(self) -> dict:
        missed = self.iou < MISSED
        v2 = np.array([n.startswith("desobav2/") for n in self.names])
        return {
            "n": len(self.names),
            "mean_iou": round(float(self.iou.mean()), 4),
            "mean_iou_desobav2": round(float(self.iou[v2].mean()), 4) if v2.any() else None,
            "n_desobav2": int(v2.sum()),
            "roc_auc": round(roc_auc(self.confidence, missed), 4),
            "misses": int(missed.sum()),
            "hits": int((~missed).sum()),
        }

    def rows(self) -> list[dict]:
        return [
            {"instance": n, "iou": round(float(v), 3), "confidence": round(float(c), 3)}
            for n, v, c in zip(self.names, self.iou, self.confidence, strict=True)
        ]


def scored(instances: list[RealInstance]) -> list[RealInstance]:
    """The instances with a shadow to find (as :mod:`stages.shadows.evaluate` counts them)."""
    return [i for i in instances if i.shadow.any()]


def score(instances: list[RealInstance], checkpoint_of: dict[str, str]) -> Scores:
    """Each instance through the ``exported`` backend loading ``checkpoint_of[photo]``."""
    detectors = {
        path: build_detector(DetectorOptions(backend="exported", checkpoint=Path(path), device="cpu"))
        for path in set(checkpoint_of.values())
    }
    kept = scored(instances)
    found = [detectors[checkpoint_of[i.photo]].detect_scored(i.composite, i.mask) for i in kept]
    return Scores(
        [i.name for i in kept],
        np.array([iou(d.mask, i.shadow) for d, i in zip(found, kept, strict=True)]),
        np.array([d.confidence for d in found]),
    )


def score_rule(instances: list[RealInstance]) -> Scores:
    kept = scored(instances)
    found = [RuleShadowDetector().detect_scored(i.composite, i.mask) for i in kept]
    return Scores(
        [i.name for i in kept],
        np.array([iou(d.mask, i.shadow) for d, i in zip(found, kept, strict=True)]),
        np.array([d.confidence for d in found]),
    )


def main(argv: list[str] | None = None) -> int:
    from shadow_model.train import CARD_NAME, CHECKPOINT

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--card", type=Path, default=CHECKPOINT / CARD_NAME, help="the held-out rows of a training run")
    args = p.parse_args(argv)
    card = json.loads(args.card.read_text())
    learned = {r["instance"]: r for r in card["per_instance_held_out"]}
    rule = score_rule(every_real_instance())
    print(f"{'instance':34s} {'learned IoU':>11s} {'conf':>6s} | {'rule IoU':>8s} {'conf':>6s}")
    for r in rule.rows():
        m = learned.get(r["instance"], {"iou": float("nan"), "confidence": float("nan")})
        print(f"{r['instance']:34s} {m['iou']:11.3f} {m['confidence']:6.3f} | {r['iou']:8.3f} {r['confidence']:6.3f}")
    print("learned (leave photos out):", card["held_out"]["folds"])
    print("learned, synthetic only (no real photo seen):", card["held_out"]["synthetic_only_base"])
    print("rule (shipped parameters):", rule.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
