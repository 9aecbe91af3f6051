"""Metrics for any scorer of P(good), the threshold rule, and ``python -m curator_model.evaluate``.

Positive class = good. The threshold is chosen on the calibration split only (:func:`calibrate`): the
highest one that keeps ``target_recall`` of the good samples of *every* kind there (composites on real
photos, rendered scenes, real photos), so that the kind with the least confident good samples (usually
the real photos) still keeps its share. Metrics are then read on the test split at that threshold, per
kind: ROC-AUC, the share of good samples kept, precision, and per failure mode the share rejected.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import roc_auc_score

from curator_model.network import CLASSES, FAILURES

if TYPE_CHECKING:
    from curator_model.generate import Arrays
    from curator_model.network import Curator


def threshold_at_recall(p_good: np.ndarray, good: np.ndarray, target_recall: float) -> float:
    """The highest threshold that still keeps at least ``target_recall`` of the good samples."""
    scores = np.sort(p_good[good])[::-1]
    k = max(1, int(np.ceil(target_recall * len(scores))))
    return float(scores[k - 1])


def calibrate(p_good: np.ndarray, y: np.ndarray, kind: np.ndarray, target_recall: float) -> float:
    """The shipped threshold, from calibration data only: keeps ``target_recall`` of the good samples of each kind."""
    good = y == 0
    return min(
        threshold_at_recall(p_good[kind == k], good[kind == k], target_recall)
        for k in np.unique(kind)
        if good[kind == k].any()
    )


def metrics(p_good: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """ROC-AUC, precision, good kept and recall per failure mode at ``threshold``."""
    good = y == 0
    kept = p_good >= threshold
    per_mode = {
        m: round(float((~kept[y == CLASSES.index(m)]).mean()), 4) for m in FAILURES if (y == CLASSES.index(m)).any()
    }
    both = good.any() and (~good).any()
    return {
        "roc_auc": round(float(roc_auc_score(good, p_good)), 4) if both else None,
        "precision": round(float(good[kept].mean()) if kept.any() else 0.0, 4),
        "threshold": round(threshold, 6),
        "good_kept": round(float(kept[good].mean()), 4) if good.any() else None,
        "recall_per_failure": per_mode,
        "samples": int(len(y)),
        "good": int(good.sum()),
    }


def by_kind(p_good: np.ndarray, arrays: Arrays, threshold: float) -> dict[str, dict]:
    """:func:`metrics` for each kind of sample in ``arrays`` (synthetic, composite, real)."""
    return {k: metrics(p_good[arrays.kind == k], arrays.y[arrays.kind == k], threshold) for k in np.unique(arrays.kind)}


def table(results: dict[str, dict]) -> str:
    """A markdown table, one column per result (e.g. ``curator / real`` or ``physical rule / synthetic``)."""
    names = list(results)
    modes = list(dict.fromkeys(m for r in results.values() for m in r["recall_per_failure"]))

    def cell(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key in (
        ("ROC-AUC", "roc_auc"),
        ("precision", "precision"),
        ("threshold", "threshold"),
        ("good kept", "good_kept"),
    ):
        lines.append(f"| {label} | " + " | ".join(cell(results[n][key]) for n in names) + " |")
    for m in modes:
        lines.append(
            f"| rejected: {m} | " + " | ".join(cell(results[n]["recall_per_failure"].get(m)) for n in names) + " |"
        )
    lines.append(
        "| samples (good) | " + " | ".join(f"{results[n]['samples']} ({results[n]['good']})" for n in names) + " |"
    )
    return "\n".join(lines)


def real_photo_report(curator: Curator, split: str, views: int, threshold: float) -> dict:
    """The split's real instances (:func:`generate.real_samples`, ``views`` views each) as a run would judge
    them: the curator at ``threshold``, stage 2's quality checks (``masks.quality`` defaults), and the two
    together (a sample either rejects never reaches the shards). Per label: samples and share rejected."""
    from curation.core.config import MasksConfig
    from curation.core.quality import failures, measure
    from curator_model.features import features
    from curator_model.generate import real_indices, real_samples

    opts = MasksConfig().quality
    samples = [s for i in real_indices(split) for v in range(views) for s in real_samples(i, v)]
    p = curator.predict(np.stack([features(s.triplet, curator.spec.input_size) for s in samples]))[:, 0]
    stage2 = np.array(
        [
            bool(
                failures(
                    measure(s.triplet.composite, s.triplet.background, s.triplet.mask > 0, s.triplet.effect > 0), opts
                )
            )
            for s in samples
        ]
    )
    labels = np.array([s.label for s in samples])
    curated = p < threshold
    return {
        c: {
            "samples": int((labels == c).sum()),
            "curator": round(float(curated[labels == c].mean()), 4),
            "stage2_checks": round(float(stage2[labels == c].mean()), 4),
            "either": round(float((curated | stage2)[labels == c].mean()), 4),
        }
        for c in CLASSES
        if (labels == c).any()
    }


def main(argv: list[str] | None = None) -> int:
    """Score a checkpoint on the calibration and test splits at its own threshold (before/after comparisons)."""
    from curator_model.generate import build_split
    from curator_model.network import DEFAULT_CHECKPOINT, Curator
    from curator_model.train import TrainConfig

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--threshold", type=float, help="default: the checkpoint's own")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument(
        "--real-views",
        type=int,
        default=0,
        help="instead: the real test photos, this many views of each instance, layered by the current "
        "code; share of each label rejected by the curator, by stage 2's checks, by either",
    )
    args = p.parse_args(argv)
    curator = Curator(args.checkpoint, "cpu")
    threshold = curator.spec.threshold if args.threshold is None else args.threshold
    if args.real_views:  # only the real test photos, layered now (no split to build)
        report = real_photo_report(curator, "test", args.real_views, threshold)
        print("| label | samples | rejected by the curator | by stage 2's checks | by either |\n|---|---|---|---|---|")
        for label, r in report.items():
            print(f"| {label} | {r['samples']} | {r['curator']:.3f} | {r['stage2_checks']:.3f} | {r['either']:.3f} |")
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
        return 0
    d = TrainConfig().data
    results = {}
    for split in ("calibration", "test"):
        size = getattr(d, split)
        arrays = build_split(
            split, size.synthetic, size.composite, size.real_views, curator.spec.input_size, d.workers, d.cache_dir
        )
        for kind, m in by_kind(curator.predict(arrays.x)[:, 0], arrays, threshold).items():
            results[f"{split} / {kind}"] = m
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
