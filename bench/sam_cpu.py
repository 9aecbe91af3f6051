"""Seconds per image for the SAM image encoder through the stage's own code (``SamSegmenter.embed``).

Without ``--checkpoint`` it saves randomly initialised weights of the requested size to a temporary file
and loads them through the real loader: the encoder's cost does not depend on the weight values.

    .venv/bin/python bench/sam_cpu.py --model-type vit_b --images 3 [--dtype bfloat16] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from segment_anything.build_sam import _build_sam

from stages.segmenters.sam import SamSegmenter
from stages.segmenters.sam_loader import REGISTRY


def main(argv: list[str] | None = None) -> dict[str, float | str]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-type", default="vit_b", choices=sorted(REGISTRY))
    p.add_argument("--checkpoint", help="a real SAM checkpoint (default: random weights of that size)")
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint
        if ckpt is None:
            dim, depth, heads, glob = REGISTRY[args.model_type]
            ckpt = str(Path(tmp) / f"random_{args.model_type}.pth")
            torch.save(_build_sam(dim, depth, heads, list(glob)).state_dict(), ckpt)
        seg = SamSegmenter(ckpt, args.model_type, args.device, args.dtype, args.batch)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(args.images + 1)]
    seg.embed(images[:1])  # warm-up
    started = time.perf_counter()
    seg.embed(images[1:])
    per_image = (time.perf_counter() - started) / args.images
    print(
        f"SAM {args.model_type} image encoder, {args.device} {args.dtype}, batch {args.batch}, "
        f"{torch.get_num_threads()} threads: {per_image:.2f} s/image over {args.images} images"
    )
    return {
        "model_type": args.model_type,
        "device": args.device,
        "dtype": args.dtype,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "seconds_per_image": round(per_image, 3),
    }


if __name__ == "__main__":
    main()
