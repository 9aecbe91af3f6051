"""The output folder as DESIGN.md lays it out, and what a (re)run needs to know about it.

Knows which shards are complete (their ``_stats.json`` exists), removes torn ones (left by a crash, or
damaged later, a same-size corruption included: see :mod:`curation.shard_check`), names the next run
segment, and lists the keys already recorded so a rerun does each sample once.
"""

from __future__ import annotations

import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from curation.shard_check import shard_problem
from stages.dedupe import claimed_digests

log = logging.getLogger(__name__)

_STATS = re.compile(r"^(?P<name>.+)_stats\.json$")
_SEG = re.compile(r"^r(\d{3,})-\d{6}")


@dataclass(frozen=True)
class OutDir:
    root: Path

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def work(self) -> Path:
        return self.root / "_work"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    def create(self) -> None:
        self.shards.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)

    def claimed_digests(self) -> dict[str, str]:
        """The image digests that the complete shards hold: the duplicate registry's state on disk (the registry
        calls this when it starts and when Ray restarts it; its process imports only this module and the
        registry's)."""
        return claimed_digests([str(self.shards / f"{n}.parquet") for n in self.complete_shards()])

    def complete_shards(self) -> list[str]:
        """Names of shards whose stats file marks them complete, sorted."""
        if not self.shards.is_dir():
            return []
        return sorted(m["name"] for p in self.shards.iterdir() if (m := _STATS.match(p.name)))

    def remove_torn(self) -> list[str]:
        """Delete temporaries, shard files without a stats marker, and marked shards that fail the deep check
        (SHA-256 of tar and index; their marker first, so an interruption here leaves unmarked files); returns
        what was removed. The shards are hashed by a few threads at once: hashing releases the GIL, and on
        network storage several reads in flight go faster than one."""
        removed = []
        names = self.complete_shards()
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            problems = list(pool.map(lambda n: shard_problem(self.shards, n, deep=True), names))
        for name, problem in zip(names, problems, strict=True):
            if problem:
                log.warning("shard %s is damaged (%s): removed, its samples are done again", name, problem)
                marker = self.shards / f"{name}_stats.json"
                marker.unlink(missing_ok=True)
                removed.append(marker.name)
        complete = set(self.complete_shards())
        for p in sorted(self.shards.glob("*")):
            stem = p.name.split(".")[0]
            if p.name.endswith(".tmp") or (p.suffix in (".tar", ".parquet") and stem not in complete):
                p.unlink(missing_ok=True)  # a write task of a killed run may still be renaming its files
                removed.append(p.name)
        return removed

    def done_keys(self) -> frozenset[str]:
        """Every key recorded (accepted or rejected) by a complete shard."""
        keys: set[str] = set()
        for name in self.complete_shards():
            keys.update(pq.read_table(self.shards / f"{name}.parquet", columns=["key"]).column("key").to_pylist())
        return frozenset(keys)

    def index_rows(
        self, columns: tuple[str, ...] = ("status", "reject_stage", "reject_reason", "reject_detail")
    ) -> list[dict]:
        """The index rows (``columns`` of them) of every complete shard, all run segments."""
        return [
            row
            for name in self.complete_shards()
            for row in pq.read_table(self.shards / f"{name}.parquet", columns=list(columns)).to_pylist()
        ]

    def next_segment(self) -> str:
        """``r000`` for the first run into this folder, then ``r001``, … (never reuses a shard name)."""
        used = [int(m.group(1)) for p in self.shards.glob("*") if (m := _SEG.match(p.name))]
        history = json.loads(self.run_json.read_text()).get("history", []) if self.run_json.exists() else []
        return f"r{max(used + [len(history) - 1, -1]) + 1:03d}"
