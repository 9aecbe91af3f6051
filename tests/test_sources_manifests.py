"""The example configs in manifests/ stay valid: every one parses strictly and builds its adapters."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.core.config import load_config
from stages.sources import build_source

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"


@pytest.mark.parametrize(
    "name,types",
    [
        ("coco", {"coco"}),
        ("soba", {"soba"}),
        ("paired", {"paired"}),
        ("folder", {"folder"}),
    ],
)
def test_manifest_parses_and_builds(name, types):
    cfg = load_config(MANIFESTS / f"{name}.yaml")
    assert {s.type for s in cfg.sources} == types
    for src_cfg in cfg.sources:
        assert build_source(src_cfg).name == src_cfg.name
