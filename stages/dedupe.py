"""The run's duplicate-image registry: one Ray actor that every ingest worker asks whether a photo's pixels came
before. Apart from the ingest stage so that the actor's process, started with every run, imports only this."""

from __future__ import annotations

import json
from collections.abc import Callable

import pyarrow.parquet as pq
import ray

from curation.core.reasons import Reason, StageName


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class DedupeRegistry:
    """Cluster-wide record of image content hashes, so duplicates are caught across ingest workers.

    One actor serialises the claims, so of two workers holding the same pixels exactly one wins. A claim
    is idempotent (a retried task re-claims with the same key and still wins), and ``seed`` carries the
    winners already on disk (see :func:`claimed_digests`). Given as a function, it is called again when
    Ray restarts the actor after a crash, so the registry is rebuilt from every shard written so far; only
    claims of rows still in flight are forgotten (a duplicate among them may then pass, no row is lost).
    """

    def __init__(self, seed: dict[str, str] | Callable[[], dict[str, str]] | None = None) -> None:
        self.first: dict[str, str] = dict((seed() if callable(seed) else seed) or {})

    def claim(self, digest: str, key: str) -> str:
        """The key that first claimed ``digest`` (``key`` itself if it is the first)."""
        return self.first.setdefault(digest, key)


def claimed_digests(index_files: list[str]) -> dict[str, str]:
    """Digest → claiming unit of the images that earlier segments ingested (from the shards' parquet indexes)."""
    seed: dict[str, str] = {}
    for path in index_files:
        table = pq.read_table(path, columns=["reject_reason", "meta"])
        for reason, meta in zip(*(table.column(c).to_pylist() for c in ("reject_reason", "meta")), strict=True):
            claim = json.loads(meta or "{}").get(StageName.INGEST.value, {})
            if claim.get("digest") and reason != Reason.DUPLICATE_IMAGE.value:
                seed.setdefault(claim["digest"], claim["unit"])
    return seed
