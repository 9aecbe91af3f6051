"""Image I/O in one place: validated decoding of untrusted files, lossless PNG, and row blobs.

Decoding is where bad input shows up (empty, truncated, not an image, decompression bombs, odd
modes), so it raises :class:`ImageError` carrying a reason code the ingest stage turns into a rejected row.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Never let PIL silently pad a truncated file with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(Exception):
    """A file that cannot become a valid image; ``reason`` is a ``curation.schema.Reason`` value."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def to_blob(array: np.ndarray | None) -> bytes:
    """Pack an array as ``.npy`` bytes (shape and dtype included); ``None`` packs as empty bytes."""
    if array is None:
        return b""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def from_blob(blob: bytes | None) -> np.ndarray | None:
    if not blob:
        return None
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB deliberately, so odd modes neither crash nor shift colours."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        # Flatten transparency onto white: a photo with an alpha channel is still a photo of something.
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / float greyscale: rescale the real range to 8 bit instead of clipping at 255.
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if mode in ("L", "P", "1", "CMYK", "YCbCr", "LAB", "HSV"):
        return im.convert("RGB")
    raise ImageError("unsupported_mode", f"PIL mode {mode}")


def decode_image(data: bytes, max_pixels: int, name: str = "<bytes>") -> np.ndarray:
    """Decode untrusted bytes to an RGB uint8 array, EXIF-oriented, or raise :class:`ImageError`."""
    if not data:
        raise ImageError("empty_file", f"{name} has zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError("too_many_pixels", f"{name} is {w}x{h} = {w * h} px > cap {max_pixels}")
            im.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("too_many_pixels", f"{name}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not_image", f"{name} is not a recognised image format") from exc
    except OSError as exc:
        msg = str(exc)
        reason = "truncated" if "truncated" in msg.lower() or "premature" in msg.lower() else "decode_error"
        raise ImageError(reason, f"{name}: {msg}") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a property of the file
        raise ImageError("decode_error", f"{name}: {type(exc).__name__}: {exc}") from exc
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a broken EXIF block should not cost us the pixels
        pass
    return np.asarray(_to_rgb(im), dtype=np.uint8).copy()


def read_image(path: str | os.PathLike, max_pixels: int) -> np.ndarray:
    """Read and decode a file; a missing file is an :class:`ImageError` like any other bad input."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError("missing_file", f"{p} does not exist") from exc
    except IsADirectoryError as exc:
        raise ImageError("not_image", f"{p} is a directory") from exc
    except OSError as exc:
        raise ImageError("missing_file", f"{p}: {exc}") from exc
    return decode_image(data, max_pixels, name=str(p))


def read_mask(path: str | os.PathLike, max_pixels: int) -> np.ndarray:
    """A binary mask file (any mode) as a bool array."""
    rgb = read_image(path, max_pixels)
    return rgb.max(axis=2) > 127


def encode_png(array: np.ndarray, compression: int = 3) -> bytes:
    """Lossless PNG of an L, RGB or RGBA uint8 array (OpenCV's encoder: several times faster than PIL's)."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise ValueError(f"PNG layers must be uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """Decode a PNG we wrote, keeping its channel count (L, RGB or RGBA)."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("not a PNG")
    if arr.ndim == 3 and arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    return arr
