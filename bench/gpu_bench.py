"""GPU throughput of the production-size models, with random weights (speed does not depend on them).

Self-contained (imports only torch, segment-anything, transformers and the project's exported-fill code; downloads
nothing):

- the SAM image encoder at ``vit_h`` size, built by ``segment_anything``'s registry without a checkpoint,
  on 1024x1024 inputs: images/s;
- a 2B-class VLM built from a config with Qwen2-VL-2B's dimensions (2.21B parameters, 665M of them the vision
  tower), a 448x448 image (256 visual tokens) plus a short prompt, greedy decoding of a fixed number of new
  tokens: images/s and generated tokens/s, and the prefill time alone.

- stage 2's learned fill (``masks.inpaint.backend: exported``) as the pipeline runs it: a stand-in network of
  big-LaMa's size class (a conv encoder-decoder, 3 downsamplings, 9 residual blocks of 512 channels;
  46M parameters) saved as a ``torch.export`` program with a dynamic batch, loaded and run by
  ``curation.core.inpaint.ExportedInpainter.fill_many`` on 1024-px photos whose holes all take 512-px windows,
  fp32: windows/s (one window per sample that needs a fill, so also those samples/s).

Batch sizes 1, 4 and 16, bf16 for SAM and the VLM, transformers' default attention (SDPA; recorded in the results).
Expected to take a few minutes on one H100 (estimated from the model sizes: it has not run on a GPU yet).

    python bench/gpu_bench.py                 # on the device machine; writes bench/gpu_results.json
    python bench/gpu_bench.py --cpu-smoke     # tiny models on the CPU: checks that the script runs

Without a CUDA device (and without --cpu-smoke) it says so and exits 2: nothing is measured on a CPU.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
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
    fill: tuple[int, int, int] = (64, 9, 512)  # learned fill: base channels, residual blocks, window side (px)


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
    fill=(8, 1, 64),
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


class FillStandIn(torch.nn.Module):
    """A LaMa-sized inpainting network with random weights: only its cost matters here."""

    def __init__(self, base: int, blocks: int):
        super().__init__()
        c = [base, base * 2, base * 4, base * 8]
        act = torch.nn.ReLU
        down: list[torch.nn.Module] = [torch.nn.Conv2d(4, c[0], 7, padding=3), act()]
        for a, b in zip(c, c[1:], strict=False):
            down += [torch.nn.Conv2d(a, b, 3, stride=2, padding=1), torch.nn.BatchNorm2d(b), act()]
        self.down = torch.nn.Sequential(*down)
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(
                torch.nn.Conv2d(c[3], c[3], 3, padding=1), torch.nn.BatchNorm2d(c[3]), act(),
                torch.nn.Conv2d(c[3], c[3], 3, padding=1), torch.nn.BatchNorm2d(c[3]),
            )
            for _ in range(blocks)
        )  # fmt: skip
        up: list[torch.nn.Module] = []
        for a, b in zip(c[::-1], c[::-1][1:], strict=False):
            up += [
                torch.nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1),
                torch.nn.BatchNorm2d(b),
                act(),
            ]
        self.up = torch.nn.Sequential(*up, torch.nn.Conv2d(c[0], 3, 7, padding=3), torch.nn.Sigmoid())

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.down(torch.cat([image, mask], dim=1))
        for block in self.blocks:
            x = x + block(x)
        return self.up(x)


def bench_fill(sizes: Sizes, device: torch.device, folder: Path) -> dict[str, Any]:
    """Windows/s of the learned fill through the pipeline's own batched path (fixed window side, dynamic batch)."""
    from curation.core.inpaint import ExportedInpainter

    base, blocks, side = sizes.fill
    torch.manual_seed(0)
    net = FillStandIn(base, blocks).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(
        net, (torch.rand(2, 3, side, side), torch.ones(2, 1, side, side)), dynamic_shapes=({0: batch}, {0: batch})
    )
    path = folder / "fill_standin.pt2"
    torch.export.save(program, str(path))
    fill = ExportedInpainter(str(path), str(device), (side,))
    photo = 2 * side  # a hole of a fifth of the window's side, centred: every window is `side` px, not reduced
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {
        "model": f"LaMa-size stand-in ({base} base channels, {blocks} blocks), random weights",
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
        "window_px": side,
        "batches": {},
    }
    for n in sizes.batches:
        images = [rng.integers(0, 256, (photo, photo, 3), dtype=np.uint8) for _ in range(n)]
        regions = []
        for _ in range(n):
            region = np.zeros((photo, photo), bool)
            region[
                photo // 2 - side // 10 : photo // 2 + side // 10, photo // 2 - side // 10 : photo // 2 + side // 10
            ] = True
            regions.append(region)
        seconds = timed(functools.partial(fill.fill_many, images, regions), device, sizes.repeats)
        out["batches"][n] = {"seconds_per_batch": seconds, "windows_per_s": n / seconds, "peak_gib": peak_gib(device)}
        print(f"learned fill {side}px windows  batch {n:3d}: {n / seconds:8.2f} windows/s", flush=True)
    best = max(out["batches"].values(), key=lambda b: b["windows_per_s"])
    out["windows_per_s"] = best["windows_per_s"]
    out["samples_per_s"] = best["windows_per_s"]  # one window per sample that needs a fill
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="SAM vit_h, 2B-VLM and learned-fill throughput on one GPU, random weights.")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny models on the CPU, to check that the script runs")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.cpu_smoke:
        sizes, device = SMOKE, torch.device("cpu")
    elif torch.cuda.is_available():
        sizes, device = FULL, torch.device("cuda")
    else:
        print(
            "no GPU here (torch sees no CUDA device): nothing measured. Run this on a GPU machine, or use --cpu-smoke"
        )
        raise SystemExit(2)
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
    if device.type == "cuda":
        torch.cuda.empty_cache()
    with tempfile.TemporaryDirectory() as folder:
        res["fill"] = bench_fill(sizes, device, Path(folder))
    res["wall_s"] = time.perf_counter() - started
    args.results.write_text(json.dumps(res, indent=1))
    print(f"total {res['wall_s']:.0f} s; results in {args.results}")
    return res


if __name__ == "__main__":
    main()
