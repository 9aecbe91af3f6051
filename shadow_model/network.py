"""The learned shadow detector: a timm encoder over image + object mask, a light top-down decoder.

The served program takes the backend's crop at any size, resizes it to the working size the network was
trained at (so an object covers the same share of the input in training and serving, whatever the photo's
resolution), and resizes the probability back: ``model(image[1,3,H,W] 0..1, object[1,1,H,W]) -> prob``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class NetSpec:
    arch: str = "resnet10t"
    #: reduced widths: a network this small trains in minutes on a CPU
    model_kwargs: dict[str, Any] = field(default_factory=lambda: {"channels": [24, 48, 96, 160], "stem_width": 16})
    size: int = 96
    decoder: int = 16

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ShadowNet(nn.Module):
    """Logits at the working size from 4 channels (RGB − 0.5, object − 0.5); :meth:`forward` serves any size."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.spec = spec
        # pretrained=False always: no weights can be fetched, the network is trained from scratch
        encoder: Any = timm.create_model(
            spec.arch, pretrained=False, features_only=True, in_chans=4, **spec.model_kwargs
        )
        self.encoder = encoder
        chans: list[int] = encoder.feature_info.channels()
        self.lateral = nn.ModuleList(nn.Conv2d(c, spec.decoder, 1) for c in chans)
        self.head = nn.Sequential(
            nn.Conv2d(spec.decoder, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 1, 1),
        )

    def logits(self, image: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
        """image [B,3,S,S] 0..1 and object [B,1,S,S] at the working size -> logits [B,1,S,S] (the decoder stops
        at the encoder's finest level; the last step up is bilinear)."""
        x = torch.cat([image - 0.5, obj - 0.5], 1)
        feats = self.encoder(x)
        top = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1]), strict=True):
            top = lat(f) + F.interpolate(top, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(self.head(top), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        s = (self.spec.size, self.spec.size)
        small = F.interpolate(image, size=s, mode="bilinear", antialias=True, align_corners=False)
        o = F.interpolate(obj, size=s, mode="bilinear", antialias=True, align_corners=False)
        p = torch.sigmoid(self.logits(small, o))
        return F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)


def export(model: ShadowNet, path: Path) -> Path:
    """Save ``model`` as a ``torch.export`` program with dynamic H, W: what the ``exported`` backend loads."""
    model = model.eval()
    h, w = torch.export.Dim("h", min=8, max=8192), torch.export.Dim("w", min=8, max=8192)
    example = (torch.rand(1, 3, 120, 80), torch.zeros(1, 1, 120, 80))
    program = torch.export.export(model, example, dynamic_shapes=({2: h, 3: w}, {2: h, 3: w}))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    return path
