"""``curate eval-real``: what the pipeline ships from real photos, judged against their truth alone.

Every real instance the project holds (:func:`curation.core.realdata.every_real_instance`: the DESOBA and
DESOBAv2 targets and their other instances, the annotated plaza photo) goes through the default path a user's
COCO-style source takes: instance selection over all the photo's annotations, stage 2 (the object annotation
only: the shadow comes from the detector), stage 4 with the configured curator. The caption stage is skipped:
it rejects only empty captions. Each shipped triplet is then judged against truth, never by the project's own
checks (thresholds: :data:`GOOD`, written down in docs/layers.md):

- ``lost_shadow``: the effect covers less than ``min_shadow_recall`` of the true shadow;
- ``took_background``: the effect reaches beyond the true shadow and object (grown ``slack_px``) over more than
  ``max_extra_effect`` × (true shadow area + 5 % of the object's);
- ``foreign_object``: the foreground holds (α > 0.5) more than ``max_foreign`` × the object's area of the
  photo's other annotated objects;
- ``smear_ghost``: where a shadow-free photo exists (targets), the background inside the true shadow is below
  ``min_background_psnr`` dB from it. Under the object itself no truth exists: a smear there is not judged.

Yield is good shipped ÷ instances that could be good (not cut by the photo's border). Nothing here is trained
or tuned per photo, so leave-one-photo-out applies to what was chosen on these photos before: the shadow
detector (tuned on DESOBA and the plaza, ``stages.shadows.tune``) and the curator (trained on DESOBA 05,
calibrated on the plaza): their photos are reported in-sample, DESOBAv2 held out. The lost-shadow check's
threshold is chosen here, so its catch and false-reject rates are given leave-one-photo-out.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports every plugin to build its parser: the heavy imports stay in the functions
    import numpy as np

    from curation.core.config import RunConfig
    from curation.core.realdata import RealInstance
    from curation.core.schema import Row

#: what "good" means, against truth (see the module docstring)
GOOD = {
    "min_shadow_recall": 0.5,
    "max_extra_effect": 0.5,
    "max_foreign": 0.02,
    "min_background_psnr": 20.0,
    "min_true_shadow": 0.02,  # a true shadow smaller than this × the object cannot be lost
    "slack_px": 3,
}
FAILURES = ("lost_shadow", "took_background", "smear_ghost", "foreign_object")
#: photos a tuned or trained part has seen (the detector's tuning set; the curator's train and calibration)
IN_SAMPLE_PREFIXES = ("desoba/", "bundled:")


@dataclass
class Verdict:
    """One instance's path through the pipeline and, if shipped, its judgement against truth."""

    name: str
    photo: str
    could_be_good: bool
    status: str  # "shipped" or the reject reason
    failures: list[str] = field(default_factory=list)
    values: dict[str, float | None] = field(default_factory=dict)
    score: float | None = None
    top_failure: str | None = None
    p_failure: float | None = None

    @property
    def in_sample(self) -> bool:
        return self.photo.startswith(IN_SAMPLE_PREFIXES)


def judge(inst: RealInstance, effect: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> Verdict:
    """Judge one shipped triplet against the instance's truth (``alpha`` in 0..1)."""
    from curation.core.compositing import psnr
    from curation.core.morphology import dilate

    obj, true_shadow = inst.mask, inst.shadow
    area = max(int(obj.sum()), 1)
    values: dict[str, float | None] = {}
    failures = []
    shadow_px = int(true_shadow.sum())
    recall = float((dilate(effect, 2) & true_shadow).sum() / shadow_px) if shadow_px else None
    union = int((effect | true_shadow).sum())
    iou = float((effect & true_shadow).sum() / union) if union else 1.0
    if recall is not None and shadow_px >= GOOD["min_true_shadow"] * area and recall < GOOD["min_shadow_recall"]:
        failures.append("lost_shadow")
    extra = float((effect & ~dilate(true_shadow | obj, int(GOOD["slack_px"]))).sum() / (shadow_px + 0.05 * area))
    if extra > GOOD["max_extra_effect"]:
        failures.append("took_background")
    if inst.shadowfree is not None and shadow_px:
        bg_psnr = float(psnr(background[true_shadow], inst.shadowfree[true_shadow]))
        values["background_psnr"] = bg_psnr
        if bg_psnr < GOOD["min_background_psnr"]:
            failures.append("smear_ghost")
    foreign = float(((alpha > 0.5) & inst.others & ~dilate(obj, 2)).sum() / area)
    if foreign > GOOD["max_foreign"]:
        failures.append("foreign_object")
    values.update(shadow_recall=recall, shadow_iou=iou, extra_effect=extra, foreign=foreign)
    return Verdict(inst.name, inst.photo, not inst.touches_border, "shipped", failures, values)


def _row(inst: RealInstance, k: int) -> Row:
    from curation.core.morphology import bbox_of
    from curation.core.schema import new_row

    box = bbox_of(inst.mask) or (0, 0, 0, 0)
    return new_row(
        key=f"real-{k:04d}",
        source="real",
        source_ref=inst.photo,
        label=inst.name,
        composite=inst.composite,
        ann_mask=inst.mask,
        ann={"bbox": list(box), "category": "object", "iscrowd": 0},
    )


def run_default_path(cfg: RunConfig, instances: list[RealInstance]) -> tuple[list[Verdict], list[tuple]]:
    """Every instance through selection, stage 2 and stage 4; a verdict per instance and, for each shipped one,
    (instance, row) for the contact sheet."""
    from curation.core.schema import get_image, get_json, is_ok
    from stages.curate import Curate
    from stages.masks import MasksAndLayers
    from stages.selection import select_instances

    masks, curate = MasksAndLayers(cfg), Curate(cfg)
    verdicts: list[Verdict] = []
    shipped: list[tuple] = []
    photos: dict[str, list[int]] = {}
    for i, inst in enumerate(instances):
        photos.setdefault(inst.photo, []).append(i)
    for idx in photos.values():
        rows = [_row(instances[i], i) for i in idx]
        select_instances(rows, cfg.ingest.selection)
        masks.process([r for r in rows if is_ok(r)])
        curate.process([r for r in rows if is_ok(r)])
        for i, row in zip(idx, rows, strict=True):
            inst = instances[i]
            if not is_ok(row):
                verdicts.append(Verdict(inst.name, inst.photo, not inst.touches_border, str(row["reject_reason"])))
                continue
            fg = get_image(row, "foreground")
            bg, eff = get_image(row, "background"), get_image(row, "effect")
            assert fg is not None and bg is not None and eff is not None, "stage 2 set every layer of a kept row"
            v = judge(inst, eff.astype(bool), fg[..., 3] / 255.0, bg)
            cur = get_json(row, "meta").get("curate", {})
            v.score, v.top_failure, v.p_failure = row["score"], cur.get("likely_failure"), cur.get("p_failure")
            verdicts.append(v)
            shipped.append((inst, row, v))
    return verdicts, shipped


def summarise(verdicts: list[Verdict]) -> dict[str, Any]:
    """Shipped, shipped-good, shipped-bad by failure, precision and yield, each with its n."""
    shipped = [v for v in verdicts if v.status == "shipped"]
    good = [v for v in shipped if not v.failures]
    could = [v for v in verdicts if v.could_be_good]
    by_failure = Counter(f for v in shipped for f in v.failures)
    return {
        "instances": len(verdicts),
        "could_be_good": len(could),
        "shipped": len(shipped),
        "shipped_good": len(good),
        "shipped_bad": len(shipped) - len(good),
        "shipped_bad_by_failure": {f: by_failure.get(f, 0) for f in FAILURES},
        "precision": round(len(good) / len(shipped), 3) if shipped else None,
        "yield": round(sum(v.could_be_good for v in good) / len(could), 3) if could else None,
        "rejected_by": dict(Counter(v.status for v in verdicts if v.status != "shipped").most_common()),
    }


# --- the lost-shadow check: caught when the true shadow is withheld, kept on truth -------------------------


def lost_shadow_values(instances: list[RealInstance], cfg: RunConfig) -> list[dict[str, Any]]:
    """The ``lost_shadow`` measure of each instance's layers made three ways with stage 2's own functions:
    ``withheld`` (the object removed, its true shadow left in the background: a bad triplet), ``truth`` (the
    paired path with the shadow-free photo, targets only) and ``true_masks`` (inpaint + relight of the true
    shadow: stage 2's best unpaired output). Instances cut by the border or without a shadow of 5 % of the
    object are left out."""
    import numpy as np

    from curation.core.decompose import background_shadowfree, background_unpaired, decompose, paired_plate
    from curation.core.inpaint import build_inpainter
    from curation.core.quality import lost_shadow

    fill = build_inpainter(cfg.masks.inpaint)
    out = []
    for inst in instances:
        c, o, s = inst.composite, inst.mask, inst.shadow
        if inst.touches_border or s.sum() < 0.05 * o.sum():
            continue

        def value(background: np.ndarray, c: np.ndarray = c, o: np.ndarray = o) -> float | None:
            t = decompose(c, background, o, cfg.masks.soft_edge_px)
            return lost_shadow(t.background, t.mask > 0, t.effect > 0)

        rec: dict[str, Any] = {"photo": inst.photo, "name": inst.name}
        rec["withheld"] = value(background_unpaired(c, o, np.zeros_like(s), fill))
        rec["true_masks"] = value(background_unpaired(c, o, s, fill))
        if inst.shadowfree is not None:
            rec["truth"] = value(background_shadowfree(paired_plate(c, inst.shadowfree, o), o, fill))
        out.append(rec)
    return out


def _rates(records: list[dict[str, Any]], threshold: float) -> tuple[int, int, int, int]:
    """(caught, withheld n, false rejects, truth n) at ``threshold`` (the check rejects values above it)."""
    bad = [r["withheld"] for r in records if r.get("withheld") is not None]
    good = [r[k] for r in records for k in ("truth", "true_masks") if r.get(k) is not None]
    return sum(v > threshold for v in bad), len(bad), sum(v > threshold for v in good), len(good)


def choose_threshold(records: list[dict[str, Any]]) -> float:
    """The threshold that best separates withheld shadows from truth (caught minus false rejects; ties: the
    higher, fewer false rejects)."""
    values = sorted({0.0} | {float(r[k]) for r in records for k in ("withheld", "truth", "true_masks") if r.get(k)})
    cands = [(a + b) / 2 for a, b in zip(values, values[1:], strict=False)] or [0.0]
    best = max(cands, key=lambda t: (_rates(records, t)[0] - _rates(records, t)[2], t))
    return round(best, 4)


def leave_one_photo_out(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each photo judged at the threshold chosen on the other photos."""
    caught = n_bad = false = n_good = 0
    chosen = {}
    for photo in sorted({r["photo"] for r in records}):
        rest = [r for r in records if r["photo"] != photo]
        t = choose_threshold(rest)
        chosen[photo] = t
        c, nb, f, ng = _rates([r for r in records if r["photo"] == photo], t)
        caught, n_bad, false, n_good = caught + c, n_bad + nb, false + f, n_good + ng
    return {"caught": caught, "withheld_n": n_bad, "false_rejects": false, "truth_n": n_good, "thresholds": chosen}


# --- paired real truth through stage 2's checks ---------------------------------------------------------


def paired_truth(cfg: RunConfig, instances: list[RealInstance]) -> list[tuple[str, str]]:
    """Each instance with a shadow-free photo through stage 2's paired path: (name, "ok" or the reason)."""
    from curation.core.schema import new_row
    from stages.masks import MasksAndLayers

    stage = MasksAndLayers(cfg)
    out = []
    for inst in instances:
        if inst.shadowfree is None:
            continue
        row = new_row(
            key="paired",
            source="real",
            source_ref=inst.photo,
            composite=inst.composite,
            clean=inst.shadowfree,
            ann_mask=inst.mask,
            ann={"bbox": [0, 0, 1, 1], "clean_kind": "shadowfree"},
        )
        stage.process([row])
        out.append((inst.name, "ok" if row["status"] == "ok" else str(row["reject_reason"])))
    return out


# --- the contact sheet ------------------------------------------------------------------------------------


def contact_sheet(shipped: list[tuple], path: Path, tile: int = 200) -> Path | None:
    """A JPEG with one row per shipped triplet: photo, background, foreground over a checkerboard, truth (object
    green, true shadow magenta, other objects blue), and a caption with the verdict and the curator's figures."""
    import numpy as np
    from PIL import Image, ImageDraw

    from curation.core.morphology import bbox_of
    from curation.core.preview import on_checkerboard
    from curation.core.schema import get_image

    if not shipped:
        return None
    rows = []
    for inst, row, v in shipped:
        x, y, w, h = bbox_of(inst.mask | inst.shadow) or (0, 0, *inst.mask.shape[::-1])
        pad = max(w, h) // 2 + 8
        ys = slice(max(0, y - pad), y + h + pad)
        xs = slice(max(0, x - pad), x + w + pad)
        truth = inst.composite.copy()
        truth[inst.others] = (truth[inst.others] * 0.5 + np.array([0, 0, 255]) * 0.5).astype(np.uint8)
        truth[inst.shadow] = (truth[inst.shadow] * 0.4 + np.array([255, 0, 255]) * 0.6).astype(np.uint8)
        truth[inst.mask] = (truth[inst.mask] * 0.5 + np.array([0, 255, 0]) * 0.5).astype(np.uint8)
        fg = get_image(row, "foreground")
        bg = get_image(row, "background")
        assert fg is not None and bg is not None, "a shipped row has its layers"
        panels = [
            Image.fromarray(inst.composite[ys, xs]),
            Image.fromarray(bg[ys, xs]),
            on_checkerboard(Image.fromarray(fg[ys, xs], "RGBA")),
            Image.fromarray(truth[ys, xs]),
        ]
        strip = Image.new("RGB", (4 * tile, tile + 30), "white")
        for k, p in enumerate(panels):
            p = p.convert("RGB")
            p.thumbnail((tile, tile))
            strip.paste(p, (k * tile, 0))
        verdict = "GOOD" if not v.failures else "BAD: " + ", ".join(v.failures)
        iou = v.values.get("shadow_iou")
        text = (
            f"{v.name}  {verdict}  shadow IoU {iou:.2f}  P(good) {v.score:.3g}  "
            f"top failure {v.top_failure} {v.p_failure if v.p_failure is not None else '-'}"
        )
        ImageDraw.Draw(strip).text((4, tile + 8), text, fill="black")
        rows.append(strip)
    sheet = Image.new("RGB", (4 * tile, sum(r.height for r in rows)), "white")
    top = 0
    for r in rows:
        sheet.paste(r, (0, top))
        top += r.height
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=90)
    return path


# --- the command -------------------------------------------------------------------------------------------


def _print_summary(title: str, s: dict[str, Any]) -> None:
    bad = ", ".join(f"{k} {n}" for k, n in s["shipped_bad_by_failure"].items())
    print(
        f"{title}: {s['instances']} instances ({s['could_be_good']} could be good); shipped {s['shipped']}: "
        f"good {s['shipped_good']}, bad {s['shipped_bad']} ({bad}); precision {s['precision']} "
        f"(n={s['shipped']}), yield {s['yield']} (n={s['could_be_good']})"
    )


def cmd_eval_real(args: argparse.Namespace) -> int:
    from curation.cli import DEMO_CONFIG
    from curation.core.config import load_config
    from curation.core.realdata import every_real_instance

    cfg = load_config(args.config or DEMO_CONFIG, {})
    instances = every_real_instance()
    verdicts, shipped = run_default_path(cfg, instances)
    report: dict[str, Any] = {
        "good_thresholds": GOOD,
        "all": summarise(verdicts),
        "held_out": summarise([v for v in verdicts if not v.in_sample]),
        "in_sample": summarise([v for v in verdicts if v.in_sample]),
        "instances": [v.__dict__ for v in verdicts],
    }
    print(f"curator: {cfg.curate.backend}; fill: {cfg.masks.inpaint.backend}; effects: {cfg.masks.effects}")
    _print_summary("all real instances", report["all"])
    _print_summary("held out (DESOBAv2: no part tuned or trained on it)", report["held_out"])
    _print_summary("in-sample (DESOBA, plaza: the detector's tuning, the curator's training)", report["in_sample"])
    for v in verdicts:
        if v.status == "shipped":
            verdict = "good" if not v.failures else "BAD " + ",".join(v.failures)
            vals = ", ".join(f"{k} {x:.2f}" for k, x in v.values.items() if x is not None)
            print(f"  shipped {v.name}: {verdict} ({vals}); P(good) {v.score:.3g}, top {v.top_failure} {v.p_failure}")
    if not args.no_checks:
        paired = paired_truth(cfg, instances)
        ok = sum(r == "ok" for _, r in paired)
        report["paired_truth"] = paired
        print(f"paired real truth through stage 2's checks: accepted {ok} of {len(paired)}")
        for name, r in paired:
            print(f"  {name}: {r}")
        records = lost_shadow_values(instances, cfg)
        t = cfg.masks.quality.max_lost_shadow
        report["lost_shadow"] = {"records": records, "lopo": leave_one_photo_out(records)}
        lopo = report["lost_shadow"]["lopo"]
        if t is not None:
            c, nb, f, ng = _rates(records, t)
            report["lost_shadow"]["at_config"] = {"threshold": t, "caught": c, "n": nb, "false": f, "truth_n": ng}
            print(
                f"lost_shadow at max_lost_shadow {t} (chosen on these photos: in-sample): caught {c}/{nb} "
                f"withheld shadows, false rejects {f}/{ng} truth triplets"
            )
        print(
            f"lost_shadow leave-one-photo-out: caught {lopo['caught']}/{lopo['withheld_n']}, false rejects "
            f"{lopo['false_rejects']}/{lopo['truth_n']}"
        )
    if args.sheet:
        path = contact_sheet(shipped, Path(args.sheet))
        print(f"contact sheet of {len(shipped)} shipped triplets: {path}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval-real", help="what the pipeline ships from real photos, judged against truth")
    p.add_argument("config", nargs="?", help="run config (default: the demo's, with its curator)")
    p.add_argument("--sheet", help="write a JPEG contact sheet of every shipped real triplet here")
    p.add_argument("--no-checks", action="store_true", help="skip the paired-truth and lost-shadow measurements")
    p.add_argument("--json", help="also write the full report here")
    p.set_defaults(func=cmd_eval_real)
