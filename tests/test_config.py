"""The run config fails at start-up with the path of the key that is wrong."""

from __future__ import annotations

import pytest

from curation.cli import DEMO_CONFIG
from curation.core.config import ConfigError, load_config, parse_config

SOURCES = [{"type": "synthetic", "count": 2}]


def test_demo_config_is_valid():
    cfg = load_config(DEMO_CONFIG)
    assert cfg.sources and cfg.masks.resources.batch_size >= 1


def test_unknown_key_names_its_path():
    with pytest.raises(ConfigError, match=r"masks\.resources\.batch_sise"):
        parse_config({"sources": SOURCES, "masks": {"resources": {"batch_sise": 4}}})


def test_bad_value_names_its_path():
    with pytest.raises(ConfigError, match=r"caption\.resources\.batch_size"):
        parse_config({"sources": SOURCES, "caption": {"resources": {"batch_size": "many"}}})


def test_fractional_ray_cpus_fail_at_start():
    """Ray refuses a node with a fractional CPU count: the config says so, not ``ray.init`` mid-start."""
    with pytest.raises(ConfigError, match=r"ray\.num_cpus"):
        parse_config({"sources": SOURCES, "ray": {"num_cpus": 2.5}})
    assert parse_config({"sources": SOURCES, "ray": {"num_cpus": 8}}).ray.num_cpus == 8


def test_unknown_source_type_is_rejected():
    with pytest.raises(ConfigError, match=r"sources\.0"):
        parse_config({"sources": [{"type": "flickr"}]})


def test_overrides_apply_dotted_keys(tmp_path):
    cfg = load_config(DEMO_CONFIG, {"run.out": str(tmp_path), "run.limit": 3})
    assert str(cfg.run.out) == str(tmp_path) and cfg.run.limit == 3


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_ray_address_env_wins(monkeypatch):
    cfg = parse_config({"sources": SOURCES, "ray": {"address": "ray://config:10001"}})
    monkeypatch.setenv("RAY_ADDRESS", "ray://env:10001")
    assert cfg.ray_address() == "ray://env:10001"
