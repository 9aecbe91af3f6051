"""``curate shards OUT``: what the shards hold, and re-cutting them (target size, train/val split) byte for byte.

Re-sharding copies each sample's tar members (name, bytes and header fields) unchanged into new shards of
a target size, in the order they were stored, and writes each new shard like the sink does: tar and
index parquet under temporary names, renamed, the ``_stats.json`` marker last. So the result is an OUT
folder that ``curate verify``, ``layered_loader`` and this command read like any run. It holds the
accepted samples only: the rejected rows stay in the source's ``rejects.parquet``.

The split is by a hash of the *photo* a sample comes from (source and ``image_id``), not of the sample:
two objects of one photo share their pixels, and a photo seen in training must not be scored in
validation. A photo lands on the same side on every machine and in every re-run, and raising the
fraction only moves photos from train to val.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import re
import sys
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.atomicio import write_atomic
from curation.core.schema import OK
from curation.finalize import finalize, merge_index
from curation.layout import OutDir
from curation.report import write_report
from curation.shard_check import TAR_FORMAT, commit_shard

QUANTILES = (0, 5, 25, 50, 75, 95, 100)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)


def _quantiles(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return None
    return {f"p{q}": round(float(v), 4) for q, v in zip(QUANTILES, np.percentile(values, QUANTILES), strict=True)}


def _spread(values: list[int]) -> dict[str, float]:
    return {"min": min(values), "median": float(np.median(values)), "max": max(values)}


def summary(root: Path) -> dict[str, Any]:
    """Counts, sizes, sources, score and PSNR quantiles of an OUT folder's complete shards (from index and stats)."""
    out = OutDir(Path(root))
    names = out.complete_shards()
    if not names:
        raise FileNotFoundError(f"{out.shards} holds no complete shard (no *_stats.json)")
    stats = [json.loads((out.shards / f"{n}_stats.json").read_text()) for n in names]
    rows = merge_index(out).select(["status", "source", "score", "psnr", "reject_stage", "reject_reason"]).to_pylist()
    accepted = [r for r in rows if r["status"] == OK]
    sizes = [(out.shards / f"{n}.tar").stat().st_size for n in names]
    samples = [s["accepted"] for s in stats]
    return {
        "out": str(out.root),
        "shards": len(names),
        "ingested": len(rows),
        "accepted": len(accepted),
        "rejected": len(rows) - len(accepted),
        "tar_bytes": sum(sizes),
        "samples_per_shard": _spread(samples),
        "bytes_per_shard": _spread(sizes),
        "bytes_per_sample": round(sum(sizes) / max(1, sum(samples))),
        "by_source": dict(sorted(Counter(r["source"] for r in accepted).items())),
        "curator_score": _quantiles([r["score"] for r in accepted]),
        "unscored": sum(1 for r in accepted if r["score"] is None or not np.isfinite(r["score"])),
        "recomposite_psnr": _quantiles([r["psnr"] for r in accepted]),
        "by_reason": dict(
            Counter(f"{r['reject_stage']}/{r['reject_reason']}" for r in rows if r["status"] != OK).most_common()
        ),
    }


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def format_summary(s: dict[str, Any]) -> str:
    sps, bps = s["samples_per_shard"], s["bytes_per_shard"]
    lines = [
        f"{s['out']}: {s['shards']} shards, {s['accepted']} samples, {_mib(s['tar_bytes'])} "
        f"({s['ingested']} ingested = {s['accepted']} accepted + {s['rejected']} rejected)",
        f"  samples per shard: min {sps['min']}, median {sps['median']:g}, max {sps['max']}; "
        f"per shard {_mib(bps['min'])} / {_mib(bps['median'])} / {_mib(bps['max'])}; "
        f"{s['bytes_per_sample'] / 1024:.0f} KiB per sample",
        "  by source: " + (", ".join(f"{k} {v}" for k, v in s["by_source"].items()) or "-"),
    ]
    for name in ("curator_score", "recomposite_psnr"):
        q = s[name]
        lines.append(
            f"  {name} "
            + (" ".join(f"{k} {v:g}" for k, v in q.items()) if q else "-")
            + (f" ({s['unscored']} unscored)" if name == "curator_score" and s["unscored"] else "")
        )
    if s["by_reason"]:
        lines.append("  rejected: " + ", ".join(f"{k} {v}" for k, v in list(s["by_reason"].items())[:8]))
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """How big a new shard may grow: a sample count, or bytes of tar."""

    samples: int | None = None
    bytes: int | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        """``1000`` (samples) or ``512MB`` / ``1GiB`` / ``200K`` (bytes, powers of 1024)."""
        if text.strip().isdigit():
            if int(text) < 1:
                raise ValueError("--reshard needs at least 1 sample per shard")
            return cls(samples=int(text))
        m = _SIZE.match(text)
        if not m or not m.group(2) and not m.group(3):
            raise ValueError(f"--reshard {text!r}: give a sample count (1000) or a size (512MB, 1GiB)")
        return cls(bytes=int(float(m.group(1)) * 1024 ** "BKMGT".index((m.group(2) or "B").upper())))

    def full(self, samples: int, tar_bytes: int, next_bytes: int) -> bool:
        """Would the next sample overflow a shard that holds ``samples`` in ``tar_bytes``? (never for an empty one)"""
        if samples == 0:
            return False
        if self.samples is not None:
            return samples >= self.samples
        assert self.bytes is not None, "parse() sets samples or bytes"
        return tar_bytes + next_bytes > self.bytes


def split_of(group: str, val_fraction: float) -> str:
    """``val`` for a stable ``val_fraction`` of groups (by SHA-1, the same on every machine), else ``train``."""
    h = int.from_bytes(hashlib.sha1(group.encode()).digest()[:8], "big") / 2.0**64
    return "val" if h < val_fraction else "train"


def photo_of(row: dict[str, Any]) -> str:
    """The split group: the photo a sample was cut from (source + image_id), or the key when no id is known."""
    image_id = json.loads(row["ann"] or "{}").get("image_id")
    return f"{row['source']}/{image_id}" if image_id not in (None, "") else row["key"]


Member = tuple[tarfile.TarInfo, bytes]


def _samples(tar_path: Path) -> Iterator[tuple[str, list[Member]]]:
    """(key, members) in stored order; a sample's members are adjacent in the tar (WebDataset's layout)."""
    key = ""  # set before any member is added
    members: list[Member] = []
    with tarfile.open(tar_path) as tar:
        for info in tar:
            if not info.isfile():
                continue
            k = info.name.split(".", 1)[0]
            if k != key and members:
                yield key, members
                members = []
            key = k
            data = tar.extractfile(info)
            assert data is not None, "a regular file has a body"
            members.append((info, data.read()))
    if members:
        yield key, members


class _Writer:
    """Writes ``{seg}-NNNNNN`` shards into one OUT folder, rolling over at the target size."""

    def __init__(self, out: OutDir, seg: str, target: Target, index: pa.Table, row_of: dict[str, int]):
        self.out, self.seg, self.target, self.index, self.row_of = out, seg, target, index, row_of
        self.count, self.members = 0, 0
        self.tar: tarfile.TarFile | None = None
        self.keys: list[str] = []
        out.shards.mkdir(parents=True, exist_ok=True)

    @property
    def _name(self) -> str:
        return f"{self.seg}-{self.count:06d}"

    def add(self, key: str, members: list[Member]) -> None:
        size = sum(tarfile.BLOCKSIZE + -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE for _, data in members)
        if self.tar is not None and self.target.full(len(self.keys), self.tar.fileobj.tell(), size):
            self.close()
        if self.tar is None:
            self.tar = tarfile.open(self.out.shards / f"{self._name}.tar.tmp", "w", format=TAR_FORMAT)
        for info, data in members:
            self.tar.addfile(copy.copy(info), io.BytesIO(data))
        self.keys.append(key)
        self.members += len(members)

    def close(self) -> None:
        """Finish the current shard: tar and index renamed into place, then the stats marker."""
        if self.tar is None:
            return
        self.tar.close()
        name, shards = self._name, self.out.shards
        rows = self.index.take([self.row_of[k] for k in self.keys])
        rows = rows.set_column(
            rows.schema.get_field_index("shard"), "shard", pa.array([name] * len(self.keys), pa.string())
        )
        pq.write_table(rows, shards / f"{name}.parquet.tmp")
        commit_shard(
            shards,
            name,
            {
                "shard": name,
                "ingested": len(self.keys),
                "accepted": len(self.keys),
                "rejected": 0,
                "by_reason": {},
                "by_source": dict(sorted(Counter(rows.column("source").to_pylist()).items())),
                "tar_members": self.members,
            },
        )
        self.count, self.tar, self.keys, self.members = self.count + 1, None, [], 0


def reshard(root: Path, dest: Path, target: Target, val_fraction: float = 0.0) -> dict[str, Path]:
    """Copy the accepted samples of ``root`` into ``dest`` (or ``dest/train`` + ``dest/val``); returns the folders."""
    src = OutDir(Path(root))
    names = src.complete_shards()
    if not names:
        raise FileNotFoundError(f"{src.shards} holds no complete shard (no *_stats.json)")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: choose a new folder for the re-sharded copy")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"--val must be in [0, 1), got {val_fraction}")
    index = merge_index(src)
    index = index.filter(pc.equal(index["status"], OK))
    rows = index.select(["key", "source", "ann"]).to_pylist()
    row_of = {r["key"]: i for i, r in enumerate(rows)}
    split = {r["key"]: split_of(photo_of(r), val_fraction) if val_fraction else "all" for r in rows}
    folders = {"all": dest} if not val_fraction else {"train": dest / "train", "val": dest / "val"}
    writers = {s: _Writer(OutDir(p), "shard" if s == "all" else s, target, index, row_of) for s, p in folders.items()}
    for name in names:
        for key, members in _samples(src.shards / f"{name}.tar"):
            if key not in split:
                raise ValueError(f"{name}.tar holds {key}, which its index does not list as accepted")
            writers[split[key]].add(key, members)
    run = json.loads(src.run_json.read_text()) if src.run_json.exists() else None
    for s, writer in writers.items():
        writer.close()
        if run is not None:  # the source's config (verify's PSNR floor among it) and where this copy came from
            run["resharded"] = {
                "from": str(src.root),
                "split": s,
                "val_fraction": val_fraction,
                "target": {"samples": target.samples, "bytes": target.bytes},
            }
            write_atomic(writer.out.run_json, json.dumps(run, indent=1))
        finalize(writer.out)
        write_report(writer.out)
    return folders


def cmd_shards(args: argparse.Namespace) -> int:
    try:
        source = summary(args.out)
        summaries: dict[str, dict[str, Any] | None] = {"source": source}
        if args.reshard is not None or args.val:
            if args.to is None:
                raise ValueError("--reshard/--val write a new folder: give it with --to DEST")
            biggest = int(source["samples_per_shard"]["max"])
            target = Target.parse(args.reshard) if args.reshard else Target(samples=max(1, biggest))
            for split, folder in reshard(args.out, args.to, target, args.val).items():
                summaries[split] = summary(folder) if OutDir(folder).complete_shards() else None
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"curate shards: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summaries if len(summaries) > 1 else summaries["source"], indent=1))
    else:
        print("\n\n".join(format_summary(s) if s else f"{split}: no samples" for split, s in summaries.items()))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "shards", help="summarise a run's shards; re-shard them or split train/val (byte for byte)"
    )
    p.add_argument("out", type=Path, help="an OUT folder of a run (or of an earlier re-shard)")
    p.add_argument("--reshard", metavar="N|SIZE", help="new shards of N samples or SIZE bytes (512MB, 1GiB) each")
    p.add_argument(
        "--val",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="also split: this fraction of photos (by hash of source + image_id) to DEST/val, the rest to DEST/train",
    )
    p.add_argument("--to", type=Path, metavar="DEST", help="where --reshard/--val write (a new or empty folder)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_shards)
