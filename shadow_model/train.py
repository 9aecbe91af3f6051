"""Training the learned shadow detector: ``python -m shadow_model.train`` (``make train-shadow``).

1. A base network on synthetic shadows cast onto photos that hold no evaluated instance, with rendered
   silhouettes as objects: it has seen nothing of the real instances, so it is scored on all of them.
2. Leave-photos-out folds: the real photos are split by photo into ``folds``; each fold fine-tunes the base
   on the other folds' photos (shadows cast with their real object masks on them as ground, and views of
   their real instances) and is scored on its own photos only. The pooled answers are the held-out figures.
3. The shipped network: the same fine-tuning on every real photo (no photo is left to score it on: its
   figure is the folds').

Every network goes through ``torch.export`` and is scored by the real ``exported`` backend.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from curation.core.realdata import RealInstance, every_real_instance
from shadow_model import synth
from shadow_model.evaluate import Scores, score
from shadow_model.network import NetSpec, ShadowNet, export

log = logging.getLogger(__name__)
CHECKPOINT = Path(__file__).resolve().parent / "checkpoint"
CHECKPOINT_NAME = "shadow.pt2"
CARD_NAME = "model_card.json"


@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    base_samples: int = 3000
    base_steps: int = 800
    fold_samples: int = 800
    #: crops of every real training instance (search radius drawn, half mirrored)
    real_views: int = 32
    fold_steps: int = 300
    folds: int = 4
    batch: int = 24
    lr: float = 3e-3
    #: one thread: on a shared CPU more threads wait on each other
    threads: int = 1


def folds_of(photos: list[str], k: int) -> dict[str, int]:
    """Photo -> fold, round-robin over the sorted photo names (deterministic; instances of a photo stay together)."""
    return {p: i % k for i, p in enumerate(sorted(set(photos)))}


def fit(model: ShadowNet, data: synth.Samples, steps: int, lr: float, seed: int, batch: int) -> ShadowNet:
    """Adam with a cosine schedule; loss = BCE + soft Dice over the pixels outside the object (the backend
    never reports a shadow on the object). Mirroring and a brightness gain are drawn per sample."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        idx = rng.integers(0, len(data), batch)
        img = torch.from_numpy(data.image[idx]).permute(0, 3, 1, 2).float() / 255
        obj = torch.from_numpy(data.obj[idx])[:, None].float() / 255
        lab = (torch.from_numpy(data.shadow[idx])[:, None].float() / 255 > 0.5).float()
        gain = torch.from_numpy(rng.uniform(0.75, 1.25, (batch, 1, 1, 1)).astype(np.float32))
        img = (img * gain).clamp(0, 1)
        flip = torch.from_numpy(rng.random(batch) < 0.5)
        img[flip], obj[flip], lab[flip] = img[flip].flip(-1), obj[flip].flip(-1), lab[flip].flip(-1)
        logit = model.logits(img, obj)
        outside = (obj < 0.5).float()
        bce = (F.binary_cross_entropy_with_logits(logit, lab, reduction="none") * outside).sum() / outside.sum()
        p = torch.sigmoid(logit) * outside
        inter, total = (p * lab).sum((1, 2, 3)), (p + lab * outside).sum((1, 2, 3))
        dice = 1 - ((2 * inter + 1) / (total + 1)).mean()
        loss = bce + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log.info("step %d/%d loss %.4f (%.0f s)", step, steps, loss.item(), time.perf_counter() - t0)
    return model.eval()


def masks_of(instances: list[RealInstance]) -> list[np.ndarray]:
    """Each real object mask cut to its box: the shapes shadows are projected from."""
    out = []
    for inst in instances:
        ys, xs = np.nonzero(inst.mask)
        out.append(inst.mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    return out


def fine_tune(
    base: ShadowNet,
    base_data: synth.Samples,
    train: list[RealInstance],
    grounds: list[synth.Ground],
    recipe: Recipe,
    seed: int,
    cache: Path | None,
) -> ShadowNet:
    """The base network fine-tuned on ``train``'s photos (plus a share of the base data, so it keeps it)."""
    shapes = masks_of(train)
    real_grounds = synth.instance_grounds(train)
    key = synth.content_key("fold", recipe.fold_samples, seed, grounds, real_grounds, shapes)
    cast = synth.cached(
        cache, key, lambda: synth.synthesize(recipe.fold_samples, seed, grounds + real_grounds, grounds, shapes)
    )
    views = synth.real_views(train, np.random.default_rng(seed), recipe.real_views)
    keep = base_data.image.shape[0] // 3
    data = synth.Samples.concat(
        [cast, views, synth.Samples(base_data.image[:keep], base_data.obj[:keep], base_data.shadow[:keep])]
    )
    log.info("fine-tuning on %d samples (%d real views)", len(data), len(views))
    return fit(copy.deepcopy(base), data, recipe.fold_steps, recipe.lr / 3, seed, recipe.batch)


def trained_base(spec: NetSpec, data: synth.Samples, recipe: Recipe, path: Path) -> ShadowNet:
    """The base network, trained once per (data, spec, base recipe): a rerun that changes only the fine-tuning
    reads its weights back from ``path``."""
    model = ShadowNet(spec)
    if path.exists():  # the card says so (base_from_cache): its training time is not in this run's minutes
        model.load_state_dict(torch.load(path, weights_only=True))
        log.info("base network read from %s", path)
        return model.eval()
    torch.manual_seed(recipe.seed)
    model = fit(model, data, recipe.base_steps, recipe.lr, recipe.seed, recipe.batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


def run(out: Path, recipe: Recipe, cache: Path | None) -> dict:
    torch.set_num_threads(recipe.threads)
    out.mkdir(parents=True, exist_ok=True)
    work = (cache or out / "work") / "models"  # the base and fold networks: scored, not shipped
    instances = every_real_instance()
    grounds = synth.photo_grounds()
    spec = NetSpec()
    t0 = time.perf_counter()
    key = synth.content_key("base", recipe.base_samples, recipe.seed, grounds)
    base_data = synth.cached(
        cache, key, lambda: synth.synthesize(recipe.base_samples, recipe.seed, grounds, grounds, [])
    )
    base_key = synth.content_key(key, spec.as_dict(), recipe.seed, recipe.base_steps, recipe.lr, recipe.batch)
    base_cached = (work / f"base-{base_key}.pt").exists()
    base = trained_base(spec, base_data, recipe, work / f"base-{base_key}.pt")
    base_path = export(base, work / "base.pt2")
    fold = folds_of([i.photo for i in instances], recipe.folds)
    fold_paths = {}
    for k in range(recipe.folds):
        train = [i for i in instances if fold[i.photo] != k]
        model = fine_tune(base, base_data, train, grounds, recipe, recipe.seed + 1 + k, cache)
        fold_paths[k] = export(model, work / f"fold{k}.pt2")
    final = fine_tune(base, base_data, instances, grounds, recipe, recipe.seed + 100, cache)
    shipped = export(final, out / CHECKPOINT_NAME)
    minutes = (time.perf_counter() - t0) / 60
    held = score(instances, {i.photo: str(fold_paths[fold[i.photo]]) for i in instances})
    synthetic_only = score(instances, {i.photo: str(base_path) for i in instances})
    card = model_card(shipped, spec, recipe, fold, held, synthetic_only, minutes)
    card["base_from_cache"] = base_cached
    (out / CARD_NAME).write_text(json.dumps(card, indent=1) + "\n")
    return card


def model_card(
    path: Path, spec: NetSpec, recipe: Recipe, fold: dict[str, int], held: Scores, base: Scores, minutes: float
) -> dict:
    import hashlib

    return {
        "name": "learned shadow detector (exported backend)",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "checkpoint": path.name,
        "size_bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "contract": "model(image[1,3,H,W] 0..1, object[1,1,H,W]) -> shadow probability[1,1,H,W], dynamic H, W",
        "spec": spec.as_dict(),
        "recipe": asdict(recipe),
        "training_minutes_cpu_wall": round(minutes, 1),
        "data": {
            "ground_and_texture_photos": list(synth.GROUND_PHOTOS),
            "generator_version": synth.GENERATOR_VERSION,
            "base": "synthetic shadows (rendered silhouettes) on the ground photos only",
            "fine_tune": "shadows cast with the real object masks of the training photos, on those photos and "
            "the ground photos, views of their real instances, a third of the base data",
            "shipped": "fine-tuned on every real photo; its figures are the folds' (leave photos out)",
        },
        "folds": fold,
        "held_out": {"folds": held.summary(), "synthetic_only_base": base.summary()},
        "per_instance_held_out": held.rows(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=CHECKPOINT)
    p.add_argument("--cache", type=Path, default=Path("out/shadow_cache"))
    for name in ("base_samples", "base_steps", "fold_samples", "fold_steps", "real_views", "threads"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(Recipe, name))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    recipe = Recipe(**{k: v for k, v in vars(args).items() if k not in ("out", "cache")})
    card = run(args.out, recipe, args.cache)
    print(json.dumps(card["held_out"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
