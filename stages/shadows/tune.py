"""Tune the rule shadow detector honestly: ``python -m stages.shadows.tune [--json report.json]``.

Every knob is chosen leave-one-photo-out over every annotated real instance
(:func:`curation.core.realdata.every_real_instance`). For each photo, on the *other* photos' instances only:

1. the rule's parameters (:data:`GRID`): the best mean shadow IoU;
2. the light prior's knobs (``evaluate.PRIOR_GRID``, with that rule): the cut and stretch by mean IoU, the
   confidence knob by the confidence's miss-vs-hit ROC-AUC;
3. the stage-4 threshold ``curate.min_shadow_confidence`` (with that rule, with and without the prior): the
   highest value that keeps :data:`KEEP` of the found shadows (IoU ≥ 0.5) among those instances and the rendered
   scenes' (seeds :data:`CONFIDENCE_SEEDS`, where the rule really misses shadows; no real photo): a missed shadow
   ships a wrong layer, a wrongly rejected one costs only a sample;

then this photo's instances are scored with those choices. The headline pools the held-out answers: mean IoU and
ROC-AUC (miss: IoU < 0.3) over every instance, with n, with and without the prior, and what the held-out
thresholds reject. The choices made on all photos are what ships; their in-sample figures are printed too and
are not a result.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np

from curation.core.config.masks import DetectorOptions
from curation.core.morphology import iou
from curation.core.realdata import RealInstance, every_real_instance
from curation.core.scenes import render_scene
from stages.shadows import ShadowDetector, build_detector
from stages.shadows.evaluate import (
    MISSED,
    PRIOR_GRID,
    Scored,
    choose_prior,
    held_out,
    leave_one_photo_out,
    print_rows,
    print_summary,
    scored_instances,
    summary,
    with_prior,
)
from stages.shadows.light import PriorKnobs
from stages.shadows.rule import RuleShadowDetector

GRID: dict[str, tuple[float, ...]] = {
    "ratio": (0.84, 0.88, 0.92),
    "window": (0.5, 0.8, 1.2),
    "search": (0.6, 0.8, 1.2),
    "base_band": (0.2, 0.35),
    "chroma_tol": (0.3, 0.45),
}
CONFIDENCE_SEEDS = range(5000, 5080)  # rendered dev scenes for the confidence threshold, apart from every other use
FOUND = 0.5  # IoU at or above: a found shadow (the threshold keeps KEEP of them)
KEEP = 0.8
VARIANTS = ("without_prior", "with_prior")


def scene_instances(seeds: Sequence[int]) -> list[RealInstance]:
    """The rendered scenes' shadows worth losing (at least 5 % of their object). Each is a "photo" of its own:
    a scene shears every object's shadow its own random way, so its objects say nothing about one light and
    the prior must not read one there."""
    out = []
    for seed in seeds:
        scene = render_scene(seed, 256, 2, 0.0)
        for k, inst in enumerate(scene.instances):
            if inst.effect.sum() >= 0.05 * inst.mask.sum():
                name = f"scene/{seed}/{k}"
                none = np.zeros_like(inst.mask)
                out.append(RealInstance(name, name, scene.composite, inst.mask, inst.effect, None, none))
    return out


def choose_threshold(confidence: np.ndarray, ious: np.ndarray, keep: float = KEEP) -> float:
    """The highest confidence threshold that keeps ``keep`` of the found shadows (rejecting the most misses)."""
    found = ious >= FOUND
    ok = [t for t in np.unique(np.round(confidence, 3)) if (confidence[found] >= t).mean() >= keep]
    return float(max(ok)) if ok else 0.0


@dataclass
class Protocol:
    """The choices for any set of training photos, from answers computed once on every instance."""

    instances: list[RealInstance]
    grid: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(GRID))
    prior_grid: Sequence[PriorKnobs] = PRIOR_GRID
    scenes: list[RealInstance] = field(default_factory=list)
    _answers: dict[int, dict[str, Any]] = field(default_factory=dict)

    def rule(self, c: int) -> ShadowDetector:
        return build_detector(DetectorOptions.model_validate(self.combos[c]))

    @cached_property
    def combos(self) -> list[dict[str, float]]:
        return [dict(zip(self.grid, values, strict=True)) for values in itertools.product(*self.grid.values())]

    @cached_property
    def photos(self) -> list[str]:
        return [i.photo for i in self.instances]

    @cached_property
    def scored(self) -> np.ndarray:
        return scored_instances(self.instances)

    @cached_property
    def rule_iou(self) -> np.ndarray:
        """(combos, instances): the shadow IoU of every rule parameter set on every instance."""
        return np.array(
            [
                [iou(self.rule(c).detect(i.composite, i.mask), i.shadow) for i in self.instances]
                for c in range(len(self.combos))
            ]
        )

    def answers(self, c: int) -> dict[str, Any]:
        """Rule ``c``'s scored answers on every instance and on the rendered scenes, without the prior and under
        each of the prior's knobs (computed once per rule a fold chooses)."""
        if c not in self._answers:
            rule = self.rule(c)
            found: dict[str, Any] = {}
            for key, instances in (("real", self.instances), ("scenes", self.scenes)):
                base = [rule.detect_scored(i.composite, i.mask) for i in instances]
                found[key] = (Scored.of(base, instances), with_prior(rule, instances, base, self.prior_grid))
            own, after = found["real"]
            self._answers[c] = {
                "without_prior": own,
                "prior": {kn: Scored.of(d, self.instances) for kn, d in after.items()},
                "scenes": found["scenes"],
            }
        return self._answers[c]

    def choose(self, train: np.ndarray) -> dict[str, Any]:
        """Every knob, from the instances ``train`` marks (and the rendered scenes, for the threshold)."""
        train = train & self.scored
        c = int(np.argmax(self.rule_iou[:, train].mean(axis=1)))
        a = self.answers(c)
        knobs = choose_prior(a["prior"], train)
        variants = {"without_prior": a["without_prior"], "with_prior": a["prior"][knobs]}
        scene_own, scene_after = a["scenes"]
        scenes = {"without_prior": scene_own, "with_prior": Scored.of(scene_after[knobs], self.scenes)}
        thresholds = {
            v: choose_threshold(
                np.concatenate([s.confidence[train], scenes[v].confidence]),
                np.concatenate([s.iou[train], scenes[v].iou]),
            )
            for v, s in variants.items()
        }
        return {
            "tuned_on": sorted({p for p, t in zip(self.photos, train, strict=True) if t}),
            "rule": c,
            "prior": knobs,
            "threshold": thresholds,
        }

    def variant(self, choice: dict[str, Any], v: str) -> Scored:
        a = self.answers(choice["rule"])
        return a["without_prior"] if v == "without_prior" else a["prior"][choice["prior"]]


def _variant(proto: Protocol, v: str, choice: dict[str, Any]) -> Scored:
    return proto.variant(choice, v)


def tune(
    instances: Sequence[RealInstance] | None = None,
    grid: dict[str, tuple[float, ...]] | None = None,
    prior_grid: Sequence[PriorKnobs] = PRIOR_GRID,
    seeds: Sequence[int] = CONFIDENCE_SEEDS,
) -> dict[str, Any]:
    """The leave-one-photo-out report: per-instance held-out answers, their summaries, each fold's choices, and
    the choices made on all photos (what ships)."""
    proto = Protocol(
        list(every_real_instance() if instances is None else instances),
        dict(GRID if grid is None else grid),
        prior_grid,
        scene_instances(seeds),
    )
    photos, scored = proto.photos, proto.scored
    folds = leave_one_photo_out(photos, proto.choose)
    held = {v: held_out(folds, photos, partial(_variant, proto, v)) for v in VARIANTS}
    limit = {v: np.array([folds[p]["threshold"][v] for p in photos]) for v in VARIANTS}
    final = proto.choose(np.ones(len(photos), bool))
    in_sample = {v: proto.variant(final, v) for v in VARIANTS}
    rows = []
    for n, inst in enumerate(proto.instances):
        row: dict[str, Any] = {"photo": inst.photo, "instance": inst.name, "scored": bool(scored[n])}
        for v, prefix in zip(VARIANTS, ("", "prior_"), strict=True):
            row[prefix + "iou"] = round(float(held[v].iou[n]), 3)
            row[prefix + "confidence"] = round(float(held[v].confidence[n]), 3)
            row[prefix + "rejected"] = bool(held[v].confidence[n] < limit[v][n])
        rows.append(row)
    return {
        "rows": rows,
        "leave_one_photo_out": {
            v: summary(held[v], scored, photos) | _rejects(held[v], limit[v], scored) for v in VARIANTS
        },
        "folds": {p: _readable(proto, ch) for p, ch in folds.items()},
        "chosen_on_all": _readable(proto, final)
        | {"in_sample": {v: summary(in_sample[v], scored, photos) for v in VARIANTS}},
        "shipped_rule_in_sample_iou": round(
            float(
                np.mean(
                    [
                        iou(RuleShadowDetector().detect(i.composite, i.mask), i.shadow)
                        for i, s in zip(proto.instances, scored, strict=True)
                        if s
                    ]
                )
            ),
            4,
        ),
        "n_scenes": len(proto.scenes),
    }


def _rejects(s: Scored, limit: np.ndarray, scored: np.ndarray) -> dict[str, Any]:
    """What each held-out photo's threshold rejects: misses rejected and found shadows kept, with n."""
    missed, found = scored & (s.iou < MISSED), scored & (s.iou >= FOUND)
    rejected = s.confidence < limit
    return {
        "misses_rejected": f"{int((rejected & missed).sum())}/{int(missed.sum())}",
        "found_kept": f"{int((~rejected & found).sum())}/{int(found.sum())}",
    }


def _readable(proto: Protocol, choice: dict[str, Any]) -> dict[str, Any]:
    k: PriorKnobs = choice["prior"]
    return {
        "tuned_on": choice["tuned_on"],
        "rule": proto.combos[choice["rule"]],
        "prior": {"margin": k.margin, "stretch": k.stretch, "small": k.small},
        "threshold": choice["threshold"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    report = tune()
    print("held out (each photo scored with the knobs chosen on the others):")
    print_rows(report["rows"])
    for v, s in report["leave_one_photo_out"].items():
        print_summary(f"leave-one-photo-out, {v}", s)
        print(f"  held-out thresholds: misses rejected {s['misses_rejected']}, found shadows kept {s['found_kept']}")
    for photo, fold in report["folds"].items():
        print(f"fold {photo}: rule {fold['rule']}, prior {fold['prior']}, thresholds {fold['threshold']}")
    final = report["chosen_on_all"]
    print(
        f"chosen on all photos (ships): rule {final['rule']}, prior {final['prior']}, thresholds {final['threshold']}"
    )
    for v, s in final["in_sample"].items():
        print_summary(f"in-sample (not a result), {v}", s)
    print(f"the shipped rule's in-sample mean IoU {report['shipped_rule_in_sample_iou']}; {report['n_scenes']} scenes")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
