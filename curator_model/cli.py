"""The curator's sub-commands: ``curate train-curator`` and ``curate label export``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "checkpoint"


def cmd_train(args: argparse.Namespace) -> int:
    from curator_model.labels import LabelsError
    from curator_model.network import CheckpointError
    from curator_model.train import load_train_config, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    overrides = {
        "epochs": args.epochs,
        "seed": args.seed,
        "labels": args.labels,
        "shards": args.shards,
        "human_ratio": args.human_ratio,
        "pretrained": args.pretrained,
    }
    try:
        cfg = load_train_config(args.config, overrides)
        if cfg.labels is not None and not cfg.shards:
            raise ValueError("--labels needs --shards: the run folder(s) whose shards hold the labelled keys")
        card = train(cfg, args.out)
    except (ValueError, LabelsError, CheckpointError) as err:
        print(err, file=sys.stderr)
        return 2
    print(
        "test split (metrics only), at the threshold chosen on the calibration split:\n" + card["metrics"]["table_test"]
    )
    print("\nwhat a run ships of the real photos, at that threshold:\n" + card["metrics"]["table_real_shipped"])
    print(
        f"\ncheckpoint {args.out / card['checkpoint']} ({card['size_bytes'] / 1e6:.1f} MB), threshold "
        f"{card['threshold']:.6g}, trained in {card['training']['train_seconds']:.0f} s; model card "
        f"{args.out / 'model_card.json'}"
    )
    return 0


def cmd_label_export(args: argparse.Namespace) -> int:
    from curator_model.network import DEFAULT_CHECKPOINT, CheckpointError, Curator
    from curator_model.review import false_reject_candidates, review_candidates, write_review

    try:
        curator = Curator(args.checkpoint or DEFAULT_CHECKPOINT, "cpu")
    except CheckpointError as err:
        print(err, file=sys.stderr)
        return 2
    threshold = args.threshold if args.threshold is not None else curator.spec.threshold
    candidates = review_candidates(curator, [args.out], args.n, threshold)
    rejects = false_reject_candidates(curator, [args.out], args.n)
    if not candidates and not rejects:
        print(
            f"no complete shards with samples under {args.out / 'shards'}, and no rejects kept for review",
            file=sys.stderr,
        )
        return 1
    page = args.html or args.out / "label_review.html"
    write_review(page, candidates, threshold, str(args.out), rejects)
    print(
        json.dumps(
            {
                "page": str(page),
                "samples": len(candidates),
                "real_rejects": sum(c.real and c.rejected for c in candidates),
                "rejects": len(rejects),
                "threshold": threshold,
            }
        )
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train-curator", help="train the curator on generated (+ human) labels; writes safetensors + model card"
    )
    t.add_argument(
        "--config",
        type=Path,
        help="training config YAML (curator_model.train.TrainConfig); default: the shipped recipe",
    )
    t.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for curator.safetensors + model_card.json")
    t.add_argument("--labels", type=Path, help="human labels, CSV or Parquet: key,label[,failure]")
    t.add_argument("--shards", type=Path, nargs="+", help="run folder(s) whose shards hold the labelled keys")
    t.add_argument("--human-ratio", type=float, help="fraction of each epoch drawn from the human labels")
    t.add_argument("--epochs", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--pretrained", type=Path, help="local backbone weights for the architecture (never downloaded)")
    t.set_defaults(func=cmd_train)

    lab = sub.add_parser("label", help="the labelling loop")
    lsub = lab.add_subparsers(dest="label_command", required=True)
    e = lsub.add_parser(
        "export",
        help="write an HTML review page: real-photo rejects first, then the samples the curator is least sure about",
    )
    e.add_argument("out", type=Path, help="a run folder (its complete shards are scored)")
    e.add_argument("--n", type=int, default=48, help="how many samples to show")
    e.add_argument("--html", type=Path, help="page path (default: OUT/label_review.html)")
    e.add_argument("--checkpoint", type=Path, help="curator checkpoint (default: the shipped one)")
    e.add_argument("--threshold", type=float, help="default: the checkpoint's threshold")
    e.set_defaults(func=cmd_label_export)
