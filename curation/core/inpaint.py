"""Filling the region an object leaves behind: the inpainters stage 2's decomposition uses, by config name.

Every inpainter is a callable ``(image RGB uint8, region bool) -> image`` that changes only the region.
The classical fills need no weights and run anywhere; ``exported`` runs a learned model (LaMa-class)
from a local ``torch.export`` program, for GPU clusters.
"""
from __future__ import annotations

from typing import ClassVar, Protocol

import cv2
import numpy as np

from curation.core.compositing import to_float, to_uint8
from curation.core.config.masks import InpaintOptions
from curation.core.devices import resolve_device
from curation.core.registry import Registry


class Inpainter(Protocol):
    name: str

    def __call__(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        """``image`` with ``region`` filled from its surroundings."""


class OpenCVInpainter:
    """Fill a region from its surroundings with one of OpenCV's inpainting methods: no weights, CPU."""

    method: ClassVar[str]
    flag: ClassVar[int]

    def __init__(self, radius: int = 5):
        self.name = f"opencv-{self.method}"
        self.radius = radius

    @classmethod
    def from_options(cls, opts: InpaintOptions) -> OpenCVInpainter:
        return cls(opts.radius)

    def __call__(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        return cv2.inpaint(image, region.astype(np.uint8) * 255, self.radius, self.flag)


class TeleaInpainter(OpenCVInpainter):
    method, flag = "telea", cv2.INPAINT_TELEA


class NavierStokesInpainter(OpenCVInpainter):
    method, flag = "navier_stokes", cv2.INPAINT_NS


class ExportedInpainter:
    """A learned inpainter (e.g. LaMa) loaded once from a local ``torch.export`` program (``.pt2``).

    Contract: ``model(image[1,3,H,W] float 0..1, mask[1,1,H,W] float {0,1}) -> image[1,3,H,W] 0..1``,
    exported with dynamic H and W; only the masked pixels of its output are used, so known pixels stay exact.
    """

    def __init__(self, checkpoint: str, device: str = "cpu"):
        import torch

        path = str(checkpoint)
        try:
            self.model = torch.export.load(path).module().to(device)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same configuration error
            raise RuntimeError(f"inpainting model {path} cannot be loaded (masks.inpaint.checkpoint): "
                               f"{type(exc).__name__}: {exc}") from None
        self.device, self.torch, self.name = device, torch, f"exported:{path.rsplit('/', 1)[-1]}"

    @classmethod
    def from_options(cls, opts: InpaintOptions) -> ExportedInpainter:
        return cls(str(opts.checkpoint), resolve_device(opts.device, "masks.inpaint.device"))

    def __call__(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(to_float(image)).permute(2, 0, 1)[None].to(self.device)
        m = torch.from_numpy(region.astype(np.float32))[None, None].to(self.device)
        with torch.inference_mode():
            y = self.model(x * (1 - m), m)
        out = to_uint8(y[0].permute(1, 2, 0).clamp(0, 1).float().cpu().numpy())
        return np.where(region[..., None], out, image)


INPAINTERS: Registry[OpenCVInpainter | ExportedInpainter] = Registry("masks.inpaint.backend", "inpainter", {
    "telea": "curation.core.inpaint:TeleaInpainter",
    "navier_stokes": "curation.core.inpaint:NavierStokesInpainter",
    "exported": "curation.core.inpaint:ExportedInpainter",
})


def build_inpainter(opts: InpaintOptions) -> Inpainter:
    """The configured inpainter (``masks.inpaint``), its model (if any) loaded now: once per actor."""
    return INPAINTERS.get(opts.backend).from_options(opts)
