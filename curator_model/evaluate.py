"""Metrics for any scorer of P(good), the threshold rules, and ``python -m curator_model.evaluate``.

Positive class = good. The shipped threshold is chosen for precision on the *real* samples of the calibration
split only (:func:`precision_threshold`, :func:`shipped`): among the real calibration samples that stage 2's
quality checks let through (what reaches stage 4 in a run), the lowest threshold at which at least
``target_precision`` of what the curator keeps is good, i.e. the most good ones shipped while nine in ten of
those shipped are good. Precision and yield (good shipped / good) are then read, with their counts, on the real
photos never trained or calibrated on (the test split's and the ``unseen`` DESOBAv2 photos'). The older rule,
:func:`calibrate` (keep ``target_recall`` of the good samples of every kind), is recorded beside it in the model
card as a comparison.
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


def threshold_at_recall(p_good: np.ndarray, good: np.ndarray, target_recall: float) -> float:
    """The highest threshold that still keeps at least ``target_recall`` of the good samples."""
    scores = np.sort(p_good[good])[::-1]
    k = max(1, int(np.ceil(target_recall * len(scores))))
    return float(scores[k - 1])


def calibrate(p_good: np.ndarray, y: np.ndarray, kind: np.ndarray, target_recall: float) -> float:
    """The shipped threshold, from calibration data only: keeps ``target_recall`` of the good samples of each kind."""
    good = y == 0
    return min(
        (
            threshold_at_recall(p_good[kind == k], good[kind == k], target_recall)
            for k in np.unique(kind)
            if good[kind == k].any()
        ),
        default=1.0,
    )


def precision_threshold(p_good: np.ndarray, good: np.ndarray, target_precision: float) -> tuple[float, bool]:
    """The lowest threshold (one of the scores) at which the share of good among the samples kept
    (``p_good >= threshold``) is at least ``target_precision``, and True; when no threshold reaches it, the one of
    highest precision (the highest of those on a tie) and False. No sample at all: 1.0 (keep nothing), False."""
    if not len(p_good):
        return 1.0, False
    order = np.argsort(-p_good, kind="stable")
    scores, hits = p_good[order], np.cumsum(good[order])
    last = np.r_[scores[1:] != scores[:-1], True]  # a threshold keeps every sample of its score
    precision = hits[last] / (np.flatnonzero(last) + 1)
    cuts = scores[last]
    ok = np.flatnonzero(precision >= target_precision)
    if len(ok):
        return float(cuts[ok[-1]]), True
    return float(cuts[int(np.argmax(precision))]), False


def shipped(p_good: np.ndarray, arrays: Arrays, threshold: float) -> dict:
    """What a run ships of ``arrays`` at ``threshold``: the samples stage 2's checks pass and the curator keeps.
    Precision (good among shipped) and yield (good shipped / good that reach stage 4), each with its counts."""
    reach = arrays.stage2_ok
    good = arrays.y == 0
    ship = reach & (p_good >= threshold)
    n_ship, n_good_ship, n_good = int(ship.sum()), int((ship & good).sum()), int((reach & good).sum())
    bad = {
        c: int((ship & (arrays.y == i)).sum()) for i, c in enumerate(CLASSES) if i and (ship & (arrays.y == i)).any()
    }
    return {
        "threshold": round(threshold, 6),
        "samples": int(len(good)),
        "reach_stage4": int(reach.sum()),
        "good": n_good,
        "shipped": n_ship,
        "shipped_good": n_good_ship,
        "shipped_bad_by_mode": bad,
        "precision": round(n_good_ship / n_ship, 4) if n_ship else None,
        "yield": round(n_good_ship / n_good, 4) if n_good else None,
        "instances": sorted({str(s).removeprefix("real:") for s in arrays.scene}),
    }


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


def real_table(results: dict[str, dict]) -> str:
    """A markdown table of :func:`shipped` results, one row per split."""
    lines = [
        "| real photos | threshold | reach stage 4 (good) | shipped | precision | yield | shipped bad by mode |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        bad = ", ".join(f"{m} {n}" for m, n in r["shipped_bad_by_mode"].items()) or "none"

        def f(v: float | None) -> str:
            return "–" if v is None else f"{v:.3f}"

        lines.append(
            f"| {name} | {r['threshold']:.4g} | {r['reach_stage4']} ({r['good']}) | {r['shipped']} | "
            f"{f(r['precision'])} ({r['shipped_good']}/{r['shipped']}) | {f(r['yield'])} "
            f"({r['shipped_good']}/{r['good']}) | {bad} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Score a checkpoint on the calibration, test and unseen splits at its own threshold (or ``--threshold``):
    per kind, and what a run would ship of the real photos. The data are made with the checkpoint's recorded
    stage-2 recipe (the training config's data sizes), from the same cache as training."""
    from curator_model.generate import UNSEEN, build_split
    from curator_model.layering import Stage2Recipe
    from curator_model.network import DEFAULT_CHECKPOINT, Curator
    from curator_model.train import load_train_config

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--threshold", type=float, help="default: the checkpoint's own")
    p.add_argument(
        "--config",
        type=Path,
        help="a train-curator YAML: its data sizes, cache, workers and stage-2 recipe (default: the checkpoint's)",
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    curator = Curator(args.checkpoint, "cpu")
    threshold = curator.spec.threshold if args.threshold is None else args.threshold
    d = load_train_config(args.config).data
    # the config's recipe when given (e.g. to score an older checkpoint on the layers a run makes today)
    recipe = d.stage2 if args.config else curator.spec.stage2 or Stage2Recipe()
    results, real = {}, {}
    for split in ("calibration", "test", UNSEEN):
        size = getattr(d, split)
        arrays = build_split(
            split,
            size.synthetic,
            size.composite,
            size.real_views,
            curator.spec.input_size,
            recipe,
            d.workers,
            d.cache_dir,
        )
        p_good = curator.predict(arrays.x)[:, 0]
        for kind, m in by_kind(p_good, arrays, threshold).items():
            results[f"{split} / {kind}"] = m
        real[split] = shipped(p_good[arrays.kind == "real"], arrays.only("real"), threshold)
    print(table(results))
    print()
    print(real_table(real))
    if args.json:
        args.json.write_text(json.dumps({"per_kind": results, "real_shipped": real}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
