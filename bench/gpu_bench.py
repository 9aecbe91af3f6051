"""GPU throughput of the two production-size models, with random weights (speed does not depend on them).

Self-contained (imports only torch, segment-anything and transformers; downloads nothing):

- the SAM image encoder at ``vit_h`` size, built by ``segment_anything``'s registry without a checkpoint,
  on 1024x1024 inputs: images/s;
- a 2B-class VLM built from a config with Qwen2-VL-2B's dimensions (2.21B parameters, 665M of them the vision
  tower), a 448x448 image (256 visual tokens) plus a short prompt, greedy decoding of a fixed number of new
  tokens: images/s and generated tokens/s, and the prefill time alone.

Batch sizes 1, 4 and 16, bf16, transformers' default attention (SDPA; recorded in the results).
Expected to take a few minutes on one H100 (estimated from the model sizes: it has not run on a GPU yet).

    python bench/gpu_bench.py                 # on the device machine; writes bench/gpu_results.json
    python bench/gpu_bench.py --cpu-smoke     # tiny models on the CPU: checks that the script runs
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

RESULTS = Path(__file__).resolve().parent / "gpu_results.json"


@dataclass(frozen=True)
class Sizes:
    """Model and input sizes: production (the default) or tiny (``--cpu-smoke``)."""

    sam: dict[str, Any]  # arguments of segment_anything.build_sam._build_sam, None = the vit_h registry entry
    text: dict[str, Any]
    vision: dict[str, Any]
    image_px: int  # VLM input side (multiple of patch x merge = 28)
    prompt_tokens: int
    new_tokens: int
    batches: tuple[int, ...]
    repeats: int
    special_ids: dict[str, Any] | None = None  # image/video/vision start/end token ids (None: Qwen2-VL's)


# Qwen2-VL-2B-Instruct's published dimensions.
QWEN2_VL_2B_TEXT = dict(
    vocab_size=151936,
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
)
QWEN2_VL_2B_VISION = dict(
    depth=32,
    embed_dim=1280,
    hidden_size=1536,
    mlp_ratio=4,
    num_heads=16,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
)

FULL = Sizes(
    sam={},
    text=QWEN2_VL_2B_TEXT,
    vision=QWEN2_VL_2B_VISION,
    image_px=448,
    prompt_tokens=32,
    new_tokens=64,
    batches=(1, 4, 16),
    repeats=3,
)
SMOKE = Sizes(
    sam=dict(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1]),
    text=dict(
        vocab_size=1024,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=1004,
        eos_token_id=1005,
        rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]},
    ),
    vision=dict(
        depth=2,
        embed_dim=32,
        hidden_size=64,
        mlp_ratio=2,
        num_heads=2,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
    ),
    image_px=56,
    prompt_tokens=8,
    new_tokens=4,
    batches=(1, 2),
    repeats=1,
    special_ids=dict(image_token_id=1000, video_token_id=1001, vision_start_token_id=1002, vision_end_token_id=1003),
)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def bench_sam(sizes: Sizes, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Images/s of SAM's image encoder (the part of SAM that costs; prompts and masks are cheap)."""
    from segment_anything import sam_model_registry
    from segment_anything.build_sam import _build_sam

    with device:
        sam = _build_sam(**sizes.sam) if sizes.sam else sam_model_registry["vit_h"](checkpoint=None)
    encoder = sam.image_encoder.to(device=device, dtype=dtype).eval()
    side = encoder.img_size
    out: dict[str, Any] = {
        "model": "vit_h" if not sizes.sam else "tiny",
        "input_px": side,
        "params_m": sum(p.numel() for p in encoder.parameters()) / 1e6,
        "batches": {},
    }
    for batch in sizes.batches:
        x = torch.randn(batch, 3, side, side, device=device, dtype=dtype)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode():
            seconds = timed(functools.partial(encoder, x), device, sizes.repeats)
        out["batches"][batch] = {
            "seconds_per_batch": seconds,
            "images_per_s": batch / seconds,
            "peak_gib": peak_gib(device),
        }
        print(
            f"SAM image encoder {out['model']} {side}px  batch {batch:3d}: {batch / seconds:8.2f} images/s "
            f"({seconds * 1000:.0f} ms/batch)",
            flush=True,
        )
    del sam, encoder
    return out


def vlm_inputs(config: Any, sizes: Sizes, batch: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """What a Qwen2-VL processor would hand the model for ``batch`` images of ``image_px`` and a prompt."""
    v = config.vision_config
    grid = sizes.image_px // v.patch_size
    patches = grid * grid
    image_tokens = patches // v.spatial_merge_size**2
    gen = torch.Generator().manual_seed(0)
    text = torch.randint(0, config.vision_start_token_id, (batch, sizes.prompt_tokens), generator=gen)  # plain words
    half = sizes.prompt_tokens // 2
    image = torch.full((batch, image_tokens), config.image_token_id)
    input_ids = torch.cat([text[:, :half], image, text[:, half:]], dim=1).to(device)
    pixel_values = torch.randn(batch * patches, 3 * v.temporal_patch_size * v.patch_size**2, generator=gen)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "mm_token_type_ids": (input_ids == config.image_token_id).int(),
        "pixel_values": pixel_values.to(device=device, dtype=dtype),
        "image_grid_thw": torch.tensor([[1, grid, grid]] * batch, device=device),
    }


def bench_vlm(sizes: Sizes, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Captioning throughput of a 2B-class VLM: prefill of image + prompt, then greedy decoding."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    config = Qwen2VLConfig(
        text_config=sizes.text, vision_config=sizes.vision, tie_word_embeddings=True, **(sizes.special_ids or {})
    )
    torch.manual_seed(0)
    with device:
        model = Qwen2VLForConditionalGeneration(config)
        # in place; the cast: transformers wraps .to with functools.wraps, whose stub keeps Module.to's self
        cast(torch.nn.Module, model).to(dtype=dtype).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e9
    out: dict[str, Any] = {
        "model": "Qwen2-VL-2B dimensions, random weights" if sizes is FULL else "tiny",
        "params_b": params,
        "attention": model.config._attn_implementation,
        "image_px": sizes.image_px,
        "new_tokens": sizes.new_tokens,
        "batches": {},
    }
    for batch in sizes.batches:
        inputs = vlm_inputs(config, sizes, batch, device, dtype)
        gen_kwargs = dict(
            max_new_tokens=sizes.new_tokens, min_new_tokens=sizes.new_tokens, do_sample=False, pad_token_id=0
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode():
            prefill = timed(functools.partial(model, **inputs), device, sizes.repeats)
            seconds = timed(functools.partial(model.generate, **inputs, **gen_kwargs), device, sizes.repeats)
        tokens = batch * sizes.new_tokens
        out["batches"][batch] = {
            "seconds_per_batch": seconds,
            "prefill_s": prefill,
            "images_per_s": batch / seconds,
            "tokens_per_s": tokens / seconds,
            "decode_tokens_per_s": tokens / max(seconds - prefill, 1e-9),
            "prompt_len": int(inputs["input_ids"].shape[1]),
            "peak_gib": peak_gib(device),
        }
        print(
            f"VLM {params:.2f}B  batch {batch:3d}: {batch / seconds:7.2f} images/s  {tokens / seconds:8.1f} tokens/s "
            f"(prefill {prefill * 1000:.0f} ms, {inputs['input_ids'].shape[1]} prompt tokens, "
            f"{sizes.new_tokens} new)",
            flush=True,
        )
    del model
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="SAM vit_h and 2B-VLM throughput on one GPU, random weights, bf16.")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny models on the CPU, to check that the script runs")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.cpu_smoke:
        sizes, device = SMOKE, torch.device("cpu")
    elif torch.cuda.is_available():
        sizes, device = FULL, torch.device("cuda")
    else:
        p.error("no CUDA device: run this on the GPU machine, or use --cpu-smoke")
    started = time.perf_counter()
    res: dict[str, Any] = {
        "mode": "cpu-smoke" if args.cpu_smoke else "gpu",
        "dtype": "bfloat16",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
    }
    res["sam"] = bench_sam(sizes, device, torch.bfloat16)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    res["vlm"] = bench_vlm(sizes, device, torch.bfloat16)
    res["wall_s"] = time.perf_counter() - started
    args.results.write_text(json.dumps(res, indent=1))
    print(f"total {res['wall_s']:.0f} s; results in {args.results}")
    return res


if __name__ == "__main__":
    main()
