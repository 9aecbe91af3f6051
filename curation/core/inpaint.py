"""Filling the region an object leaves behind: the inpainters stage 2's decomposition uses, by config name.

Every inpainter is a callable ``(image RGB uint8, region bool) -> image`` that changes only the region.
The classical fills need no weights and run anywhere; ``exported`` runs a learned model (LaMa-class)
from a local ``torch.export`` program, for GPU clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import cv2
import numpy as np

from curation.core.compositing import to_float, to_uint8
from curation.core.config.masks import InpaintOptions
from curation.core.devices import load_exported, resolve_device
from curation.core.morphology import bbox_of, dilate
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


def window_around(shape: tuple[int, ...], box: tuple[int, int, int, int], pad: int) -> tuple[slice, slice]:
    """The box ``(x, y, w, h)`` grown by ``pad`` on every side, within an image of ``shape``."""
    x, y, w, h = box
    return slice(max(0, y - pad), min(shape[0], y + h + pad)), slice(max(0, x - pad), min(shape[1], x + w + pad))


class XPhotoInpainter:
    """OpenCV contrib's ``cv2.xphoto.inpaint`` on a window around the region: no weights, CPU.

    The region's own surroundings are all these fills draw on, so each runs on the region's bounding box
    grown by ``context`` times its size (at least 16 px): the cost follows the object, not the photo.
    """

    method: ClassVar[str]
    flag: ClassVar[int]
    context: ClassVar[float] = 1.0

    def __init__(self, window_px: int = 1024):
        self.name = f"xphoto-{self.method}"
        self.window_px = window_px

    @classmethod
    def from_options(cls, opts: InpaintOptions) -> XPhotoInpainter:
        return cls(opts.window_px)

    def _fill(self, window: np.ndarray, valid: np.ndarray) -> np.ndarray:
        out = np.zeros_like(window)
        cv2.xphoto.inpaint(window, valid.astype(np.uint8) * 255, out, self.flag)
        return out

    def _fill_within(self, window: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Fill ``hole`` in ``window``, on a copy reduced to ``window_px`` on its long side when larger.

        These fills cost more than linearly in the window's pixels; a smaller ``window_px`` bounds the cost
        of a large object in a large photo at the price of its finest texture (docs/layers.md). A reduced
        pixel that touches the hole counts as hole.
        """
        side = max(window.shape[:2])
        if side <= self.window_px:
            return self._fill(window, ~hole)
        scale = self.window_px / side
        small = cv2.resize(window, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        size = (small.shape[1], small.shape[0])
        small_hole = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        filled = self._fill(small, ~small_hole)
        return cv2.resize(filled, (window.shape[1], window.shape[0]), interpolation=cv2.INTER_CUBIC)

    def __call__(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        box = bbox_of(region)
        if box is None:
            return image
        ys, xs = window_around(image.shape, box, max(16, int(self.context * max(box[2:]))))
        hole = region[ys, xs]
        filled = self._fill_within(np.ascontiguousarray(image[ys, xs]), hole)
        out = image.copy()
        out[ys, xs] = np.where(hole[..., None], filled, image[ys, xs])
        return out


class FSRFastInpainter(XPhotoInpainter):
    """Frequency-selective reconstruction (Genser et al. 2018), the fast setting."""

    method, flag = "fsr_fast", cv2.xphoto.INPAINT_FSR_FAST


class BlockAlignedFSR(FSRFastInpainter):
    """The fast FSR on the luminance of a window padded (mirrored, as known ground) to a multiple of
    ``block_px`` a side; the colour (chroma) from Telea's smooth fill.

    On a window whose side is not such a multiple, OpenCV's FSR can leave the pixels of the last partial
    block of a hole unfilled: pure green columns of (0, g, 0) on a grey photo. On a colour window with a
    large hole it also invents colours none of the ground has: a pastel green and pink patch in a blue sky,
    and, run on each channel apart, pastel fringes where the channels' reconstructions disagree. Colour
    varies slowly on real ground, so a smooth fill gives it, and FSR only the luminance (docs/layers.md).
    """

    block_px: ClassVar[int] = 16

    def _fill(self, window: np.ndarray, valid: np.ndarray) -> np.ndarray:
        h, w = valid.shape
        pad_y, pad_x = -h % self.block_px, -w % self.block_px
        padded = cv2.copyMakeBorder(window, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT)
        known = np.pad(valid, ((0, pad_y), (0, pad_x)), mode="reflect")
        ycc = cv2.cvtColor(padded, cv2.COLOR_RGB2YCrCb)
        out = cv2.inpaint(ycc, (~known).astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
        out[..., 0] = super()._fill(np.ascontiguousarray(ycc[..., 0]), known)
        return cv2.cvtColor(out, cv2.COLOR_YCrCb2RGB)[:h, :w]


class FSRBestInpainter(XPhotoInpainter):
    """Frequency-selective reconstruction, the best (and much slower) setting."""

    method, flag = "fsr_best", cv2.xphoto.INPAINT_FSR_BEST


class ShiftMapInpainter(XPhotoInpainter):
    """Exemplar-based: each hole pixel copies a pixel of the surroundings at an offset chosen among the
    dominant patch offsets of the image (He & Sun 2012), so the ground's own texture continues into the hole.
    Works in CIE Lab, as the method expects (intensity first).

    OpenCV's shift-map keeps a fixed number of offsets, the peaks of the window's offset histogram; a small
    or plain window has fewer peaks than that, and the method then reads offsets past the end of its list:
    heap memory, so one window filled twice could differ (valgrind shows the reads; docs/layers.md). A frame
    of fixed noise around the window gives the histogram weak peaks of its own to make up the number; the
    window's frequent offsets, the ones the fill uses, still come first.
    """

    method, flag = "shiftmap", cv2.xphoto.INPAINT_SHIFTMAP
    frame_px: ClassVar[int] = 16

    def _fill(self, window: np.ndarray, valid: np.ndarray) -> np.ndarray:
        f = self.frame_px
        h, w = window.shape[:2]
        framed = np.random.default_rng(0).integers(0, 256, (h + 2 * f, w + 2 * f, 3), dtype=np.uint8)
        framed[f:-f, f:-f] = cv2.cvtColor(window, cv2.COLOR_RGB2Lab)
        filled = super()._fill(framed, np.pad(valid, f, constant_values=True))
        return cv2.cvtColor(np.ascontiguousarray(filled[f:-f, f:-f]), cv2.COLOR_Lab2RGB)


class TexturedFSRInpainter:
    """Structure and colour from the frequency-selective reconstruction, texture from the shift-map fill.

    FSR recovers the hole's low frequencies well but smooths its texture away; the shift-map copies the
    ground's texture but places it with no regard to the true low frequencies. Their sum, FSR plus the
    shift-map's detail above a ``detail_sigma`` Gaussian, keeps both (chosen on the hole benchmark's tuning
    photos, docs/layers.md).
    """

    detail_sigma: ClassVar[float] = 1.0
    detail_clip: ClassVar[float] = 3.0

    def __init__(self, window_px: int = 1024):
        self.name = "xphoto-fsr+shiftmap-texture"
        self.structure, self.texture = FSRFastInpainter(window_px), ShiftMapInpainter(window_px)

    @classmethod
    def from_options(cls, opts: InpaintOptions) -> TexturedFSRInpainter:
        return cls(opts.window_px)

    def __call__(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        if not region.any():
            return image
        texture = self.texture(image, region).astype(np.float32)
        # the detail is taken within the fill only: a blur across the region's border would turn the step
        # between the copied texture and its surroundings into an outline of the object
        inside = region.astype(np.float32)
        weight = np.maximum(cv2.GaussianBlur(inside, (0, 0), self.detail_sigma), 1e-3)[..., None]
        detail = texture - cv2.GaussianBlur(texture * inside[..., None], (0, 0), self.detail_sigma) / weight
        # no stronger than the ground's own detail around the region: a copied texture keeps its amplitude,
        # the edges of a copied object (a neighbour the exemplar search picked up) fade to it
        ring = dilate(region, 6) & ~region
        if ring.any():
            image_f = image.astype(np.float32)
            around = image_f - cv2.GaussianBlur(image_f, (0, 0), self.detail_sigma)
            limit = self.detail_clip * np.median(np.abs(around[ring]), axis=0) + 1.0
            detail = np.clip(detail, -limit, limit)
        filled = to_uint8((self.structure(image, region).astype(np.float32) + detail) / 255.0)
        return np.where(region[..., None], filled, image)


class CoarseToFineInpainter:
    """Structure from a cheap fill at reduced size, texture copied at full size from the ground around.

    The frequency-selective reconstruction recovers a hole's low frequencies from a window reduced to
    ``structure_px``: they need no more pixels, and its cost grows fast with them. The detail above a
    Gaussian of ``detail_sigma`` (or wider: the band the reduced structure lacks) is then laid in at full
    size from the ground: the hole's box is tiled with overlapping blocks, each copying the detail of a
    block of known ground nearby whose own low frequencies are nearest the structure it lands on (a search
    among ``candidates`` positions, not over every patch), blended with windows whose squares sum to one, so
    the copied texture keeps its amplitude. Deterministic: the candidates come from a generator seeded per
    call, and no library state is read.
    """

    detail_sigma: ClassVar[float] = 1.0
    detail_clip: ClassVar[float] = 3.0
    block_px: ClassVar[int] = 16
    candidates: ClassVar[int] = 48
    continuity: ClassVar[float] = 1.0
    #: the detail band's Gaussian, in pixels of the reduced structure
    band: ClassVar[float] = 1.0

    structure_hole_px: ClassVar[int] = 2500

    def __init__(self, structure_px: int = 192):
        self.name = "coarse-to-fine-texture"
        self.structure_px = structure_px

    @classmethod
    def from_options(cls, opts: InpaintOptions) -> CoarseToFineInpainter:
        return cls(min(opts.window_px, 192))

    def __call__(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        box = bbox_of(region)
        if box is None:
            return image
        structure, scale = self._structure(image, region, box)
        ys, xs = window_around(image.shape, box, max(2 * self.block_px, max(box[2:]) // 2))
        hole = region[ys, xs]
        # the detail band starts where the reduced structure's resolution ends: a Gaussian as wide as one of
        # its pixels (a narrower one left the band between the two out: a smooth patch in a large hole)
        sigma = max(self.detail_sigma, self.band / scale)
        detail = self._texture(image[ys, xs].astype(np.float32), structure[ys, xs], hole, sigma)
        filled = structure.copy()
        filled[ys, xs] += detail
        return np.where(region[..., None], to_uint8(filled / 255.0), image)

    def _structure(
        self, image: np.ndarray, region: np.ndarray, box: tuple[int, int, int, int]
    ) -> tuple[np.ndarray, float]:
        """The FSR fill on a window reduced so that the hole keeps at most ``structure_hole_px`` pixels (its
        cost grows faster than the hole's pixels) and the window at most ``structure_px`` on its long side."""
        ys, xs = window_around(image.shape, box, max(16, max(box[2:])))
        side = max(ys.stop - ys.start, xs.stop - xs.start)
        scale = min(1.0, self.structure_px / side, float(np.sqrt(self.structure_hole_px / region.sum())))
        px = max(32, int(side * scale))
        return BlockAlignedFSR(px)(image, region).astype(np.float32), min(1.0, px / side)

    def _texture(self, window: np.ndarray, structure: np.ndarray, hole: np.ndarray, sigma: float) -> np.ndarray:
        """The detail layer to add to ``structure`` inside ``hole``: blocks of the known ground's detail."""
        b, half = self.block_px, self.block_px // 2
        known = (~hole).astype(np.float32)
        weight = np.maximum(cv2.GaussianBlur(known, (0, 0), sigma), 1e-3)[..., None]
        low = cv2.GaussianBlur(window * known[..., None], (0, 0), sigma) / weight
        source_detail = (window - low) * known[..., None]
        # where a source block may start: wholly on known ground
        inside = cv2.boxFilter(
            hole.astype(np.float32), -1, (b, b), anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT
        )
        hh, ww = hole.shape
        wholly_known = inside[: hh - b + 1, : ww - b + 1] < 0.5

        # and not an outlier of the ground: a block across a cast shadow's edge, an object's outline or a lone
        # pebble varies far more than the ground's texture does, and its detail copied into the hole shows as
        # speckles; blocks whose variance is above the upper Tukey fence of the window's blocks are left out
        def block_mean(a: np.ndarray) -> np.ndarray:
            return cv2.boxFilter(a, -1, (b, b), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)

        energy = (block_mean(window**2) - block_mean(window) ** 2).sum(axis=-1)[: hh - b + 1, : ww - b + 1]
        if wholly_known.any():
            q1, q3 = np.percentile(energy[wholly_known], [25, 75])
            ordinary = wholly_known & (energy <= q3 + 1.5 * (q3 - q1))
            wholly_known = ordinary if ordinary.any() else wholly_known
        sy, sx = np.nonzero(wholly_known)
        if sy.size == 0:
            return np.zeros_like(window)
        # target blocks: a grid at half-block steps over the hole's box, padded by a half block
        hy, hx = np.nonzero(hole)
        ty = _steps(max(0, hy.min() - half), min(hh - b, hy.max()), half)
        tx = _steps(max(0, hx.min() - half), min(ww - b, hx.max()), half)
        gy, gx = (g.ravel() for g in np.meshgrid(ty, tx, indexing="ij"))
        rng = np.random.default_rng(0)
        pick = rng.integers(0, sy.size, (gy.size, self.candidates))
        cy, cx = sy[pick], sx[pick]
        offsets = np.array([0, b // 4, b // 2, 3 * b // 4])
        oy, ox = (o.ravel() for o in np.meshgrid(offsets, offsets, indexing="ij"))
        # matched on the low frequencies: a 4x4 grid of sub-block means, the ground's own against the
        # structure's, plus a little distance (near ground first)
        sub_src = cv2.blur(low, (b // 4, b // 4), anchor=(0, 0))
        sub_dst = cv2.blur(structure, (b // 4, b // 4), anchor=(0, 0))
        dst = sub_dst[gy[:, None] + oy, gx[:, None] + ox]  # (n, 16, 3)
        src = sub_src[cy[..., None] + oy, cx[..., None] + ox]  # (n, k, 16, 3)
        cost = ((src - dst[:, None]) ** 2).mean(axis=(2, 3))
        cost += 0.05 * np.hypot(cy - gy[:, None], cx - gx[:, None])
        by, bx = np.arange(b)[:, None], np.arange(b)[None, :]
        # a block that overlaps known ground also continues the detail there (as image quilting does)
        seen = known[gy[:, None, None] + by, gx[:, None, None] + bx]  # (n, b, b)
        edge = np.nonzero(seen.mean(axis=(1, 2)) > 0.1)[0]
        for part in np.array_split(edge, max(1, edge.size // 64)):
            ky, kx = cy[part][..., None, None] + by, cx[part][..., None, None] + bx  # (m, k, b, b)
            here = source_detail[gy[part, None, None] + by, gx[part, None, None] + bx]  # (m, b, b, 3)
            err = ((source_detail[ky, kx] - here[:, None]) ** 2).sum(axis=-1) * seen[part, None]
            cost[part] += self.continuity * err.sum(axis=(2, 3)) / seen[part].sum(axis=(1, 2))[:, None]
        best = cost.argmin(axis=1)
        src_y, src_x = cy[np.arange(gy.size), best], cx[np.arange(gx.size), best]
        # blend with sine windows: at half-block steps their squares sum to one
        ramp = np.sin(np.pi * (np.arange(b) + 0.5) / b).astype(np.float32)
        win = np.outer(ramp, ramp)[..., None]
        acc = np.zeros_like(window)
        norm = np.zeros(hole.shape + (1,), np.float32)
        patches = source_detail[src_y[:, None, None] + by, src_x[:, None, None] + bx]  # (n, b, b, 3)
        for i in range(gy.size):
            acc[gy[i] : gy[i] + b, gx[i] : gx[i] + b] += win * patches[i]
            norm[gy[i] : gy[i] + b, gx[i] : gx[i] + b] += win**2
        detail = acc / np.sqrt(np.maximum(norm, 1e-6))
        ring = dilate(hole, 6) & ~hole
        if ring.any():
            limit = self.detail_clip * np.median(np.abs(source_detail[ring]), axis=0) + 1.0
            detail = np.clip(detail, -limit, limit)
        return detail * hole[..., None]


def _steps(start: int, stop: int, step: int) -> np.ndarray:
    """``start``, ``start + step``, ... up to ``stop``, with ``stop`` itself last: blocks that reach the end."""
    out = np.arange(start, stop + 1, step)
    return out if out.size and out[-1] == stop else np.append(out, stop)


@dataclass(frozen=True)
class Window:
    """Where one hole is filled by a learned model: a square of ``side`` px of the photo at ``(y, x)`` (clipped to
    the photo, mirrored beyond it), resized to the fixed ``size`` the model runs at."""

    y: int
    x: int
    side: int
    size: int


@dataclass
class Filled:
    """An inpainter's output for one image; ``window`` says how a learned model filled it (else None): the window's
    side in the photo, the fixed size it ran at, and how many windows shared its forward pass."""

    image: np.ndarray
    window: dict[str, int] | None = None


def hole_window(shape: tuple[int, ...], region: np.ndarray, sizes: tuple[int, ...], context: float) -> Window:
    """The square window a learned fill of ``region`` runs on: the hole's box grown by ``context`` times its long
    side (at least 16 px) on every side, widened to the smallest of ``sizes`` that holds it (more real ground
    for the model, no resizing), or reduced to the largest when none does. Centred on the hole, moved inside
    the photo where the photo is large enough."""
    box = bbox_of(region)
    assert box is not None
    x, y, w, h = box
    need = max(w, h) + 2 * max(16, int(context * max(w, h)))
    size = next((s for s in sizes if s >= need), sizes[-1])
    side = max(size, need)
    cy, cx = y + h // 2, x + w // 2
    y0 = min(max(0, cy - side // 2), max(0, shape[0] - side))
    x0 = min(max(0, cx - side // 2), max(0, shape[1] - side))
    return Window(y0, x0, side, size)


class ExportedInpainter:
    """A learned inpainter (e.g. LaMa) loaded once from a local ``torch.export`` program (``.pt2``), run on windows
    of a few fixed sizes, many per forward pass.

    Contract: ``model(image[B,3,S,S] float 0..1, mask[B,1,S,S] float {0,1}) -> image[B,3,S,S] 0..1`` for each side S
    of ``window_sizes`` (exported with dynamic B, or a static B: partial batches are padded; dynamic or static
    S: a static side is the only window size used). Each hole is filled in its own square window
    (:func:`hole_window`); :meth:`fill_many` stacks the windows of one size from every image it is given into one
    pass, so the stage's batch of rows (``masks.resources.batch_size``) is the GPU's batch. Only the hole's pixels
    of the output are used, so known pixels stay exact.
    """

    #: the ground around a hole that its window holds, as a multiple of the hole's long side, each way
    context: ClassVar[float] = 0.5

    def __init__(self, checkpoint: str, device: str = "cpu", window_sizes: tuple[int, ...] = (256, 512, 1024)):
        import torch

        path = str(checkpoint)
        self.model = load_exported(path, device, "inpainting model", "masks.inpaint.checkpoint")
        self.device, self.torch, self.name = device, torch, f"exported:{path.rsplit('/', 1)[-1]}"
        self.static_batch, static_side = exported_input_dims(self.model)
        self.sizes = (static_side,) if static_side else tuple(sorted(window_sizes))

    @classmethod
    def from_options(cls, opts: InpaintOptions) -> ExportedInpainter:
        return cls(str(opts.checkpoint), resolve_device(opts.device, "masks.inpaint.device"), tuple(opts.window_sizes))

    def __call__(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        return self.fill_many([image], [region])[0].image

    def fill_many(self, images: list[np.ndarray], regions: list[np.ndarray]) -> list[Filled]:
        """Fill each image's region; the windows of one size go through the model together, in passes of at most
        the program's static batch (all of them when it is dynamic)."""
        out = [Filled(image) for image in images]
        windows = {
            i: hole_window(image.shape, region, self.sizes, self.context)
            for i, (image, region) in enumerate(zip(images, regions, strict=True))
            if region.any()
        }
        for size in self.sizes:
            todo = [i for i, w in windows.items() if w.size == size]
            step = self.static_batch or max(1, len(todo))
            for start in range(0, len(todo), step):
                part = todo[start : start + step]
                crops = [_cut(images[i], regions[i], windows[i]) for i in part]
                filled = self._forward([c for c, _ in crops], [m for _, m in crops])
                for i, result in zip(part, filled, strict=True):
                    info = {"window_px": size, "window_side_px": windows[i].side, "windows_in_pass": len(part)}
                    out[i] = Filled(_paste(images[i], regions[i], windows[i], result), info)
        return out

    def _forward(self, crops: list[np.ndarray], masks: list[np.ndarray]) -> np.ndarray:
        """One pass of the model over same-size windows (uint8 RGB, bool masks) -> filled windows, uint8."""
        torch = self.torch
        n = len(crops)
        pad = (self.static_batch or n) - n
        x = np.stack(crops + [crops[0]] * pad)
        m = np.stack(masks + [masks[0]] * pad).astype(np.float32)
        xt = torch.from_numpy(to_float(x)).permute(0, 3, 1, 2).to(self.device)
        mt = torch.from_numpy(m)[:, None].to(self.device)
        with torch.inference_mode():
            y = self.model(xt * (1 - mt), mt)
        return to_uint8(y[:n].permute(0, 2, 3, 1).clamp(0, 1).float().cpu().numpy())


def exported_input_dims(model) -> tuple[int | None, int | None]:
    """The exported program's static batch size and static square side, each None where the dimension is
    dynamic (read from its first input's recorded shape)."""
    first = next(n for n in model.graph.nodes if n.op == "placeholder")
    shape = first.meta["val"].shape
    static = [d if isinstance(d, int) else None for d in shape]
    side = static[2] if static[2] is not None and static[2] == static[3] else None
    return static[0], side


def _cut(image: np.ndarray, region: np.ndarray, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """The window's pixels and hole at the model's size: mirrored past the photo's edge (known ground to the
    model), reduced when the window is larger than its size (a reduced pixel that touches the hole is hole)."""
    ys, xs = slice(win.y, win.y + win.side), slice(win.x, win.x + win.side)
    crop, hole = image[ys, xs], region[ys, xs]
    pad = ((0, win.side - crop.shape[0]), (0, win.side - crop.shape[1]))
    crop = np.pad(crop, (*pad, (0, 0)), mode="symmetric")
    hole = np.pad(hole, pad, constant_values=False)
    if win.side == win.size:
        return crop, hole
    crop = cv2.resize(crop, (win.size, win.size), interpolation=cv2.INTER_AREA)
    hole = cv2.resize(hole.astype(np.float32), (win.size, win.size), interpolation=cv2.INTER_AREA) > 0
    return crop, hole


def _paste(image: np.ndarray, region: np.ndarray, win: Window, filled: np.ndarray) -> np.ndarray:
    """``image`` with its hole pixels taken from the filled window (brought back to the window's side)."""
    if win.side != win.size:
        filled = cv2.resize(filled, (win.side, win.side), interpolation=cv2.INTER_CUBIC)
    ys, xs = slice(win.y, win.y + win.side), slice(win.x, win.x + win.side)
    out = image.copy()
    h, w = out[ys, xs].shape[:2]
    out[ys, xs] = np.where(region[ys, xs][..., None], filled[:h, :w], image[ys, xs])
    return out


def fill_all(inpainter: Inpainter, images: list[np.ndarray], regions: list[np.ndarray]) -> list[Filled]:
    """Every image's region filled: in batched passes by an inpainter that runs a model, one by one otherwise."""
    if isinstance(inpainter, ExportedInpainter):
        return inpainter.fill_many(images, regions)
    return [Filled(inpainter(image, region)) for image, region in zip(images, regions, strict=True)]


Fill = OpenCVInpainter | XPhotoInpainter | TexturedFSRInpainter | CoarseToFineInpainter | ExportedInpainter
INPAINTERS: Registry[Fill] = Registry(
    "masks.inpaint.backend",
    "inpainter",
    {
        "telea": "curation.core.inpaint:TeleaInpainter",
        "navier_stokes": "curation.core.inpaint:NavierStokesInpainter",
        "fsr_fast": "curation.core.inpaint:FSRFastInpainter",
        "fsr_best": "curation.core.inpaint:FSRBestInpainter",
        "shiftmap": "curation.core.inpaint:ShiftMapInpainter",
        "fsr_texture": "curation.core.inpaint:TexturedFSRInpainter",
        "coarse_to_fine": "curation.core.inpaint:CoarseToFineInpainter",
        "exported": "curation.core.inpaint:ExportedInpainter",
    },
)


def build_inpainter(opts: InpaintOptions) -> Inpainter:
    """The configured inpainter (``masks.inpaint``), its model (if any) loaded now: once per actor."""
    return INPAINTERS.get(opts.backend).from_options(opts)
