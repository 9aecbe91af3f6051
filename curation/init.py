"""``curate init DIR``: the example run configs, the Grafana dashboard and the Prometheus alerting rules, copied
out of the package.

They ship inside the package (``curation/manifests``), so an installed wheel has them; ``curate init`` puts
them where a user can edit them, then ``curate run DIR/manifests/demo.yaml`` runs the offline demo.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

MANIFESTS = Path(__file__).resolve().parent / "manifests"


def init(dest: Path) -> list[Path]:
    """Copy the packaged manifests (run configs, ``grafana/curation.json``) into ``dest/manifests``; refuses to
    overwrite a file that is there. Returns the files written."""
    target = dest / "manifests"
    files = sorted(p for p in MANIFESTS.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json"))
    clashes = [target / p.relative_to(MANIFESTS) for p in files if (target / p.relative_to(MANIFESTS)).exists()]
    if clashes:
        raise FileExistsError(f"{clashes[0]} exists (and {len(clashes) - 1} more): choose another folder")
    written = []
    for p in files:
        out = target / p.relative_to(MANIFESTS)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, out)
        written.append(out)
    return written


def cmd_init(args: argparse.Namespace) -> int:
    try:
        written = init(args.dir)
    except (FileExistsError, NotADirectoryError, PermissionError) as err:
        print(f"curate init: {err}", file=sys.stderr)
        return 2
    print(
        f"{len(written)} files in {args.dir / 'manifests'}; the offline demo: "
        f"curate run {args.dir / 'manifests' / 'demo.yaml'} --out {args.dir / 'out' / 'demo'}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("init", help="copy the example run configs and the Grafana dashboard into DIR/manifests")
    p.add_argument("dir", type=Path, help="a folder (created when missing)")
    p.set_defaults(func=cmd_init)
