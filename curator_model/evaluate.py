"""Held-out metrics for any scorer of P(good): the trained curator and the hand-made physical rule alike.

Positive class = good. The operating threshold keeps ``target_recall`` of the good samples (default 90 %);
at that threshold we report the precision (precision at 90 % recall) and, per failure mode, the fraction
of its samples rejected (recall of that mode).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from curator_model.network import CLASSES, FAILURES


def threshold_at_recall(p_good: np.ndarray, good: np.ndarray, target_recall: float) -> float:
    """The highest threshold that still keeps at least ``target_recall`` of the good samples."""
    scores = np.sort(p_good[good])[::-1]
    k = max(1, int(np.ceil(target_recall * len(scores))))
    return float(scores[k - 1])


def metrics(p_good: np.ndarray, y: np.ndarray, target_recall: float = 0.9, threshold: float | None = None) -> dict:
    """ROC-AUC, precision at ``target_recall``, threshold, and recall per failure mode at that threshold."""
    good = y == 0
    t = threshold_at_recall(p_good, good, target_recall) if threshold is None else threshold
    kept = p_good >= t
    per_mode = {m: round(float((~kept[y == CLASSES.index(m)]).mean()), 4) for m in FAILURES if (y == CLASSES.index(m)).any()}
    return {
        "roc_auc": round(float(roc_auc_score(good, p_good)), 4),
        f"precision_at_{int(target_recall * 100)}_recall": round(float(good[kept].mean()) if kept.any() else 0.0, 4),
        "threshold": round(t, 6),
        "good_kept": round(float(kept[good].mean()), 4),
        "recall_per_failure": per_mode,
        "samples": int(len(y)),
    }


def table(results: dict[str, dict]) -> str:
    """A markdown table, one column per scorer."""
    names = list(results)
    first = results[names[0]]
    prec = next(k for k in first if k.startswith("precision_at"))
    rows = [("ROC-AUC", "roc_auc"), (prec.replace("_", " "), prec), ("threshold", "threshold"), ("good kept", "good_kept")]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(f"{results[n][key]:.3f}" for n in names) + " |")
    for m in first["recall_per_failure"]:
        lines.append(f"| recall: {m} | " + " | ".join(f"{results[n]['recall_per_failure'][m]:.3f}" for n in names) + " |")
    return "\n".join(lines)
