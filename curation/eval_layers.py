"""``curate eval-layers``: run stage 2 on ground-truth data and print how close its layers come.

Three ground-truth sets: synthetic scenes (``render_scene``: exact masks, shadow, background and RGBA
foreground per instance), the bundled real DESOBA samples (object mask, shadow mask, shadow-free photo;
in-sample for the shadow detector, whose parameters were tuned on them) and the bundled DESOBAv2 samples
in the same layout, on which nothing was tuned: the headline is measured there. Every instance runs through the real
:class:`MasksAndLayers` in three modes:

- ``paired``: the true clean plate is given (DESOBA: the shadow-free photo);
- ``source``: no plate, the source's shadow annotation given (inpaint + relight);
- ``detector``: no plate and no annotation; the shadow comes from the single-image detector.

Metrics: object mask IoU (segmenter vs truth), shadow IoU (the detector from composite + object mask
alone), alpha MAE inside the true effect region, background PSNR inside object+effect against the true
background (DESOBA: inside the shadow against the shadow-free photo, since its object is not removed),
recomposite PSNR, and on DESOBA the coverage of the true shadow by the paired alpha (IoU of α > 0.1).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curation.core.data import DESOBA, DESOBAV2

if TYPE_CHECKING:  # the CLI imports every plugin to build its parser: the heavy imports stay in the functions
    import numpy as np

    from curation.core.config import RunConfig
    from curation.core.schema import Row

MODES = ("paired", "source", "detector")
WIDTHS = (10, 16, 18, 17, 18, 25, 20, 24)  # printed column widths
PSNR_CAP = 60.0  # identical regions give +inf; cap so that means stay finite


@dataclass
class Truth:
    """One ground-truth instance: what the stage is given and what it should produce."""

    name: str
    composite: np.ndarray
    mask: np.ndarray
    effect: np.ndarray
    clean: np.ndarray  # the plate given in paired mode
    clean_kind: str  # "background" (object removed) or "shadowfree" (object kept)
    alpha: np.ndarray  # true foreground alpha in 0..1
    background: np.ndarray  # the reference for background PSNR
    bg_region: np.ndarray  # where background PSNR is measured
    soft_truth: bool  # whether ``alpha`` is soft at the object's outline (rendered, not drawn)


@dataclass
class Scores:
    values: dict[str, list[float]] = field(default_factory=dict)
    rejects: dict[str, int] = field(default_factory=dict)
    #: how many accepted instances each quality check would reject (the checks are measured, not applied)
    checks: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        self.values.setdefault(key, []).append(float(value))

    def summary(self) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {k: round(float(np.mean(v)), 4) for k, v in sorted(self.values.items())}
        out["n"] = {k: len(v) for k, v in sorted(self.values.items())}
        out["rejects"] = dict(self.rejects)
        out["quality_checks_fail"] = dict(self.checks)
        return out


def synthetic_truths(count: int, size: int, seed: int) -> list[Truth]:
    from curation.core.compositing import to_float
    from curation.core.scenes import render_scene

    truths = []
    for i in range(count):
        scene = render_scene(seed * 1_000_003 + i, size)
        for j, inst in enumerate(scene.instances):
            truths.append(
                Truth(
                    f"synthetic/{i}/{j}",
                    scene.composite,
                    inst.mask,
                    inst.effect,
                    inst.background,
                    "background",
                    to_float(inst.foreground)[..., 3],
                    inst.background,
                    inst.mask | inst.effect,
                    True,
                )
            )
    return truths


def desoba_truths(root: Path = DESOBA) -> list[Truth]:
    import numpy as np

    from curation.core.compositing import to_float
    from curation.core.decompose import minimal_alpha
    from curation.core.imageio import read_image, read_mask

    truths = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        composite = read_image(folder / "composite.png", 10**8)
        shadowfree = read_image(folder / "shadowfree.png", 10**8)
        mask = read_mask(folder / "object_mask.png", 10**8)
        shadow = read_mask(folder / "shadow_mask.png", 10**8) & ~mask
        alpha = np.where(mask, 1.0, minimal_alpha(to_float(composite), to_float(shadowfree)) * shadow)
        truths.append(
            Truth(
                f"desoba/{folder.name}",
                composite,
                mask,
                shadow,
                shadowfree,
                "shadowfree",
                alpha,
                shadowfree,
                shadow,
                False,
            )
        )
    return truths


def coarsen(mask: np.ndarray, px: float) -> np.ndarray:
    """A hand-drawn-looking annotation: the outline simplified to a polygon within ``px`` of the truth."""
    import cv2
    import numpy as np

    if px <= 0:
        return mask
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(out, [cv2.approxPolyDP(c, px, True) for c in contours], 1)
    return out.astype(bool)


def _row(t: Truth, mode: str, coarse_px: float) -> Row:
    from curation.core.morphology import bbox_of
    from curation.core.schema import new_row

    ann_mask = coarsen(t.mask, coarse_px)
    return new_row(
        key=f"eval-{mode}-{t.name.replace('/', '-')}",
        source="eval",
        source_ref=t.name,
        composite=t.composite,
        clean=t.clean if mode == "paired" else None,
        ann_mask=ann_mask,
        ann_effect=t.effect if mode == "source" else None,
        ann={"bbox": list(bbox_of(ann_mask) or (0, 0, 0, 0)), "clean_kind": t.clean_kind},
    )


def _stage_config(base: RunConfig, mode: str) -> RunConfig:
    """The stage in one mode, its quality checks measured but not applied, so that the layer metrics are
    means over every instance (what the checks would reject is counted from the measured values)."""
    effects = "detector" if mode == "detector" else "source"
    quality = base.masks.quality.model_copy(update={"enabled": False})
    masks = base.masks.model_copy(update={"effects": effects, "quality": quality})
    return base.model_copy(update={"masks": masks})


def evaluate(truths: list[Truth], base: RunConfig, coarse_px: float = 0.0) -> dict[str, Any]:
    """Run every instance through the stage in each mode; per-mode means plus the detector's shadow IoU."""
    from curation.core.morphology import iou
    from curation.core.quality import Quality, failures
    from curation.core.schema import get_json, is_ok
    from stages.masks import MasksAndLayers
    from stages.shadows import build_detector

    detector = build_detector(base.masks.detector)
    report: dict[str, Any] = {"instances": len(truths)}
    shadow = Scores()
    for t in truths:
        shadow.add("shadow_iou", iou(detector.detect(t.composite, t.mask), t.effect))
        shadow.add("annotation_iou", iou(coarsen(t.mask, coarse_px), t.mask))
    report["shadow_detector"] = shadow.summary()
    for mode in MODES:
        stage = MasksAndLayers(_stage_config(base, mode))
        scores = Scores()
        rows = [_row(t, mode, coarse_px) for t in truths]
        started, cpu = time.perf_counter(), time.process_time()
        for k in range(0, len(rows), base.masks.resources.batch_size):
            stage.process(rows[k : k + base.masks.resources.batch_size])
        scores.add("seconds_per_sample", (time.perf_counter() - started) / max(1, len(rows)))
        # CPU seconds of this process: a figure that other load on a shared machine does not inflate
        scores.add("cpu_seconds_per_sample", (time.process_time() - cpu) / max(1, len(rows)))
        for t, row in zip(truths, rows, strict=True):
            if not is_ok(row):
                scores.rejects[row["reject_reason"]] = scores.rejects.get(row["reject_reason"], 0) + 1
                continue
            _score(t, row, scores, paired=mode == "paired")
            quality = Quality(**get_json(row, "meta")["masks"]["quality"])
            for reason, _ in failures(quality, base.masks.quality):
                scores.checks[str(reason)] = scores.checks.get(str(reason), 0) + 1
        report[mode] = scores.summary()
    return report


def _score(t: Truth, row: Row, scores: Scores, paired: bool) -> None:
    import numpy as np

    from curation.core.compositing import psnr, to_float
    from curation.core.decompose import OBJECT_MARGIN_PX
    from curation.core.morphology import dilate, iou
    from curation.core.schema import require_image

    mask = require_image(row, "mask") > 0
    fg, bg = require_image(row, "foreground"), require_image(row, "background")
    alpha = to_float(fg)[..., 3]
    scores.add("mask_iou", iou(mask, t.mask))
    if t.soft_truth:  # DESOBA's masks are binary: no truth for a soft edge
        edge = dilate(t.mask, 2) & dilate(~t.mask, 2)  # the outline band, where alpha should be soft
        scores.add("edge_alpha_mae", float(np.abs(alpha - t.alpha)[edge].mean()))
    if t.effect.any():
        scores.add("effect_alpha_mae", float(np.abs(alpha - t.alpha)[t.effect].mean()))
    scores.add("background_psnr", min(psnr(bg, t.background, t.bg_region), PSNR_CAP))
    scores.add("recomposite_psnr", min(float(row["psnr"]), PSNR_CAP))
    if paired and t.clean_kind == "shadowfree":
        outside = ~dilate(t.mask, OBJECT_MARGIN_PX)  # the object's own edge ring is not shadow
        scores.add("paired_shadow_alpha_iou", iou((alpha > 0.1) & outside, t.effect & outside))


def run_eval(
    base: RunConfig,
    synthetic: int,
    size: int,
    seed: int,
    desoba: Path | None,
    coarse_px: float = 0.0,
    fill_methods: tuple[str, ...] = (),
    holes_per_photo: int = 4,
    checks: bool = True,
    heldout: Path | None = None,
) -> dict[str, Any]:
    """Stage 2 against ground truth, then the hole benchmark per fill method and the quality checks'
    good-rejected / bad-caught shares; real photos and synthetic scenes reported apart."""
    from curation.core.inpaint import build_inpainter
    from curation.eval_fill import benchmark, real_holes, synthetic_holes
    from curation.eval_quality import evaluate as evaluate_checks

    out: dict[str, Any] = {
        "config": {
            "segmenter": base.masks.segmenter,
            "detector": base.masks.detector.model_dump(),
            "inpaint": base.masks.inpaint.backend,
            "soft_edge_px": base.masks.soft_edge_px,
            "coarse_px": coarse_px,
            "quality": base.masks.quality.model_dump(),
        }
    }
    if synthetic:
        out["synthetic"] = evaluate(synthetic_truths(synthetic, size, seed), base, coarse_px)
        out["synthetic"]["size"] = size
    if desoba is not None:  # in-sample for the detector: its parameters were tuned on these photos
        out["desoba"] = evaluate(desoba_truths(desoba), base, coarse_px)
        out["in_sample_desoba_shadow_iou"] = out["desoba"]["shadow_detector"]["shadow_iou"]
    # DESOBAv2: photos no layer parameter was chosen on; the shadow detector's defaults, though, are chosen
    # leave-one-photo-out over every real instance, these included (its held-out figure: stages.shadows.tune)
    if heldout is not None:
        out["desobav2"] = evaluate(desoba_truths(heldout), base, coarse_px)
        out["headline_heldout_shadow_iou"] = {
            "value": out["desobav2"]["shadow_detector"]["shadow_iou"],
            "n": out["desobav2"]["instances"],
            "photos": "DESOBAv2 (held out from the layers' tuning; the detector's is stages.shadows.tune)",
        }
    if fill_methods:
        out["fill_benchmark"] = {"real": benchmark(real_holes("report", holes_per_photo), fill_methods)}
        if synthetic:
            out["fill_benchmark"]["synthetic"] = benchmark(synthetic_holes(synthetic, size, seed), fill_methods)
    if checks:
        out["quality_checks"] = evaluate_checks(
            "report",
            build_inpainter(base.masks.inpaint),
            base.masks.quality,
            synthetic=synthetic,
            size=size,
            holes_per_photo=holes_per_photo,
            desoba=desoba is not None,
        )
    return out


def _print(report: dict[str, Any]) -> None:
    for name in ("synthetic", "desoba", "desobav2"):
        if name not in report:
            continue
        r = report[name]
        split = {"desoba": " (in-sample: the detector was tuned on these photos)", "desobav2": " (held out)"}
        print(
            f"\n{name}: {r['instances']} instances"
            + (f" at {r['size']} px" if "size" in r else "")
            + split.get(name, "")
        )
        print(
            f"  detector shadow IoU (composite + object mask only): {r['shadow_detector']['shadow_iou']:.3f}; "
            f"annotation given to the segmenter: IoU {r['shadow_detector']['annotation_iou']:.3f} with the truth"
        )
        keys = (
            "mask_iou",
            "edge_alpha_mae",
            "effect_alpha_mae",
            "background_psnr",
            "recomposite_psnr",
            "paired_shadow_alpha_iou",
            "seconds_per_sample",
            "cpu_seconds_per_sample",
        )
        header = "".join(f"{k:>{w}s}" for k, w in zip(keys, WIDTHS, strict=True))
        print(f"  {'mode':9s}{header}  rejects / quality checks failed")
        for mode in MODES:
            m = r[mode]
            cells = "".join(f"{m[k]:>{w}.4f}" if k in m else f"{'-':>{w}s}" for k, w in zip(keys, WIDTHS, strict=True))
            print(f"  {mode:9s}{cells}  {m['rejects'] or ''} {m['quality_checks_fail'] or ''}")
    for source, bench in report.get("fill_benchmark", {}).items():
        print(f"\nfill benchmark, {source}: {bench['holes']} holes (inside the hole, against the truth)")
        print(f"  {'method':14s}{'PSNR':>8s}{'SSIM':>8s}{'grad ratio':>12s}{'CPU s/hole':>12s}")
        for method, m in bench.items():
            if method != "holes":
                print(
                    "  "
                    f"{method:14s}{m['psnr']:8.2f}{m['ssim']:8.3f}{m['gradient_ratio']:12.3f}{m['cpu_seconds_per_hole']:12.4f}"
                )
    if "quality_checks" in report:
        print("\nquality checks, held-out split: share of each set that each check fails")
        for source, kinds in report["quality_checks"].items():
            for kind, m in kinds.items():
                cells = "  ".join(f"{k} {v:.3f}" for k, v in m.items() if k != "n")
                print(f"  {source:9s} {kind:8s} n={m['n']:3d}  {cells}")
    if "in_sample_desoba_shadow_iou" in report:
        print(
            f"\nin-sample (tuning photos, not a result): shadow IoU on DESOBA = "
            f"{report['in_sample_desoba_shadow_iou']:.3f}"
        )
    if "headline_heldout_shadow_iou" in report:
        h = report["headline_heldout_shadow_iou"]
        print(
            f"headline: single-image shadow IoU on held-out real photos, {h['photos']} = {h['value']:.3f} "
            f"(n={h['n']} instances)"
        )


def cmd_eval_layers(args: argparse.Namespace) -> int:
    from curation.core.config import load_config, parse_config

    base = load_config(args.config) if args.config else parse_config({"sources": [{"type": "synthetic"}]})
    if args.segmenter:
        base = base.model_copy(update={"masks": base.masks.model_copy(update={"segmenter": args.segmenter})})
        base = parse_config(json.loads(base.model_dump_json()))  # re-validate (sam needs its checkpoint)
    desoba = None if args.no_desoba else Path(args.desoba)
    heldout = None if args.no_desoba else Path(args.heldout)
    methods = tuple(m for m in args.fill_methods.split(",") if m) if args.fill_methods else ()
    report = run_eval(
        base,
        args.synthetic,
        args.size,
        args.seed,
        desoba,
        args.coarse_px,
        methods,
        args.holes_per_photo,
        not args.no_checks,
        heldout,
    )
    _print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eval-layers", help="measure stage 2 (masks, shadows, layers) against ground truth")
    p.add_argument("config", nargs="?", help="run config whose masks section is evaluated (default: defaults)")
    p.add_argument("--synthetic", type=int, default=40, help="synthetic scenes to render (0 = none)")
    p.add_argument("--size", type=int, default=256, help="synthetic scene size (px)")
    p.add_argument("--seed", type=int, default=0, help="synthetic seed (scene i uses seed·1000003 + i)")
    p.add_argument("--desoba", default=str(DESOBA), help="folder of DESOBA samples (default: bundled)")
    p.add_argument(
        "--heldout",
        default=str(DESOBAV2),
        help="folder of held-out samples in the DESOBA layout (default: bundled DESOBAv2)",
    )
    p.add_argument("--no-desoba", action="store_true", help="skip the real DESOBA and held-out samples")
    p.add_argument("--segmenter", choices=("annotation", "grabcut", "sam"), help="override masks.segmenter")
    p.add_argument(
        "--coarse-px",
        type=float,
        default=0.0,
        help="give the segmenter polygon-simplified annotations (outline within this many px)",
    )
    p.add_argument(
        "--fill-methods",
        default="telea,navier_stokes,fsr_fast,coarse_to_fine,shiftmap,fsr_texture,fsr_best",
        help="fills compared on the hole benchmark, comma-separated ('' = skip the benchmark)",
    )
    p.add_argument("--holes-per-photo", type=int, default=4, help="holes cut in each benchmark photo")
    p.add_argument("--no-checks", action="store_true", help="skip the quality checks' good/bad measurement")
    p.add_argument("--json", help="also write the full report here")
    p.set_defaults(func=cmd_eval_layers)
