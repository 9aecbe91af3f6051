"""Small pictures for self-contained HTML pages (the run report, the curator's review page)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

THUMB = 160


def checkerboard(h: int, w: int, cell: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    on = ((yy // cell + xx // cell) % 2).astype(bool)
    return np.where(on[..., None], 200, 245).astype(np.uint8).repeat(3, axis=2)


def on_checkerboard(rgba: Image.Image) -> Image.Image:
    """The foreground over a checkerboard, so partial (shadow) alpha is visible."""
    board = Image.fromarray(checkerboard(rgba.height, rgba.width)).convert("RGBA")
    return Image.alpha_composite(board, rgba.convert("RGBA")).convert("RGB")


def data_uri(im: Image.Image) -> str:
    im = im.copy()
    im.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
