"""Run-level files written whole or not at all, and a full disk that says where it was full.

``run.json``, ``stats.json`` and ``report.html`` are rewritten as a run goes: each is written to a temporary
file next to it, flushed to disk and renamed over the old one, so a crash or a full disk leaves the previous
version, never half of a new one. An ``OSError`` raised while writing carries the path it was writing
(:func:`naming`): Python's own ``write`` errors name no file, and a user needs to know which disk is full.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from curation.core.errors import exception_chain
from curation.shard_check import fsync_dir, fsync_file

_WRITING = re.compile(r"\(writing (.+)\)$")


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """An ``OSError`` without a file name that escapes the block is raised again with ``path`` as its name."""
    try:
        yield
    except OSError as err:
        if err.filename is None and err.errno is not None:
            # the path in the message too: Ray Data rebuilds a task's OSError from its errno and message only
            raise OSError(err.errno, f"{err.strerror or os.strerror(err.errno)} (writing {path})", str(path)) from err
        raise


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """``with replacing(path) as tmp:`` write ``tmp``; when the block ends it replaces ``path`` in one step
    (``fsync``, rename). On failure the temporary is removed and ``path`` is as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with naming(path):
            yield tmp
            fsync_file(tmp)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` in one step (see :func:`replacing`)."""
    with replacing(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


def disk_full(exc: BaseException) -> OSError | None:
    """The "no space left" error behind ``exc`` (itself, a cause, or one a Ray task raised), or None."""
    for e in exception_chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return e
    return None


def written_path(err: OSError) -> str | None:
    """The file ``err`` was writing: its file name, or the one :func:`naming` put into its message."""
    if isinstance(err.filename, str) and os.path.isabs(err.filename):
        return err.filename
    found = _WRITING.search(err.strerror or "")
    return found.group(1) if found else None
