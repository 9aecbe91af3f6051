"""``curate verify OUT``: read every shard back with ``webdataset`` and check the contract.

Each shard is whole (size, member count and SHA-256 as recorded when it was written), each sample has
all members, the layers agree in size, modes are right (foreground RGBA), the stated recomposite PSNR
is at or above the floor and matches a recomputation, keys are unique and dot-free, and counts reconcile:
``ingested = accepted + rejected`` per shard and in total.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import webdataset as wds
from PIL import Image

from curation.core.compositing import recomposite_psnr
from curation.core.schema import LAYER_MEMBERS, OK
from curation.layout import OutDir
from curation.shard_check import shard_problem

MODES = {"composite": "RGB", "background": "RGB", "foreground": "RGBA", "mask": "L", "effect": "L"}
PSNR_SLACK_DB = 0.05  # PNG is lossless: a recomputation may differ only by rounding of the stored value


@dataclass
class Report:
    shards: int = 0
    samples: int = 0
    ingested: int = 0
    accepted: int = 0
    rejected: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_sample(sample: dict, floor: float, problems: list[str]) -> None:
    key = sample["__key__"]
    missing = [m for m in (*[f"{layer}.png" for layer in LAYER_MEMBERS], "json") if m not in sample]
    if missing:
        problems.append(f"{key}: missing members {missing}")
        return
    images = {}
    for layer in LAYER_MEMBERS:
        im = Image.open(io.BytesIO(sample[f"{layer}.png"]))
        if im.format != "PNG":
            problems.append(f"{key}: {layer} is {im.format}, not PNG")
        if im.mode != MODES[layer]:
            problems.append(f"{key}: {layer} mode {im.mode}, expected {MODES[layer]}")
        images[layer] = np.asarray(im)
    sizes = {layer: a.shape[:2] for layer, a in images.items()}
    if len(set(sizes.values())) != 1:
        problems.append(f"{key}: layer sizes disagree {sizes}")
        return
    meta = json.loads(sample["json"])
    stated = meta.get("recomposite_psnr")
    if stated is None or (isinstance(stated, float) and math.isnan(stated)):
        problems.append(f"{key}: no recomposite PSNR stated")
        return
    if stated < floor:
        problems.append(f"{key}: stated recomposite PSNR {stated:.2f} < floor {floor}")
    if images["foreground"].ndim == 3 and images["foreground"].shape[2] == 4:
        actual = min(recomposite_psnr(images["composite"], images["background"], images["foreground"]), 99.0)
        if actual + PSNR_SLACK_DB < min(stated, 99.0):
            problems.append(f"{key}: recomputed PSNR {actual:.2f} dB < stated {stated:.2f}")
    if any(not meta.get("captions", {}).get(k) for k in ("composite", "foreground", "background")):
        problems.append(f"{key}: a caption is missing")


def verify(root: Path, psnr_floor: float) -> Report:
    out = OutDir(Path(root))
    rep = Report()
    if not out.shards.is_dir():
        rep.problems.append(f"{out.shards} does not exist")
        return rep
    seen: set[str] = set()
    for name in out.complete_shards():
        rep.shards += 1
        problem = shard_problem(out.shards, name, deep=True)
        if problem:
            rep.problems.append(f"{name}: {problem}")
        try:
            stats = json.loads((out.shards / f"{name}_stats.json").read_text())
            index = pq.read_table(out.shards / f"{name}.parquet", columns=["key", "status"]).to_pylist()
        except (OSError, ValueError):  # named by shard_problem above; nothing more to check here
            continue
        accepted = {r["key"] for r in index if r["status"] == OK}
        if stats["ingested"] != stats["accepted"] + stats["rejected"] or stats["ingested"] != len(index):
            rep.problems.append(
                f"{name}: counts do not reconcile: {stats['ingested']} ingested, "
                f"{stats['accepted']} accepted + {stats['rejected']} rejected, {len(index)} index rows"
            )
        in_tar: list[str] = []
        try:
            for sample in wds.WebDataset(str(out.shards / f"{name}.tar"), shardshuffle=False, empty_check=False):
                key = sample["__key__"]
                in_tar.append(key)
                if "." in key:
                    rep.problems.append(f"{name}: key {key!r} contains a dot")
                _check_sample(sample, psnr_floor, rep.problems)
        except Exception as exc:  # noqa: BLE001 - a damaged shard is a finding, not a crash
            rep.problems.append(f"{name}: cannot read the tar: {type(exc).__name__}: {exc}")
        if set(in_tar) != accepted or len(in_tar) != stats["accepted"]:
            rep.problems.append(
                f"{name}: tar holds {len(in_tar)} samples, index/stats say {len(accepted)}/{stats['accepted']} accepted"
            )
        for r in index:
            if r["key"] in seen:
                rep.problems.append(f"{name}: key {r['key']} already recorded by another shard")
            seen.add(r["key"])
        rep.samples += len(in_tar)
        rep.ingested += stats["ingested"]
        rep.accepted += stats["accepted"]
        rep.rejected += stats["rejected"]
    total_path = out.root / "stats.json"
    if total_path.exists():
        total = json.loads(total_path.read_text())
        for k in ("ingested", "accepted", "rejected"):
            if total[k] != getattr(rep, k):
                rep.problems.append(f"stats.json {k}={total[k]} but the shards add up to {getattr(rep, k)}")
    else:
        rep.problems.append("stats.json is missing (the run did not finish)")
    if rep.ingested != rep.accepted + rep.rejected:
        rep.problems.append(f"total: {rep.ingested} ingested != {rep.accepted} accepted + {rep.rejected} rejected")
    if rep.accepted == 0:
        rep.problems.append(f"no sample accepted ({rep.ingested} ingested): nothing to train on")
    return rep
