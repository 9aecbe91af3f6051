"""``run.json``: the config, software versions, git revision and the history of runs into this folder."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from curation.atomicio import write_atomic
from curation.core.config import RunConfig

PACKAGES = (
    "ray",
    "torch",
    "transformers",
    "timm",
    "segment-anything",
    "webdataset",
    "opencv-contrib-python-headless",
    "pyarrow",
    "numpy",
    "pillow",
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if rev.returncode != 0:
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def start_run(path: Path, cfg: RunConfig, seg: str, resumed_keys: int, removed: list[str]) -> dict[str, Any]:
    """Record the start of a run segment (appending to the history of earlier ones)."""
    info = json.loads(path.read_text()) if path.exists() else {"history": []}
    info.update(config=json.loads(cfg.model_dump_json()), versions=versions(), git_revision=git_revision())
    info["history"].append(
        {
            "segment": seg,
            "start": now(),
            "end": None,
            "skipped_done_keys": resumed_keys,
            "removed_torn_files": removed,
            "ray_address": cfg.ray_address() or "local",
        }
    )
    info.setdefault("start", info["history"][0]["start"])
    write_atomic(path, json.dumps(info, indent=1))
    return info


def end_run(path: Path, stats: dict[str, Any], seconds: float, failure: str | None = None) -> None:
    """Record the end of a run segment; ``failure``: why it failed (the error budget, nothing accepted)."""
    info = json.loads(path.read_text())
    info["history"][-1].update(end=now(), wall_seconds=round(seconds, 2), failure=failure)
    info["end"] = info["history"][-1]["end"]
    info["totals"] = {k: stats[k] for k in ("shards", "ingested", "accepted", "rejected")}
    write_atomic(path, json.dumps(info, indent=1))


def record_progress(path: Path, snapshot: dict[str, Any]) -> None:
    """Keep the run segment's per-stage figures (the progress tally's last snapshot) in its history entry:
    inputs, accepted, rejected by reason, batches, busy seconds, first and last batch; the sink's shards."""
    info = json.loads(path.read_text())
    wall = {k: snapshot[k] for k in ("units", "started", "now")}
    info["history"][-1].update(progress={**wall, "stages": snapshot["stages"], "sink": snapshot["sink"]})
    write_atomic(path, json.dumps(info, indent=1))
