"""End of a run: merge the complete shards' indexes and stats into the run-level files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.atomicio import replacing, write_atomic
from curation.core.schema import OK, REJECTED
from curation.layout import OutDir


def merge_index(out: OutDir) -> pa.Table:
    names = out.complete_shards()
    tables = [pq.read_table(out.shards / f"{n}.parquet") for n in names]
    if not tables:
        from curation.sink import INDEX_SCHEMA

        return INDEX_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def merge_stats(out: OutDir, segment: str | None = None) -> dict[str, Any]:
    """The complete shards' stats summed (only those of one run ``segment``, when given)."""
    names = [n for n in out.complete_shards() if segment is None or n.startswith(f"{segment}-")]
    shards = [json.loads((out.shards / f"{n}_stats.json").read_text()) for n in names]
    reasons: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    for s in shards:
        reasons.update(s["by_reason"])
        sources.update(s["by_source"])
    return {
        "shards": len(shards),
        "ingested": sum(s["ingested"] for s in shards),
        "accepted": sum(s["accepted"] for s in shards),
        "rejected": sum(s["rejected"] for s in shards),
        "by_reason": dict(reasons.most_common()),
        "by_source": dict(sorted(sources.items())),
        "tar_bytes": sum(s["tar_bytes"] for s in shards),
        "per_shard": {s["shard"]: {k: s[k] for k in ("ingested", "accepted", "rejected")} for s in shards},
    }


def finalize(out: OutDir) -> dict[str, Any]:
    """Write ``index.parquet``, ``rejects.parquet`` and ``stats.json``; return the stats (``report.html`` is
    written from these and run.json once the run has recorded its end: :func:`curation.report.write_report`)."""
    index = merge_index(out)
    with replacing(out.root / "index.parquet") as tmp:
        pq.write_table(index, tmp)
    with replacing(out.root / "rejects.parquet") as tmp:
        pq.write_table(index.filter(pc.equal(index["status"], REJECTED)), tmp)
    stats = merge_stats(out)
    stats["accepted_in_index"] = int(pc.sum(pc.equal(index["status"], OK)).as_py() or 0)
    write_atomic(out.root / "stats.json", json.dumps(stats, indent=1))
    return stats


def run_files(root: Path) -> dict[str, Path]:
    """Where a user finds the run's outputs."""
    return {
        name: root / name
        for name in ("shards", "index.parquet", "rejects.parquet", "stats.json", "report.html", "run.json")
    }
