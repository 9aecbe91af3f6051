"""``curate config``: the run config's JSON schema (from the pydantic models), or a config as validated.

The schema lists every key with its type, bounds and default; editors that read JSON schema (VS Code's YAML
extension, say) then complete and check a run config as it is typed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from curation.core.config import ConfigError, RunConfig, load_config


def cmd_config(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(RunConfig.model_json_schema(), indent=1))
        return 0
    if args.config is None:
        print("curate config: give a run config to validate, or --schema", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
    except ConfigError as err:
        print(f"curate config: {err}", file=sys.stderr)
        return 2
    print(json.dumps(json.loads(cfg.model_dump_json()), indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="the run config JSON schema, or a config with its defaults filled in")
    p.add_argument("config", nargs="?", type=Path, help="a run config YAML to validate and print in full")
    p.add_argument("--schema", action="store_true", help="print the JSON schema of a run config")
    p.set_defaults(func=cmd_config)
