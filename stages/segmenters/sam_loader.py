"""Load a SAM checkpoint from a local path, once per actor, with the architecture read from the weights.

Official SAM checkpoints are bare ``state_dict``s. The image encoder's geometry (width, depth, heads,
which blocks use global attention) is fully determined by the tensor shapes, so the same loader builds
``vit_b``/``vit_l``/``vit_h`` and the tiny encoders the tests train-free build and save. A named
``model_type`` is checked against the weights, so a mislabelled checkpoint fails at start-up, not mid-run.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from segment_anything.build_sam import _build_sam
from segment_anything.modeling import Sam

#: (embed_dim, depth, heads, global_attn_indexes) of the registry's model types
REGISTRY = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}
GLOBAL_TOKENS = 1024 // 16  # SAM's fixed input size over its patch size


class SamCheckpointError(RuntimeError):
    """The configured checkpoint is missing, unreadable, or not the configured model type."""


def encoder_geometry(state: dict[str, torch.Tensor]) -> tuple[int, int, int, tuple[int, ...]]:
    """``(embed_dim, depth, heads, global_attn_indexes)`` read from the checkpoint's tensor shapes."""
    try:
        embed_dim = int(state["image_encoder.patch_embed.proj.weight"].shape[0])
    except KeyError:
        raise SamCheckpointError("not a SAM checkpoint: no image_encoder.patch_embed.proj.weight") from None
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))})
    depth = len(blocks)
    rel = [state[f"image_encoder.blocks.{i}.attn.rel_pos_h"] for i in blocks]
    head_dim = int(rel[0].shape[1])
    global_idx = tuple(i for i, r in zip(blocks, rel, strict=True) if r.shape[0] == 2 * GLOBAL_TOKENS - 1)
    return embed_dim, depth, embed_dim // head_dim, global_idx


def load_sam(checkpoint: str | Path, model_type: str = "vit_b", device: str = "cpu") -> Sam:
    """The SAM model in eval mode on ``device``; ``model_type="auto"`` accepts any encoder geometry."""
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise SamCheckpointError(
            f"SAM checkpoint {path} does not exist (masks.sam.checkpoint); "
            "download it once, e.g. sam_vit_b_01ec64.pth, and point the config at it"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise SamCheckpointError(f"SAM checkpoint {path} cannot be read: {type(exc).__name__}: {exc}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    geometry = encoder_geometry(state)
    if model_type != "auto" and geometry != REGISTRY[model_type]:
        raise SamCheckpointError(
            f"SAM checkpoint {path} holds an encoder {geometry} (dim, depth, heads, "
            f"global blocks), not {model_type} {REGISTRY[model_type]}"
        )
    embed_dim, depth, heads, global_idx = geometry
    sam = _build_sam(embed_dim, depth, heads, list(global_idx), checkpoint=None)
    sam.load_state_dict(state)
    return sam.to(device).eval()
