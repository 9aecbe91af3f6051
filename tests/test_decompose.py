"""Decomposition pieces against constructed ground truth, with stated tolerances.

- relight: a per-channel shadow ``C = s·B`` on a flat surface is undone to within 2/255 and its alpha is
  ``1 − min_c s_c`` within 0.02;
- soft object alpha: on an anti-aliased disc over a known background, alpha MAE on the outline band is
  lower than the hard mask's;
- minimal-alpha layers recomposite any (C, B) pair to >= 45 dB;
- the exported-model inpainter loads a ``torch.export`` program from disk and changes only masked pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from curation.core.compositing import over, psnr, to_float
from curation.core.config.masks import InpaintOptions
from curation.core.decompose import (
    background_unpaired,
    layers_from_background,
    minimal_alpha,
    relight,
    soft_object_alpha,
)
from curation.core.inpaint import TeleaInpainter, build_inpainter
from curation.core.morphology import dilate


def _ground(size: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal((170, 150, 120), 2, (size, size, 3)), 0, 255).astype(np.uint8)


def test_relight_undoes_a_coloured_shadow():
    bg = _ground()
    region = np.zeros(bg.shape[:2], bool)
    region[40:60, 20:80] = True
    s = np.array([0.3, 0.4, 0.55])
    comp = bg.copy()
    comp[region] = np.rint(bg[region] * s).astype(np.uint8)
    lit = TeleaInpainter()(comp, dilate(region, 2))
    out = relight(comp, lit, region)
    assert np.abs(out[region].astype(int) - bg[region]).mean() <= 2
    alpha = minimal_alpha(to_float(comp), to_float(out))[region]
    assert abs(np.median(alpha) - (1 - s.min())) <= 0.02


def test_unpaired_background_removes_object_and_shadow():
    bg = _ground(seed=1)
    obj = np.zeros(bg.shape[:2], bool)
    obj[20:60, 40:56] = True
    shadow = np.zeros_like(obj)
    shadow[56:66, 52:90] = True
    shadow &= ~obj
    comp = bg.copy()
    comp[shadow] = (comp[shadow] * 0.5).astype(np.uint8)
    comp[obj] = (30, 200, 40)
    out = background_unpaired(comp, obj, shadow, TeleaInpainter())
    assert psnr(out, bg, obj | shadow) >= 35
    fg = layers_from_background(comp, out, obj.astype(np.float32))
    assert psnr(over(fg, out), comp) >= 45


def _disc(size: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An anti-aliased disc (rendered 8× and area-averaged) over a textured background."""
    big = np.zeros((size * 8, size * 8), np.uint8)
    cv2.circle(big, (size * 4, size * 4), size * 2, 255, -1)
    alpha = cv2.resize(big.astype(np.float32) / 255, (size, size), interpolation=cv2.INTER_AREA)
    bg = _ground(size, 2)
    obj_colour = np.array([40.0, 60.0, 220.0])
    comp = np.rint(alpha[..., None] * obj_colour + (1 - alpha[..., None]) * bg).astype(np.uint8)
    return comp, bg, alpha, alpha > 0.5


def test_soft_object_alpha_beats_the_hard_mask_on_the_outline():
    comp, bg, alpha, mask = _disc()
    band = dilate(mask, 2) & dilate(~mask, 2)
    hard = np.abs(to_float(layers_from_background(comp, bg, mask.astype(np.float32)))[..., 3] - alpha)[band].mean()
    soft_alpha = soft_object_alpha(comp, bg, mask, 1)
    assert soft_alpha[~mask].max() == 0 and soft_alpha[~dilate(~mask, 1)].min() == 1
    soft = np.abs(to_float(layers_from_background(comp, bg, soft_alpha))[..., 3] - alpha)[band].mean()
    assert soft < hard, (soft, hard)
    assert soft <= 0.06, soft


def test_minimal_alpha_layers_recomposite():
    rng = np.random.default_rng(3)
    comp = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    fg = layers_from_background(comp, bg, np.zeros((64, 64), np.float32))
    assert psnr(over(fg, bg), comp) >= 45


class _FillMean(torch.nn.Module):
    """A stand-in learned inpainter: fills the hole with a learned colour."""

    def __init__(self):
        super().__init__()
        self.colour = torch.nn.Parameter(torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image * (1 - mask) + self.colour * mask


def test_exported_inpainter_loads_from_disk_and_fills_only_the_hole(tmp_path):
    h, w = torch.export.Dim("h", min=8, max=4096), torch.export.Dim("w", min=8, max=4096)
    program = torch.export.export(
        _FillMean(), (torch.rand(1, 3, 32, 32), torch.ones(1, 1, 32, 32)), dynamic_shapes=({2: h, 3: w}, {2: h, 3: w})
    )
    path = tmp_path / "fill.pt2"
    torch.export.save(program, path)
    inpainter = build_inpainter(InpaintOptions(backend="exported", checkpoint=path, device="cpu"))
    image = _ground(40)[:, :30]
    hole = np.zeros(image.shape[:2], bool)
    hole[10:20, 5:15] = True
    out = inpainter(image, hole)
    assert np.array_equal(out[~hole], image[~hole])
    assert np.abs(out[hole].astype(int) - (51, 128, 204)).max() <= 1
    broken = tmp_path / "broken.pt2"
    broken.write_bytes(b"nope")
    with pytest.raises(RuntimeError, match="masks.inpaint.checkpoint"):
        build_inpainter(InpaintOptions(backend="exported", checkpoint=broken, device="cpu"))
