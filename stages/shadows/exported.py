"""A learned shadow detector from a local ``torch.export`` program: the backend for a trained model.

Contract: ``model(image[1,3,H,W] float 0..1, object[1,1,H,W] float {0,1}) -> shadow probability[1,1,H,W]``,
exported with dynamic H and W. It runs on a crop around the object (the rule's search radius plus a
margin), so its cost does not grow with the photo. The mask is probability > 0.5 outside the object; the
confidence is how decided the model is near the object (mean of ``|2p − 1|`` within the search radius):
a model that half-sees a shadow there is a model that may have missed it.
"""

from __future__ import annotations

import numpy as np

from curation.core.compositing import to_float
from curation.core.config.masks import DetectorOptions
from curation.core.devices import load_exported, resolve_device
from curation.core.morphology import bbox_of, dilate
from stages.shadows import ShadowDetection


def crop_window(obj: np.ndarray, search: float) -> tuple[slice, slice, int] | None:
    """Where the model looks: the object's box grown by the search radius plus a margin, clipped to the photo
    (rows, columns, the radius); None for an empty object. Training crops the same way (``shadow_model``)."""
    box = bbox_of(obj)
    if box is None:
        return None
    x, y, w, h = box
    radius = max(3, int(search * max(w, h)))
    pad = radius + 8
    ys = slice(max(0, y - pad), min(obj.shape[0], y + h + pad))
    xs = slice(max(0, x - pad), min(obj.shape[1], x + w + pad))
    return ys, xs, radius


class ExportedShadowDetector:
    def __init__(self, checkpoint: str, device: str = "cpu", search: float = 0.8):
        import torch

        path = str(checkpoint)
        self.model = load_exported(path, device, "shadow detector", "masks.detector.checkpoint")
        self.torch, self.device, self.search = torch, device, search
        self.name = f"exported:{path.rsplit('/', 1)[-1]}"

    @classmethod
    def from_options(cls, opts: DetectorOptions) -> ExportedShadowDetector:
        return cls(str(opts.checkpoint), resolve_device(opts.device, "masks.detector.device"), opts.search)

    def detect(self, composite: np.ndarray, obj: np.ndarray) -> np.ndarray:
        return self.detect_scored(composite, obj).mask

    def detect_scored(self, composite: np.ndarray, obj: np.ndarray) -> ShadowDetection:
        obj = obj.astype(bool)
        out = np.zeros_like(obj)
        window = crop_window(obj, self.search)
        if window is None:
            return ShadowDetection(out, 1.0)
        ys, xs, radius = window
        torch = self.torch
        image = torch.from_numpy(to_float(composite[ys, xs])).permute(2, 0, 1)[None].to(self.device)
        o = obj[ys, xs]
        with torch.inference_mode():
            p = self.model(image, torch.from_numpy(o.astype(np.float32))[None, None].to(self.device))
        p = p[0, 0].float().clamp(0, 1).cpu().numpy()
        near = dilate(o, radius) & ~o
        out[ys, xs] = (p > 0.5) & near
        confidence = float(np.abs(2 * p[near] - 1).mean()) if near.any() else 1.0
        return ShadowDetection(out, confidence)
