"""One run at a time per output folder: an exclusive ``flock`` on ``OUT/.lock`` for the whole run.

The kernel releases a ``flock`` when its holder dies (``kill -9`` included), so a lock left by a dead
run is simply taken by the next one: there is no stale lock to clean up. The file tells a second run who
holds the folder (pid, host, start time), and carries the holder's token: a write task of a killed
driver can outlive it by a moment, and it checks the token before it marks a shard complete, so it
cannot add a shard under the next run (whose resume has already listed the done keys). ``flock`` works on local file
systems; on NFS
it depends on the mount (see docs/operations.md).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import uuid
from pathlib import Path
from types import TracebackType

from curation.core.config import ConfigError

LOCK_NAME = ".lock"


class OutLocked(ConfigError):
    """Another run holds the output folder (a user error: the CLI prints it as one line, exit 2)."""


class OutLock:
    """``with OutLock(out):`` holds ``out/.lock`` exclusively, or raises :class:`OutLocked` at once."""

    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_NAME
        self.fd: int | None = None
        #: names this run in the lock file: shard writers check it before they mark a shard complete
        self.token = uuid.uuid4().hex

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace")
            os.close(fd)
            raise OutLocked(
                f"{self.path.parent} is in use by another run ({describe(holder)}); "
                f"wait for it to end or choose another --out"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "token": self.token,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> OutLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def holder_token(root: Path) -> str | None:
    """The token of the run that holds ``root`` now (None: no readable holder)."""
    try:
        return json.loads((Path(root) / LOCK_NAME).read_text()).get("token")
    except (OSError, ValueError, AttributeError):
        return None


def describe(holder: str) -> str:
    """The lock file's text as ``pid 123 on host since 2026-…``."""
    try:
        info = json.loads(holder)
        return f"pid {info['pid']} on {info['host']} since {info['started']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown: it is starting"
