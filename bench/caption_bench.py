"""Captioning throughput: the offline default, and the transformers backend on tiny random VLMs (batch 1 vs 8).

Samples are synthetic scenes with ground-truth layers (what stage 3 receives), so no pipeline or Ray is
involved: this measures the captioner alone. A "sample" gets three captions (composite, foreground,
background); ``captions_per_s`` counts captions, ``samples_per_s`` triplets. The tiny models generate a
fixed number of tokens (``min_new_tokens = max_new_tokens``), so batch sizes compare like for like.
Torch runs on one thread by default, as in the pipeline (Ray gives an actor with ``num_cpus < 2`` one
OpenMP thread); on a loaded shared machine more threads mostly spin.

    .venv/bin/python bench/caption_bench.py [--samples 32] [--tokens 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.core.config import CaptionConfig  # noqa: E402
from curation.core.scenes import render_scene  # noqa: E402
from devdata.tiny_vlm import build_tiny_blip, build_tiny_florence2, build_tiny_qwen2_vl  # noqa: E402
from stages.captioners import Captioner, Sample, build_captioner  # noqa: E402


def synthetic_samples(n: int, size: int = 256) -> list[Sample]:
    """``n`` samples from rendered scenes: the layers a perfect stage 2 would hand to stage 3."""
    samples: list[Sample] = []
    seed = 0
    while len(samples) < n:
        scene = render_scene(seed, size)
        for inst in scene.instances:
            samples.append(
                Sample(inst.label, scene.composite, inst.background, inst.foreground, inst.mask, inst.effect)
            )
        seed += 1
    return samples[:n]


def throughput(captioner: Captioner, samples: list[Sample], batch: int) -> float:
    """Samples per second, captioning ``batch`` samples per call, after one warm-up call."""
    captioner.caption(samples[:batch])
    started = time.perf_counter()
    for i in range(0, len(samples), batch):
        captioner.caption(samples[i : i + batch])
    return len(samples) / (time.perf_counter() - started)


def tiny_captioner(build: Callable[[Path], Path], folder: Path, tokens: int) -> Captioner:
    path = build(folder)
    return build_captioner(
        CaptionConfig.model_validate(
            {
                "backend": "transformers",
                "transformers": {
                    "model": str(path),
                    "generation": {"min_new_tokens": tokens, "max_new_tokens": tokens},
                },
            }
        )
    )


def main(samples: int = 32, tokens: int = 16, threads: int = 1) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    data = synthetic_samples(samples)
    results: dict[str, Any] = {"samples": samples, "new_tokens": tokens, "torch_threads": torch.get_num_threads()}
    offline = throughput(build_captioner(CaptionConfig()), data, 16)
    results["offline_samples_per_s"] = round(offline, 2)
    results["offline_captions_per_s"] = round(3 * offline, 2)
    with tempfile.TemporaryDirectory() as tmp:
        models = (
            ("tiny_blip", build_tiny_blip),
            ("tiny_florence2", build_tiny_florence2),
            ("tiny_qwen2_vl", build_tiny_qwen2_vl),
        )
        for name, build in models:
            captioner = tiny_captioner(build, Path(tmp) / name, tokens)
            for batch in (1, 8):
                rate = throughput(captioner, data, batch)
                results[f"{name}_b{batch}_captions_per_s"] = round(3 * rate, 2)
            results[f"{name}_b8_over_b1"] = round(
                results[f"{name}_b8_captions_per_s"] / results[f"{name}_b1_captions_per_s"], 2
            )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(main(args.samples, args.tokens, args.threads), indent=1))
