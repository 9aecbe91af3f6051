"""The run config: one YAML file validated into typed objects; a bad key fails at start with its path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from curation.core.config.base import Resources, Strict
from curation.core.config.caption import CaptionConfig
from curation.core.config.curate import CurateConfig
from curation.core.config.ingest import IngestConfig, SelectionConfig
from curation.core.config.masks import MasksConfig
from curation.core.config.output import ReportConfig, SinkConfig, VerifyConfig
from curation.core.config.sources import (
    CocoSourceConfig,
    FolderSourceConfig,
    MulanSourceConfig,
    PairedSourceConfig,
    SobaSourceConfig,
    SourceConfig,
    SyntheticSourceConfig,
)

__all__ = [
    "ConfigError",
    "RunConfig",
    "RunSection",
    "RaySection",
    "Resources",
    "SourceConfig",
    "SyntheticSourceConfig",
    "PairedSourceConfig",
    "CocoSourceConfig",
    "SobaSourceConfig",
    "FolderSourceConfig",
    "MulanSourceConfig",
    "IngestConfig",
    "SelectionConfig",
    "MasksConfig",
    "CaptionConfig",
    "CurateConfig",
    "SinkConfig",
    "ReportConfig",
    "VerifyConfig",
    "load_config",
]


class ConfigError(ValueError):
    """A run config that cannot run; the message names the offending key path."""


class RunSection(Strict):
    out: Path = Path("out/demo")
    #: stop after this many source units (images) in total; None = all
    limit: int | None = Field(None, ge=1)
    seed: int = 0
    #: the share of a stage's rows on which its *code* may raise (``stage_error``; bad input is not counted)
    #: before the run stops and exits non-zero (curation/core/errorbudget.py)
    max_error_fraction: float = Field(0.05, ge=0.0, le=1.0)
    #: rows a stage must have seen before that share is judged, in each actor and over the run (a few failures
    #: early on are no verdict on a long run; a run that accepts nothing fails regardless)
    error_budget_min_rows: int = Field(100, ge=1)


class RaySection(Strict):
    #: an existing cluster ("auto", "ray://host:10001"); RAY_ADDRESS in the environment wins
    address: str | None = None
    #: logical CPUs for the embedded local Ray (whole: Ray's rule for a node); None = max(4, 2 × cores) so that
    #: every pool can start
    num_cpus: int | None = Field(None, gt=0)
    #: Ray's web dashboard for the embedded local Ray (off: its processes would share the cores with the stages)
    dashboard: bool = False
    #: ``auto``: consecutive stages that ask for no GPU run in one actor pool, rows passed between them as
    #: Python objects; a GPU stage keeps its own pool. ``off``: one actor pool per stage.
    fusion: Literal["auto", "off"] = "auto"
    #: fail at start when the pools at their minimum size cannot fit the cluster as it is now (turn off for a
    #: cluster whose autoscaler adds nodes on demand: there Ray waits for them)
    check_resources: bool = True
    #: the port of the local Ray's Prometheus endpoint (http://127.0.0.1:PORT/metrics); None: Ray picks a free one
    #: (the run prints it). A cluster's own Ray config sets it there.
    metrics_export_port: int | None = Field(None, ge=1024, le=65535)
    #: the embedded local Ray (its metrics endpoint included) listens on 127.0.0.1 only; true: on every
    #: interface, as Ray does by default (a Prometheus on another machine scrapes it). A cluster sets its own.
    listen_all_interfaces: bool = False
    #: Ray Data's target block size: small blocks keep every actor's in-flight memory bounded
    #: (Ray's 128 MiB default holds ~40 rows of 512-px layers per block, ~1 GB per stage actor)
    target_block_mb: int = Field(16, ge=1, le=1024)


class RunConfig(Strict):
    run: RunSection = RunSection()
    ray: RaySection = RaySection()
    sources: list[SourceConfig] = Field(min_length=1)
    ingest: IngestConfig = IngestConfig()
    masks: MasksConfig = MasksConfig()
    caption: CaptionConfig = CaptionConfig()
    curate: CurateConfig = CurateConfig()
    sink: SinkConfig = SinkConfig()
    report: ReportConfig = ReportConfig()
    verify: VerifyConfig = VerifyConfig()

    def ray_address(self) -> str | None:
        return os.environ.get("RAY_ADDRESS") or self.ray.address


def _format(err: ValidationError) -> str:
    """One line: each offending key path and what is wrong with it."""
    problems = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        problems.append(f"{path}: {e['msg']}")
    return "invalid run config: " + "; ".join(problems)


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def parse_config(data: Any, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Validate a config mapping; ``overrides`` are dotted keys (``run.out``) applied first."""
    if not isinstance(data, dict):
        raise ConfigError("invalid run config: the top level must be a mapping")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(data, dotted, value)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format(err)) from None


def load_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config and validate it."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"run config {p} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"run config {p} is a folder, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"run config {p} cannot be read: {getattr(err, 'strerror', None) or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"run config {p} is not valid YAML: {err}") from None
    return parse_config(data if data is not None else {}, overrides)
