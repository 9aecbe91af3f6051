"""Known-good and known-bad triplets for the quality checks, and how often each check gets them right.

Good: ground-truth triplets (synthetic scenes as rendered; real photos with an object pasted into a hole
whose truth is the photo; DESOBA targets with their shadow-free photo). Bad, each made from a good one the
way a real mistake happens and then re-layered by stage 2's own ``decompose`` (so every bad triplet still
recomposites exactly):

- ``smear``: the ground under the object filled by Telea or blurred, where the ground is textured;
- ``drift``: the background changed beyond the object + effect: a fill that leaks past its region, a
  plate with another exposure, a plate shifted by a pixel or two;
- ``foreign``: the effect region grabbed a piece of a neighbouring object (the other object of a
  synthetic scene; another annotated DESOBA object) and the background was made from it (inpaint + relight).

``stage`` rows are what stage 2 makes from the true masks (unpaired): neither good nor bad, they show
what share of honest stage output each check rejects. Splits: ``tune`` (synthetic seeds 1000+, the
hole benchmark's tuning photos) chooses thresholds; ``report`` (synthetic seed 0, the reporting photos
and DESOBA) is held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from curation.core.config.masks import QualityOptions
    from curation.core.decompose import Triplet
    from curation.core.inpaint import Inpainter

KINDS = ("good", "smear", "drift", "foreign", "stage")
#: which check is meant to catch which failure (the others are reported too)
TARGET = {"smear": "fill_smeared", "drift": "background_drift", "foreign": "effect_implausible"}
#: mean gradient (grey levels, Sobel) of the true ground around a hole above which it counts as textured
TEXTURED = 12.0
SYNTHETIC_SEEDS = {"tune": 1000, "report": 0}


@dataclass
class Case:
    name: str
    source: str  # "synthetic" or "real"
    kind: str  # one of KINDS
    triplet: Triplet


def _layered(composite: np.ndarray, background: np.ndarray, obj: np.ndarray) -> Triplet:
    from curation.core.config.masks import MasksConfig
    from curation.core.decompose import decompose

    return decompose(composite, background, obj, MasksConfig().soft_edge_px)


def _ring_texture(background: np.ndarray, obj: np.ndarray) -> float:
    from curation.core.morphology import dilate
    from curation.core.quality import gradient

    size = int((obj.sum()) ** 0.5)
    ring = dilate(obj, max(4, size // 4) + 2) & ~dilate(obj, 3)
    return float(gradient(background)[ring].mean())


def smeared(background: np.ndarray, obj: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ground under the object filled by Telea, or by a blur of the truth (a smear either way)."""
    import cv2
    import numpy as np

    from curation.core.morphology import dilate

    hole = dilate(obj, 2)
    if rng.random() < 0.5:
        return cv2.inpaint(background, hole.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    blurred = cv2.GaussianBlur(background, (0, 0), float(rng.uniform(2.5, 5.0)))
    return np.where(hole[..., None], blurred, background)


def drifted(background: np.ndarray, obj: np.ndarray, effect: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The background changed beyond the object + effect: a leaking fill, another exposure, a shifted plate."""
    import cv2
    import numpy as np

    from curation.core.morphology import dilate

    mode = int(rng.integers(3))
    if mode == 0:
        size = int(obj.sum() ** 0.5)
        leak = dilate(obj | effect, max(4, int(size * rng.uniform(0.15, 0.35))))
        return cv2.inpaint(background, leak.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    if mode == 1:
        gain = 1 + float(rng.choice([-1, 1]) * rng.uniform(0.03, 0.08))
        return np.clip(np.rint(background.astype(np.float32) * gain), 0, 255).astype(np.uint8)
    dy, dx = (int(v) for v in rng.choice([-2, -1, 1, 2], 2))
    return np.roll(background, (dy, dx), axis=(0, 1))


def grabbed_piece(obj: np.ndarray, effect: np.ndarray, others: np.ndarray, min_px: int = 20) -> np.ndarray | None:
    """The part of a neighbouring object that an effect region reaching past its shadow would take: the
    neighbour's pixels nearest the object + shadow (a quarter of the object's size deep), when a neighbour
    lies within one object size (None otherwise)."""
    import cv2
    import numpy as np

    size = int(obj.sum() ** 0.5)
    others = others & ~obj
    if not others.any():
        return None
    dist = cv2.distanceTransform((~(obj | effect)).astype(np.uint8), cv2.DIST_L2, 3)
    nearest = float(dist[others].min())
    if nearest > size:
        return None
    piece = others & (dist <= nearest + max(6, size // 4))
    return piece if piece.sum() >= min_px else None


def _synthetic_cases(
    split: str, count: int, size: int, fill: Inpainter, rng: np.random.Generator, stage: bool
) -> list[Case]:
    from curation.core.decompose import Triplet, background_unpaired
    from curation.core.scenes import render_scene

    cases = []
    for i in range(count):
        scene = render_scene(SYNTHETIC_SEEDS[split] * 1_000_003 + i, size)
        for j, inst in enumerate(scene.instances):
            name, c = f"synthetic/{split}/{i}/{j}", scene.composite
            obj, eff = inst.mask, inst.effect
            cases.append(
                Case(
                    name,
                    "synthetic",
                    "good",
                    Triplet(c, inst.background, inst.foreground, obj.astype("uint8") * 255, eff.astype("uint8") * 255),
                )
            )
            if _ring_texture(inst.background, obj) >= TEXTURED:
                cases.append(Case(name, "synthetic", "smear", _layered(c, smeared(inst.background, obj, rng), obj)))
            cases.append(Case(name, "synthetic", "drift", _layered(c, drifted(inst.background, obj, eff, rng), obj)))
            if stage:
                cases.append(Case(name, "synthetic", "stage", _layered(c, background_unpaired(c, obj, eff, fill), obj)))
            others = [o.mask for k, o in enumerate(scene.instances) if k != j]
            piece = grabbed_piece(obj, eff, others[0]) if others else None
            if piece is not None:
                cases.append(
                    Case(name, "synthetic", "foreign", _layered(c, background_unpaired(c, obj, eff | piece, fill), obj))
                )
    return cases


def _hole_cases(split: str, rng: np.random.Generator, per_photo: int) -> list[Case]:
    """Real photos with an object pasted into a hole cut where the truth is the photo itself; the object's
    texture is a crop of another photo of the split, so that it is unlike the ground it covers."""
    import numpy as np

    from curation.core.decompose import Triplet
    from curation.core.realdata import cut_holes

    holes = cut_holes(split, per_photo)
    cases = []
    for k, h in enumerate(holes):
        donor = holes[(k + per_photo) % len(holes)].photo
        c = np.where(h.hole[..., None], donor, h.photo)
        fg = np.dstack([np.where(h.hole[..., None], c, 0), h.hole.astype(np.uint8) * 255]).astype(np.uint8)
        mask, none = h.hole.astype(np.uint8) * 255, np.zeros(h.hole.shape, np.uint8)
        cases.append(Case(f"holes/{h.name}", "real", "good", Triplet(c, h.photo, fg, mask, none)))
        if _ring_texture(h.photo, h.hole) >= TEXTURED:
            cases.append(Case(f"holes/{h.name}", "real", "smear", _layered(c, smeared(h.photo, h.hole, rng), h.hole)))
    return cases


def _desoba_cases(fill: Inpainter, rng: np.random.Generator, stage: bool) -> list[Case]:
    from curation.core.decompose import background_shadowfree, background_unpaired
    from curation.core.realdata import desoba_instances

    cases = []
    for inst in desoba_instances():
        c, obj, eff = inst.composite, inst.mask, inst.shadow
        if inst.shadowfree is not None:
            good = _layered(c, background_shadowfree(inst.shadowfree, obj, fill), obj)
            cases.append(Case(inst.name, "real", "good", good))
            cases.append(Case(inst.name, "real", "drift", _layered(c, drifted(good.background, obj, eff, rng), obj)))
        if stage:
            cases.append(Case(inst.name, "real", "stage", _layered(c, background_unpaired(c, obj, eff, fill), obj)))
        piece = grabbed_piece(obj, eff, inst.others)
        if piece is not None:
            cases.append(
                Case(inst.name, "real", "foreign", _layered(c, background_unpaired(c, obj, eff | piece, fill), obj))
            )
    return cases


def cases(
    split: str,
    fill: Inpainter,
    synthetic: int = 30,
    size: int = 256,
    holes_per_photo: int = 4,
    desoba: bool = True,
    seed: int = 0,
    stage: bool = True,
) -> list[Case]:
    """Every good, bad and (with ``stage``) stage-made triplet of one split (``tune`` or ``report``; DESOBA
    only in ``report``)."""
    import numpy as np

    rng = np.random.default_rng([seed, 0 if split == "tune" else 1])
    out = _synthetic_cases(split, synthetic, size, fill, rng, stage) if synthetic else []
    out += _hole_cases(split, rng, holes_per_photo) if holes_per_photo else []
    if desoba and split == "report":
        out += _desoba_cases(fill, rng, stage)
    return out


def rates(measured: list[tuple[Case, list[str]]]) -> dict[str, Any]:
    """Per source and kind: how many cases, and the share each check fails (plus any check)."""
    from curation.core.reasons import Reason

    checks = [
        str(r)
        for r in (Reason.BACKGROUND_DRIFT, Reason.EFFECT_NOT_SHADOW, Reason.FILL_SMEARED, Reason.EFFECT_IMPLAUSIBLE)
    ]
    out: dict[str, Any] = {}
    for source in ("synthetic", "real"):
        for kind in KINDS:
            failed = [f for c, f in measured if c.source == source and c.kind == kind]
            if not failed:
                continue
            shares = {ch: round(sum(ch in f for f in failed) / len(failed), 3) for ch in checks}
            shares["any"] = round(sum(bool(f) for f in failed) / len(failed), 3)
            out.setdefault(source, {})[kind] = {"n": len(failed), **shares}
    return out


def evaluate(split: str, fill: Inpainter, opts: QualityOptions, **kw) -> dict[str, Any]:
    """Fail shares of every check on the split's good, bad and stage triplets."""
    from curation.core.quality import failures, measure

    measured = []
    for case in cases(split, fill, **kw):
        t = case.triplet
        measured.append(
            (case, [str(r) for r, _ in failures(measure(t.composite, t.background, t.mask, t.effect), opts)])
        )
    return rates(measured)
