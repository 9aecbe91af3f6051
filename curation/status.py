"""``curate status OUT``: a run's state from another terminal, from the files it writes as it goes.

A run writes ``run.json`` when a segment starts (its config and start) and ends, each shard's
``_stats.json`` as the shard lands, and ``_work/progress.json`` (the progress tally's snapshot, every second
while ``curate run`` watches it). The lock file ``.lock`` names the process that holds the folder. From these:
whether the run is going, each stage's counts with its rate and ETA, the shards so far, the folder's totals.
Nothing here touches the run: the lock is read, never taken.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from curation.finalize import merge_stats
from curation.layout import OutDir
from curation.lock import LOCK_NAME
from curation.progress_view import PROGRESS_FILE, progress_lines


def holder(root: Path) -> dict[str, Any] | None:
    """Who holds the folder's lock: its recorded pid, host and start when that process is alive on this
    host (or on another host: it cannot be checked from here, so it is taken at its word); else None."""
    try:
        info = json.loads((root / LOCK_NAME).read_text() or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or "pid" not in info:
        return None
    if info.get("host") != socket.gethostname():
        return info
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        return info
    return info


def read_snapshot(out: OutDir, segment: str) -> dict[str, Any] | None:
    """The latest progress snapshot of ``segment`` (None when there is none, or it is an earlier segment's)."""
    try:
        snap = json.loads((out.work / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return snap if snap.get("segment") == segment else None


def status_lines(root: Path, width: int = 1000, now: float | None = None) -> list[str]:
    out = OutDir(root)
    info = json.loads(out.run_json.read_text())
    seg = info["history"][-1]
    who = holder(root)
    if seg.get("end"):
        state = f"finished {seg['end']} ({seg.get('wall_seconds', '?')} s)"
    elif who:
        state = f"running: pid {who['pid']} on {who.get('host', '?')}, since {seg['start']}"
    else:
        state = f"did not end (started {seg['start']}; no process holds the folder: a rerun resumes it)"
    lines = [f"{root}: segment {seg['segment']} {state}"]
    snap = read_snapshot(out, seg["segment"])
    if snap is not None:
        written = snap["now"]
        if who and not seg.get("end"):  # rates and ETAs as of now: a stalled run shows its rates falling
            snap = {**snap, "now": time.time() if now is None else now}
        lines += progress_lines(snap, width)
        lines.append(
            f"(progress as of {time.strftime('%H:%M:%S', time.localtime(written))}, "
            f"{max(0.0, (time.time() if now is None else now) - written):.0f} s ago)"
        )
    else:
        lines.append(
            "(no progress file for this segment: the run was not started by `curate run`, or has not "
            "reported yet; counts below are from the shards written)"
        )
    part = merge_stats(out, seg["segment"])
    lines.append(
        f"shards of this segment: {part['shards']} complete, {part['ingested']} rows = {part['accepted']} "
        f"accepted + {part['rejected']} rejected"
    )
    total = merge_stats(out)
    lines.append(
        f"whole folder: {total['shards']} shards, {total['ingested']} rows = {total['accepted']} accepted + "
        f"{total['rejected']} rejected"
    )
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    if not (args.out / "run.json").is_file():
        print(f"curate status: {args.out} is not a run folder (no run.json)", file=sys.stderr)
        return 2
    width = shutil.get_terminal_size().columns - 1 if sys.stdout.isatty() else 1000
    for line in status_lines(args.out, width):
        print(line)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("status", help="the state of a run folder, also while a run writes it")
    p.add_argument("out", type=Path, help="a run folder")
    p.set_defaults(func=cmd_status)
