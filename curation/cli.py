"""``curate``: the command line. Each sub-command lives in its own small function."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from curation.core.config import ConfigError, load_config

#: the run config ``curate run`` uses when none is given (package data: an installed wheel has it too)
DEMO_CONFIG = Path(__file__).resolve().parent / "manifests" / "demo.yaml"


def cmd_run(args: argparse.Namespace) -> int:
    overrides = {"run.out": str(args.out) if args.out else None, "run.limit": args.limit}
    try:
        if args.workers is not None and args.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {args.workers}")
        cfg = load_config(args.config or DEMO_CONFIG, overrides)
        if args.workers is not None:
            cfg = cfg.model_copy(
                update={
                    section: getattr(cfg, section).model_copy(
                        update={
                            "resources": getattr(cfg, section).resources.model_copy(
                                update={"concurrency": args.workers, "max_concurrency": None}
                            )
                        }
                    )
                    for section in ("ingest", "masks", "caption", "curate")
                }
            )
    except ConfigError as err:
        print(f"curate run: {err}", file=sys.stderr)
        return 2
    from curation.console import run_in_terminal

    return run_in_terminal(cfg, verbose=args.verbose, hold_after=args.hold, debug=args.debug)


def cmd_verify(args: argparse.Namespace) -> int:
    from curation.verify import verify

    floor = args.psnr_floor
    if floor is None:
        run_json = Path(args.out) / "run.json"
        floor = json.loads(run_json.read_text())["config"]["verify"]["psnr_floor"] if run_json.exists() else 35.0
    rep = verify(Path(args.out), floor)
    print(
        f"{rep.shards} shards, {rep.samples} samples read back; {rep.ingested} ingested = "
        f"{rep.accepted} accepted + {rep.rejected} rejected; PSNR floor {floor} dB"
    )
    for p in rep.problems[:50]:
        print(f"  PROBLEM {p}")
    if len(rep.problems) > 50:
        print(f"  ... and {len(rep.problems) - 50} more")
    print("verify: OK" if rep.ok else f"verify: FAILED ({len(rep.problems)} problems)")
    return 0 if rep.ok else 1


#: modules that add more sub-commands: each defines ``register(subparsers)`` (imports stay lazy inside)
PLUGINS: tuple[str, ...] = (
    "curation.eval_layers",
    "curation.eval_real",
    "curation.shards",
    "curation.report",
    "curator_model.cli",
    "curation.plan",
    "curation.status",
    "curation.config_cmd",
    "curation.init",
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("layered-curation")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curate", description="Curate layered image triplets into WebDataset shards.")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="command", required=True)
    for module in PLUGINS:
        importlib.import_module(module).register(sub)
    r = sub.add_parser("run", help="run the pipeline on a run config (default: the demo)")
    r.add_argument("config", nargs="?", help="run config YAML (default: manifests/demo.yaml)")
    r.add_argument("--out", type=Path, help="output folder (run.out)")
    r.add_argument("--limit", type=int, help="at most this many source units (run.limit)")
    r.add_argument("--workers", type=int, help="fixed actor-pool size of every stage (resources.concurrency)")
    r.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    r.add_argument("--verbose", action="store_true", help="Ray's own log lines and progress bars on the terminal too")
    r.add_argument(
        "--hold", action="store_true", help="after the run, keep the local Ray (dashboard, metrics) up until Ctrl-C"
    )
    r.set_defaults(func=cmd_run)
    v = sub.add_parser("verify", help="read every shard back and check the contract")
    v.add_argument("out", type=Path)
    v.add_argument("--psnr-floor", type=float, help="default: verify.psnr_floor from the run's run.json")
    v.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; an error that escapes it is one line and exit 1 (``--debug``: the traceback)."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return code
    except BrokenPipeError:  # ``curate shards ... | head``: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0
    except Exception as err:  # noqa: BLE001 - the command line's last word on an unexpected failure
        if args.debug:
            raise
        print(f"curate {args.command}: {type(err).__name__}: {err} (--debug shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
