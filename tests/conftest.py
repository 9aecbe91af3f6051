"""Shared fixtures: one local Ray session for the whole test run, small fast configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.pop("RAY_ADDRESS", None)  # tests never join a cluster by accident

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray for every test that needs it (starting Ray costs ~8 s)."""
    import ray
    import ray.data

    if not ray.is_initialized():
        # "local": a new Ray of its own, never a `ray start` cluster that happens to run on the machine
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    yield ray
    ray.shutdown()


def small_config(out: Path, **sections: Any):
    """A run config for tests: small synthetic scenes; ``sections`` override whole top-level keys."""
    from curation.core.config import parse_config

    data: dict[str, Any] = {
        "run": {"out": str(out)},
        "sources": [{"type": "synthetic", "name": "synth", "count": 10, "size": 96, "seed": 3, "paired_fraction": 0.5}],
        "sink": {"shard_size": 8},
    }
    data.update(sections)
    return parse_config(data)
