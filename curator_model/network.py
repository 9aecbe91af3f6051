"""The curator network and its checkpoint: a timm backbone over the stacked triplet channels.

Output: one logit per class, ``good`` first, then one per failure mode; ``P(good)`` is the softmax's
first entry, so a label that only says good/bad still trains the same head. A checkpoint is one
safetensors file whose metadata carries the :class:`ModelSpec` (architecture, input, classes, the chosen
threshold), so loading never executes pickled code and never needs the training code's defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from curation.core.devices import resolve_device
from curator_model.features import CHANNELS
from curator_model.layering import Stage2Recipe

#: the failure modes the generator produces and the network names (order = logit order after ``good``)
FAILURES: tuple[str, ...] = ("ghost", "lost_shadow", "took_background", "truncated", "occluded")
CLASSES: tuple[str, ...] = ("good",) + FAILURES
META_KEY = "curator_spec"
#: the shipped checkpoint, used by stage 4's ``model`` backend when no path is configured
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoint" / "curator.safetensors"


class CheckpointError(RuntimeError):
    """A curator checkpoint that cannot be used; the message says which file and why."""


class ModelSpec(BaseModel):
    """Everything needed to rebuild the network and read its output, stored inside the checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str
    #: extra ``timm.create_model`` arguments, e.g. reduced widths ``{"channels": [32, 64, 128, 256]}``
    model_kwargs: dict[str, Any] = {}
    input_size: int = Field(64, ge=16)
    channels: tuple[str, ...] = CHANNELS
    classes: tuple[str, ...] = CLASSES
    #: P(good) below this is rejected; chosen on the calibration split at training time
    threshold: float = Field(0.5, ge=0, le=1)
    #: stage 2's fill and settings the training data were layered and labelled with (None: not recorded); a run
    #: that layers otherwise refuses the checkpoint (:func:`curator_model.layering.check_run`)
    stage2: Stage2Recipe | None = None


class CuratorNet(nn.Module):
    """uint8 channel stack in, class logits out; the input scaling lives here so a checkpoint is self-contained."""

    def __init__(self, spec: ModelSpec, pretrained_path: Path | None = None):
        super().__init__()
        kwargs: dict[str, Any] = dict(in_chans=len(spec.channels), num_classes=len(spec.classes), **spec.model_kwargs)
        if pretrained_path is not None:
            # timm reads the local file, adapts the first conv to our channel count and drops its classifier
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(pretrained_path), "hf_hub_id": None})
        self.backbone = timm.create_model(spec.arch, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x.float() / 127.5 - 1.0)


def build_model(spec: ModelSpec, pretrained_path: Path | None = None) -> CuratorNet:
    if pretrained_path is not None and not Path(pretrained_path).is_file():
        raise CheckpointError(f"pretrained backbone weights {pretrained_path} do not exist (nothing is downloaded)")
    try:
        return CuratorNet(spec, pretrained_path)
    except RuntimeError as exc:
        if pretrained_path is None:
            raise
        raise CheckpointError(
            f"pretrained weights {pretrained_path} do not fit {spec.arch} {spec.model_kwargs or ''}: {exc}"
        ) from exc


def save_checkpoint(net: CuratorNet, spec: ModelSpec, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={META_KEY: spec.model_dump_json()})
    path.chmod(0o644)  # the writer creates it owner-only; a shipped checkpoint must be readable by workers


def load_checkpoint(path: str | Path) -> tuple[CuratorNet, ModelSpec]:
    """Rebuild the network from a safetensors checkpoint, or raise :class:`CheckpointError` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"curator checkpoint {path} does not exist; train one with `curate train-curator`")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"curator checkpoint {path} is not a readable safetensors file ({exc}); "
            "it may be truncated or corrupt: retrain or copy it again"
        ) from exc
    if META_KEY not in meta:
        raise CheckpointError(
            f"curator checkpoint {path} has no '{META_KEY}' metadata: not written by `curate train-curator`"
        )
    try:
        spec = ModelSpec.model_validate(json.loads(meta[META_KEY]))
    except (ValidationError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"curator checkpoint {path} has an invalid spec: {exc}") from exc
    if spec.channels != CHANNELS:
        raise CheckpointError(
            f"curator checkpoint {path} expects input channels {spec.channels}, this code builds {CHANNELS}"
        )
    try:
        net = build_model(spec)
        net.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"curator checkpoint {path} does not match architecture {spec.arch}: {exc}") from exc
    return net.eval(), spec


class Curator:
    """A loaded checkpoint ready for batched scoring on one device."""

    def __init__(self, path: str | Path, device: str = "auto"):
        self.net, self.spec = load_checkpoint(path)
        self.device = torch.device(resolve_device(device, "curate.device"))
        self.net.to(self.device)

    @torch.inference_mode()
    def predict(self, feats: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (N, len(classes)) for a uint8 feature stack (N, C, S, S)."""
        out = []
        for i in range(0, len(feats), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(feats[i : i + batch_size])).to(self.device)
            out.append(torch.softmax(self.net(x).float(), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.spec.classes)), np.float32)
