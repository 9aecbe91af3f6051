"""How fast stage 4's model backend scores triplets on this machine: ``python -m curator_model.throughput``.

Times the two parts the stage does per batch, on synthetic scenes of 160-256 px: building the
input stack from full-size layers (CPU, per row) and the batched forward pass on the chosen device.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from curator_model.features import Triplet, features
from curator_model.generate import scene_samples
from curator_model.layering import Layering, Stage2Recipe
from curator_model.network import DEFAULT_CHECKPOINT, Curator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16, help="stage 4's default resources.batch_size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    curator = Curator(args.checkpoint, args.device)
    triplets: list[Triplet] = []
    seed = 30_000_000
    lay = Layering(curator.spec.stage2 or Stage2Recipe())  # the layers the checkpoint was trained to judge
    while len(triplets) < args.samples:
        triplets += [s.triplet for s in scene_samples(seed, lay) if s.label == "good"]
        seed += 1
    triplets = triplets[: args.samples]
    curator.predict(np.stack([features(t, curator.spec.input_size) for t in triplets[: args.batch_size]]))  # warm-up
    t0 = time.perf_counter()
    feats = np.stack([features(t, curator.spec.input_size) for t in triplets])
    t1 = time.perf_counter()
    for i in range(0, len(feats), args.batch_size):
        curator.predict(feats[i : i + args.batch_size], args.batch_size)
    t2 = time.perf_counter()
    n = len(feats)
    print(
        json.dumps(
            {
                "samples": n,
                "features_per_s": round(n / (t1 - t0), 1),
                "forward_per_s": round(n / (t2 - t1), 1),
                "stage_per_s": round(n / (t2 - t0), 1),
                "batch_size": args.batch_size,
                "device": args.device,
                "threads": args.threads,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
