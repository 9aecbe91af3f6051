"""The shadow detector on every real instance, with and without the photo's light prior:
``python -m stages.shadows.evaluate [--json report.json]``.

Every instance :func:`curation.core.realdata.every_real_instance` holds (DESOBA, DESOBAv2 and the plaza photo;
targets and the other annotated objects) with a shadow is scored: the shadow IoU and the
confidence, and the confidence's ROC-AUC at telling a miss (IoU < 0.3) from a hit. Each instance's prior comes
from the detector's shadows of the *other* annotated objects of its photo. The prior's knobs are chosen
leave-one-photo-out: for each photo, on the other photos' instances (mean IoU for the search knobs, ROC-AUC
for the confidence knob), then scored on this photo's; the table pools those held-out answers.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from curation.core.morphology import iou
from curation.core.realdata import RealInstance, every_real_instance
from stages.shadows import ShadowDetection
from stages.shadows.light import PriorKnobs, apply_prior, prior_from, reaching, touches_frame
from stages.shadows.rule import RuleShadowDetector

MISSED = 0.3  # IoU below: a missed shadow
MARGINS: tuple[float | None, ...] = (None, 0.0, 0.25, 0.5)
STRETCHES = (0.0, 1.0, 1.5)
SMALL_GRID = (0.0, 0.25, 0.5)


def roc_auc(confidence: np.ndarray, missed: np.ndarray) -> float:
    """P(a hit's confidence > a miss's), ties half: how well the confidence ranks misses below hits."""
    hits, misses = confidence[~missed], confidence[missed]
    if not len(hits) or not len(misses):
        return float("nan")
    diff = hits[:, None] - misses[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def _scored(inst: RealInstance) -> bool:
    return bool(inst.shadow.any())


def evaluate(detector: RuleShadowDetector | None = None) -> dict:
    """The per-instance table and the summaries before and after the prior (the shipped rule by default)."""
    detector = detector or RuleShadowDetector()
    instances = every_real_instance()
    base = [detector.detect_scored(i.composite, i.mask) for i in instances]
    photos = [i.photo for i in instances]
    knobs = [
        PriorKnobs(margin=m, stretch=s, small=small)
        for m, s in itertools.product(MARGINS, STRETCHES)
        for small in SMALL_GRID
    ]
    after: dict[PriorKnobs, list[ShadowDetection]] = {k: [] for k in knobs}
    for k, inst in enumerate(instances):
        prior = prior_from([(j.mask, base[n]) for n, j in enumerate(instances) if j.photo == inst.photo and n != k])
        if prior is None or touches_frame(inst.mask):  # today's answer, whatever the knobs
            for kn in knobs:
                after[kn].append(base[k])
            continue
        searched = {
            s: base[k] if not s else reaching(detector, prior, s).detect_scored(inst.composite, inst.mask)
            for s in STRETCHES
        }
        for kn in knobs:
            after[kn].append(apply_prior(searched[kn.stretch], inst.mask.astype(bool), prior, kn))
    scored = np.array([_scored(i) for i in instances])
    ious = {kn: np.array([iou(d.mask, i.shadow) for d, i in zip(after[kn], instances, strict=True)]) for kn in knobs}
    confs = {kn: np.array([d.confidence for d in after[kn]]) for kn in knobs}
    photo_arr = np.array(photos)
    held_iou, held_conf, folds = np.zeros(len(instances)), np.zeros(len(instances)), {}
    for photo in dict.fromkeys(photos):
        train = scored & (photo_arr != photo)
        best_search = max(knobs, key=lambda kn: ious[kn][train].mean())
        same = [kn for kn in knobs if (kn.margin, kn.stretch) == (best_search.margin, best_search.stretch)]
        best = max(same, key=lambda kn: roc_auc(confs[kn][train], ious[kn][train] < MISSED))
        here = photo_arr == photo
        held_iou[here], held_conf[here] = ious[best][here], confs[best][here]
        folds[photo] = {"margin": best.margin, "stretch": best.stretch, "small": best.small}
    base_iou = np.array([iou(d.mask, i.shadow) for d, i in zip(base, instances, strict=True)])
    base_conf = np.array([d.confidence for d in base])
    chosen = max(
        knobs,
        key=lambda kn: (
            round(float(ious[kn][scored].mean()), 6),
            roc_auc(confs[kn][scored], ious[kn][scored] < MISSED),
        ),
    )

    held = np.char.startswith(photo_arr, "desobav2/")

    def summary(v: np.ndarray, c: np.ndarray) -> dict:
        missed = v[scored] < MISSED
        return {
            "mean_iou": round(float(v[scored].mean()), 4),
            "n": int(scored.sum()),
            # the photos no parameter of the rule was ever chosen on
            "mean_iou_desobav2": round(float(v[scored & held].mean()), 4),
            "n_desobav2": int((scored & held).sum()),
            "roc_auc": round(roc_auc(c[scored], missed), 4),
            "misses": int(missed.sum()),
            "hits": int((~missed).sum()),
        }

    return {
        "rows": [
            {
                "instance": i.name,
                "scored": bool(s),
                "before_iou": round(float(bi), 3),
                "before_confidence": round(float(bc), 3),
                "after_iou": round(float(ai), 3),
                "after_confidence": round(float(ac), 3),
            }
            for i, s, bi, bc, ai, ac in zip(instances, scored, base_iou, base_conf, held_iou, held_conf, strict=True)
        ],
        "before": summary(base_iou, base_conf),
        "after_leave_one_photo_out": summary(held_iou, held_conf),
        "folds": folds,
        "chosen_on_all": {"margin": chosen.margin, "stretch": chosen.stretch, "small": chosen.small},
    }


def score_exported(checkpoint: Path, out: Path | None) -> int:
    """An exported shadow network on every scored instance (no light prior): IoU, confidence, ROC-AUC.
    Only a network that never saw these photos gives held-out figures (``shadow_model.evaluate`` pools folds)."""
    from curation.core.config.masks import DetectorOptions
    from stages.shadows import build_detector

    detector = build_detector(DetectorOptions(backend="exported", checkpoint=checkpoint, device="cpu"))
    kept = [i for i in every_real_instance() if _scored(i)]
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
    print(f"{'instance':34s} {'IoU':>6s} {'conf':>6s} | {'IoU+prior':>9s} {'conf+prior':>10s}")
    for r in report["rows"]:
        mark = "" if r["scored"] else "  (no shadow to lose: not scored)"
        print(
            f"{r['instance']:34s} {r['before_iou']:6.3f} {r['before_confidence']:6.3f} | "
            f"{r['after_iou']:9.3f} {r['after_confidence']:10.3f}{mark}"
        )
    for key in ("before", "after_leave_one_photo_out"):
        s = report[key]
        print(
            f"{key}: mean IoU {s['mean_iou']:.3f} (n={s['n']}; DESOBAv2 {s['mean_iou_desobav2']:.3f}, "
            f"n={s['n_desobav2']}); miss-vs-hit ROC-AUC {s['roc_auc']:.3f} "
            f"(misses {s['misses']}, hits {s['hits']})"
        )
    print(f"knobs per held-out photo: {report['folds']}; chosen on all photos: {report['chosen_on_all']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
