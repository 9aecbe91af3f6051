"""A shard is complete when its files say so, not when they merely exist.

Writing (:func:`commit_shard`): the tar and the index parquet are flushed to disk (``fsync``) under their
temporary names, renamed into place, and then the ``_stats.json`` marker is written the same way with the
tar's size, member count and SHA-256. A machine that loses power after the marker is on disk still has
whole files behind it.

Checking (:func:`shard_problem`): a shard the marker calls complete can still be damaged later (a disk, an
interrupted copy or rsync, a flipped bit). The quick check compares the tar's size and member count and
the index's row count with the marker; the deep check also recomputes the SHA-256 of the tar and of the
index. Every run starts with the deep check of each complete shard (:meth:`curation.layout.OutDir.remove_torn`),
as ``curate verify`` does: a damaged shard of the same size is caught too, removed, and its keys done again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

#: the tar format of every shard: PAX headers have no 100-byte limit on member names
TAR_FORMAT = tarfile.PAX_FORMAT


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make renames inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def durable_replace(tmp: Path, dst: Path) -> None:
    """Rename ``tmp`` over ``dst`` with its bytes on disk first."""
    fsync_file(tmp)
    os.replace(tmp, dst)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def count_members(path: Path) -> int:
    """Regular-file members of a tar, reading headers only; a tar cut short raises ``tarfile.ReadError``."""
    with tarfile.open(path) as tar:
        return sum(1 for info in tar if info.isfile())


class Superseded(RuntimeError):
    """The output folder belongs to another run now: this writer's run is dead, its shard is not marked."""


def commit_shard(
    shards_dir: Path, name: str, stats: dict[str, Any], still_ours: Callable[[], bool] = lambda: True
) -> dict[str, Any]:
    """Move ``{name}.tar.tmp`` and ``{name}.parquet.tmp`` into place, then write the marker; returns ``stats``
    with the tar's size and SHA-256 added (``stats`` carries ``tar_members``, counted by the writer).

    ``still_ours`` is asked right before the marker lands: False (the run that started this write has
    died and another holds the folder) raises :class:`Superseded` and leaves an unmarked, torn shard.
    """
    tar_tmp, index_tmp = shards_dir / f"{name}.tar.tmp", shards_dir / f"{name}.parquet.tmp"
    stats = {
        **stats,
        "tar_bytes": tar_tmp.stat().st_size,
        "tar_sha256": sha256_of(tar_tmp),
        "index_sha256": sha256_of(index_tmp),
    }
    durable_replace(tar_tmp, shards_dir / f"{name}.tar")
    durable_replace(index_tmp, shards_dir / f"{name}.parquet")
    marker_tmp = shards_dir / f"{name}_stats.json.tmp"
    marker_tmp.write_text(json.dumps(stats, indent=1))
    fsync_file(marker_tmp)
    if not still_ours():
        raise Superseded(f"{shards_dir.parent} is held by another run: shard {name} left unmarked")
    os.replace(marker_tmp, shards_dir / f"{name}_stats.json")
    fsync_dir(shards_dir)
    return stats


def shard_problem(shards_dir: Path, name: str, deep: bool = False) -> str | None:
    """Why the shard that ``{name}_stats.json`` marks complete is not whole, or None when it is.

    Quick: the marker parses, the index parquet reads with the marker's row count, the tar has the
    recorded size and member count. ``deep`` adds the SHA-256 of the tar and of the index (shards written
    before the index's was recorded are checked on the tar's alone).
    """
    try:
        stats = json.loads((shards_dir / f"{name}_stats.json").read_text())
        tar = shards_dir / f"{name}.tar"
        if not tar.is_file():
            return "the tar is missing"
        if tar.stat().st_size != stats["tar_bytes"]:
            return f"the tar has {tar.stat().st_size} bytes, its stats say {stats['tar_bytes']}"
        rows = pq.read_metadata(shards_dir / f"{name}.parquet").num_rows
        if rows != stats["ingested"]:
            return f"the index has {rows} rows, its stats say {stats['ingested']}"
        if "tar_members" in stats and count_members(tar) != stats["tar_members"]:
            return f"the tar does not hold the {stats['tar_members']} members its stats record"
        if deep and "tar_sha256" in stats and sha256_of(tar) != stats["tar_sha256"]:
            return "the tar's SHA-256 differs from the one recorded when it was written"
        if deep and "index_sha256" in stats and sha256_of(shards_dir / f"{name}.parquet") != stats["index_sha256"]:
            return "the index's SHA-256 differs from the one recorded when it was written"
    except (OSError, ValueError, KeyError, TypeError, tarfile.TarError, EOFError) as err:
        return f"cannot be read: {type(err).__name__}: {err}"
    return None
