"""A shadow detector on every real instance, with and without the photo's light prior:
``python -m stages.shadows.evaluate [--json report.json]``.

Every instance :func:`curation.core.realdata.every_real_instance` holds (DESOBA, DESOBAv2 and the plaza photo;
targets and the other annotated objects) with a shadow is scored: the shadow IoU and the confidence, and the
confidence's ROC-AUC at telling a miss (IoU < 0.3) from a hit. Each instance's prior comes from the detector's
shadows of the *other* annotated objects of its photo. The prior's knobs are chosen leave-one-photo-out: for each
photo, on the other photos' instances (mean IoU for the search knobs, ROC-AUC for the confidence knob), then
scored on this photo's; the table pools those held-out answers. :func:`evaluate` takes any backend
(``stages.shadows.DETECTORS``); the rule's own knobs are tuned, leave-one-photo-out too, by
``python -m stages.shadows.tune``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from curation.core.config.masks import DetectorOptions
from curation.core.morphology import iou
from curation.core.realdata import RealInstance, every_real_instance
from stages.shadows import ShadowDetection, ShadowDetector, build_detector
from stages.shadows.light import PriorKnobs, apply_prior, prior_from, reaching, touches_frame

T = TypeVar("T")

MISSED = 0.3  # IoU below: a missed shadow
MARGINS: tuple[float | None, ...] = (None, 0.0, 0.25, 0.5)
STRETCHES = (0.0, 1.0, 1.5)
SMALL_GRID = (0.0, 0.25, 0.5)
#: the light prior's knobs, in the order ties are broken (first wins: no cut, no stretch, no area test)
PRIOR_GRID = tuple(
    PriorKnobs(margin=m, stretch=s, small=small) for m, s, small in itertools.product(MARGINS, STRETCHES, SMALL_GRID)
)


def roc_auc(confidence: np.ndarray, missed: np.ndarray) -> float:
    """P(a hit's confidence > a miss's), ties half: how well the confidence ranks misses below hits."""
    hits, misses = confidence[~missed], confidence[missed]
    if not len(hits) or not len(misses):
        return float("nan")
    diff = hits[:, None] - misses[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def leave_one_photo_out(photos: Sequence[str], choose: Callable[[np.ndarray], T]) -> dict[str, T]:
    """For each photo, ``choose(train)`` where ``train`` marks the instances of the *other* photos: whatever a
    held-out photo is then scored with was chosen without it."""
    arr = np.asarray(photos)
    return {p: choose(arr != p) for p in dict.fromkeys(photos)}


@dataclass(frozen=True)
class Scored:
    """One detector's answers on a list of instances: shadow IoU and confidence per instance."""

    iou: np.ndarray
    confidence: np.ndarray

    @classmethod
    def of(cls, found: Sequence[ShadowDetection], instances: Sequence[RealInstance]) -> Scored:
        return cls(
            np.array([iou(d.mask, i.shadow) for d, i in zip(found, instances, strict=True)]),
            np.array([d.confidence for d in found]),
        )

    def mean_iou(self, where: np.ndarray) -> float:
        return float(self.iou[where].mean()) if where.any() else float("nan")

    def auc(self, where: np.ndarray) -> float:
        return roc_auc(self.confidence[where], self.iou[where] < MISSED)


def scored_instances(instances: Sequence[RealInstance]) -> np.ndarray:
    """The instances with a shadow to lose (the others have no IoU to score)."""
    return np.array([bool(i.shadow.any()) for i in instances])


def with_prior(
    detector: ShadowDetector,
    instances: Sequence[RealInstance],
    base: Sequence[ShadowDetection],
    grid: Sequence[PriorKnobs] = PRIOR_GRID,
) -> dict[PriorKnobs, list[ShadowDetection]]:
    """Every instance's detection under each of the prior's knobs; the prior of an instance comes from ``base``,
    the detector's own answers on the photo's *other* instances. No prior (nothing confident around it, or an
    object cut by the frame): its own answer, whatever the knobs."""
    after: dict[PriorKnobs, list[ShadowDetection]] = {k: [] for k in grid}
    for k, inst in enumerate(instances):
        prior = prior_from([(j.mask, base[n]) for n, j in enumerate(instances) if j.photo == inst.photo and n != k])
        if prior is None or touches_frame(inst.mask):
            for kn in grid:
                after[kn].append(base[k])
            continue
        searched = {
            s: base[k] if not s else reaching(detector, prior, s).detect_scored(inst.composite, inst.mask)
            for s in {kn.stretch for kn in grid}
        }
        for kn in grid:
            after[kn].append(apply_prior(searched[kn.stretch], inst.mask.astype(bool), prior, kn))
    return after


def choose_prior(scores: dict[PriorKnobs, Scored], train: np.ndarray) -> PriorKnobs:
    """The knobs for the photos ``train`` marks: the search knobs (cut, stretch) by mean IoU, then among those the
    confidence knob by ROC-AUC (a NaN AUC, no miss to rank, never wins over a number)."""
    best = max(scores, key=lambda kn: round(scores[kn].mean_iou(train), 6))
    same = [kn for kn in scores if (kn.margin, kn.stretch) == (best.margin, best.stretch)]
    return max(same, key=lambda kn: np.nan_to_num(scores[kn].auc(train), nan=-1.0))


def held_out(folds: dict[str, T], photos: Sequence[str], pick: Callable[[T], Scored]) -> Scored:
    """Each instance's answer under the choice its photo's fold made (pooled over the folds)."""
    arr = np.asarray(photos)
    ious, confs = np.zeros(len(arr)), np.zeros(len(arr))
    for photo, choice in folds.items():
        here = arr == photo
        s = pick(choice)
        ious[here], confs[here] = s.iou[here], s.confidence[here]
    return Scored(ious, confs)


def summary(s: Scored, scored: np.ndarray, photos: Sequence[str]) -> dict:
    """Mean IoU and ROC-AUC with their n; DESOBAv2 apart (no parameter of the rule was ever chosen on it before
    the leave-one-photo-out tuning)."""
    v2 = scored & np.char.startswith(np.asarray(photos), "desobav2/")
    missed = s.iou[scored] < MISSED
    return {
        "mean_iou": round(s.mean_iou(scored), 4),
        "n": int(scored.sum()),
        "mean_iou_desobav2": round(s.mean_iou(v2), 4),
        "n_desobav2": int(v2.sum()),
        "roc_auc": round(s.auc(scored), 4),
        "misses": int(missed.sum()),
        "hits": int((~missed).sum()),
    }


def evaluate(detector: ShadowDetector | None = None, instances: Sequence[RealInstance] | None = None) -> dict:
    """Per-instance rows (photo, instance, IoU and confidence without and with the prior, its knobs chosen
    leave-one-photo-out) and the summaries, for any detector backend (the shipped default by default)."""
    detector = detector or build_detector(DetectorOptions())
    instances = list(every_real_instance() if instances is None else instances)
    photos = [i.photo for i in instances]
    base = [detector.detect_scored(i.composite, i.mask) for i in instances]
    own = Scored.of(base, instances)
    after = {kn: Scored.of(d, instances) for kn, d in with_prior(detector, instances, base).items()}
    scored = scored_instances(instances)
    folds = leave_one_photo_out(photos, lambda train: choose_prior(after, train & scored))
    prior = held_out(folds, photos, after.__getitem__)
    chosen = choose_prior(after, scored)
    return {
        "detector": detector.name,
        "rows": [
            {
                "photo": i.photo,
                "instance": i.name,
                "scored": bool(s),
                "iou": round(float(own.iou[n]), 3),
                "confidence": round(float(own.confidence[n]), 3),
                "prior_iou": round(float(prior.iou[n]), 3),
                "prior_confidence": round(float(prior.confidence[n]), 3),
            }
            for n, (i, s) in enumerate(zip(instances, scored, strict=True))
        ],
        "without_prior": summary(own, scored, photos),
        "prior_leave_one_photo_out": summary(prior, scored, photos),
        "prior_folds": {p: _knobs(k) for p, k in folds.items()},
        "prior_chosen_on_all": _knobs(chosen),
    }


def _knobs(k: PriorKnobs) -> dict:
    return {"margin": k.margin, "stretch": k.stretch, "small": k.small}


def print_rows(rows: list[dict], left: str = "", right: str = "prior_") -> None:
    """The per-instance table: IoU and confidence of two variants side by side."""
    print(f"{'instance':34s} {'IoU':>6s} {'conf':>6s} | {'IoU+prior':>9s} {'conf+prior':>10s}")
    for r in rows:
        mark = "" if r["scored"] else "  (no shadow to lose: not scored)"
        print(
            f"{r['instance']:34s} {r[left + 'iou']:6.3f} {r[left + 'confidence']:6.3f} | "
            f"{r[right + 'iou']:9.3f} {r[right + 'confidence']:10.3f}{mark}"
        )


def print_summary(key: str, s: dict) -> None:
    print(
        f"{key}: mean IoU {s['mean_iou']:.3f} (n={s['n']}; DESOBAv2 {s['mean_iou_desobav2']:.3f}, "
        f"n={s['n_desobav2']}); miss-vs-hit ROC-AUC {s['roc_auc']:.3f} (misses {s['misses']}, hits {s['hits']})"
    )


def score_exported(checkpoint: Path, out: Path | None) -> int:
    """An exported shadow network on every scored instance (no light prior): IoU, confidence, ROC-AUC.
    Only a network that never saw these photos gives held-out figures (``shadow_model.evaluate`` pools folds)."""
    from curation.core.config.masks import DetectorOptions
    from stages.shadows import build_detector

    detector = build_detector(DetectorOptions(backend="exported", checkpoint=checkpoint, device="cpu"))
    instances = every_real_instance()
    kept = [i for i, s in zip(instances, scored_instances(instances), strict=True) if s]
    found = [detector.detect_scored(i.composite, i.mask) for i in kept]
    ious = np.array([iou(d.mask, i.shadow) for d, i in zip(found, kept, strict=True)])
    conf = np.array([d.confidence for d in found])
    rows = [
        {"instance": i.name, "iou": round(float(v), 3), "confidence": round(float(c), 3)}
        for i, v, c in zip(kept, ious, conf, strict=True)
    ]
    for r in rows:
        print(f"{r['instance']:34s} {r['iou']:6.3f} {r['confidence']:6.3f}")
    missed = ious < MISSED
    summary = {
        "mean_iou": round(float(ious.mean()), 4),
        "n": len(kept),
        "roc_auc": round(roc_auc(conf, missed), 4),
        "misses": int(missed.sum()),
        "hits": int((~missed).sum()),
    }
    print(f"{detector.name}: {summary}")
    if out:
        out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path)
    p.add_argument("--checkpoint", type=Path, help="score this exported network (backend: exported) instead")
    args = p.parse_args(argv)
    if args.checkpoint:
        return score_exported(args.checkpoint, args.json)
    report = evaluate()
    print_rows(report["rows"])
    for key in ("without_prior", "prior_leave_one_photo_out"):
        print_summary(key, report[key])
    print(f"prior knobs per held-out photo: {report['prior_folds']}; chosen on all: {report['prior_chosen_on_all']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
