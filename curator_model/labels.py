"""Human labels: the one definition of the labels file, and reading labelled triplets back from shards and
from the thumbnails a run kept of a sample of its rejects (so a false reject can be labelled good).

A labels file is CSV or Parquet with columns ``key,label[,failure]``: ``label`` is ``good`` or ``bad``;
``failure`` (optional, may be empty) names the failure mode of a bad sample. The review page
(:mod:`curator_model.review`) writes exactly this CSV; ``curate train-curator --labels`` reads it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import webdataset as wds

from curation.core.imageio import decode_png
from curation.core.rejects import reject_samples
from curator_model.features import Triplet
from curator_model.network import FAILURES

COLUMNS: tuple[str, ...] = ("key", "label", "failure")
LABELS: tuple[str, ...] = ("good", "bad")


class LabelsError(ValueError):
    """A labels file that cannot be used; the message names the file and the row."""


@dataclass(frozen=True)
class Label:
    key: str
    good: bool
    failure: str = ""  # empty: bad for an unstated reason


def to_csv(labels: Iterable[Label]) -> str:
    """The CSV text of a labels file (what the review page downloads)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for lab in labels:
        w.writerow([lab.key, "good" if lab.good else "bad", lab.failure])
    return buf.getvalue()


def read_labels(path: str | Path) -> list[Label]:
    """Read and validate a CSV/Parquet labels file; the last label of a repeated key wins."""
    path = Path(path)
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise LabelsError(f"labels file {path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise LabelsError(f"labels file {path} cannot be read: {exc}") from exc
    missing = [c for c in ("key", "label") if c not in df.columns]
    if missing:
        raise LabelsError(f"labels file {path} lacks column(s) {missing}; expected {','.join(COLUMNS)}")
    out: dict[str, Label] = {}
    for i, rec in enumerate(df.to_dict("records"), start=2):
        key, label = str(rec["key"]).strip(), str(rec["label"]).strip().lower()
        failure = str(rec.get("failure") or "").strip()
        if label not in LABELS:
            raise LabelsError(f"{path} line {i}: label {label!r} is not one of {LABELS}")
        if failure and (label == "good" or failure not in FAILURES):
            raise LabelsError(
                f"{path} line {i}: failure {failure!r} must be empty or one of {FAILURES} on a bad sample"
            )
        if not key:
            raise LabelsError(f"{path} line {i}: empty key")
        out[key] = Label(key, label == "good", failure)
    return list(out.values())


def shard_samples(out_dirs: Iterable[str | Path], keys: set[str] | None = None) -> Iterator[tuple[str, Triplet, dict]]:
    """Triplets and their ``{key}.json`` from the complete shards of run folders (``OUT/shards/*.tar``),
    optionally only ``keys``."""
    urls = []
    for out in out_dirs:
        shards = Path(out) / "shards"
        urls += [str(p) for p in sorted(shards.glob("*.tar")) if (shards / f"{p.stem}_stats.json").exists()]
    if not urls:
        return
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        key = sample["__key__"]
        if keys is not None and key not in keys:
            continue
        layers = {
            n: decode_png(sample[f"{n}.png"]) for n in ("composite", "background", "foreground", "mask", "effect")
        }
        yield key, Triplet(**layers), json.loads(sample.get("json", b"{}"))


@dataclass
class KeptReject:
    """A rejected row whose layers a run kept as thumbnails, complete enough for the curator to score."""

    key: str
    reason: str  # stage/reason
    detail: str
    triplet: Triplet  # at thumbnail size
    score: float | None  # the curator's P(good) in the run, on the full-size layers (None: not scored)


def kept_rejects(out_dirs: Iterable[str | Path], keys: set[str] | None = None) -> Iterator[KeptReject]:
    """The kept rejects of run folders (``OUT/rejects.parquet``) that have every layer, optionally only ``keys``
    (rows rejected before stage 2 made a foreground have no triplet to label)."""
    for out in out_dirs:
        path = Path(out) / "rejects.parquet"
        if not path.exists():
            continue
        for reason, rows in reject_samples(pq.read_table(path)).items():
            for row in rows:
                layers = row["thumbnails"]
                if (keys is None or row["key"] in keys) and all(v is not None for v in layers.values()):
                    score = row["score"] if row["score"] is not None and math.isfinite(row["score"]) else None
                    yield KeptReject(row["key"], reason, row["reject_detail"] or "", Triplet(**layers), score)
