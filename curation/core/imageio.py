"""Image I/O in one place: validated decoding of untrusted files, and lossless PNG.

Decoding is where bad input shows up (empty, truncated, not an image, decompression bombs, odd
modes), so it raises :class:`ImageError` carrying a reason code the ingest stage turns into a rejected row.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from curation.core.reasons import Reason

# Never let PIL silently pad a truncated file with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(Exception):
    """A file that cannot become a valid image, with the reason code ingest records for it."""

    def __init__(self, reason: Reason, detail: str):
        self.reason = Reason(reason)  # a code that does not exist fails here, where it is raised
        self.detail = detail
        super().__init__(f"{self.reason}: {detail}")


def within(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path``, if it lies inside ``root`` once symlinks and ``..`` are resolved; else :class:`ImageError`
    (``outside_root``): a source's root is a boundary, so a link or a manifest entry cannot pull in other files."""
    p = Path(path)
    real, base = p.resolve(), Path(root).resolve()
    if not real.is_relative_to(base):
        raise ImageError(Reason.OUTSIDE_ROOT, f"{p} resolves to {real}, outside the source root {base}")
    return p


#: EXIF orientation tag → the PIL transpose that shows the image upright (as ``ImageOps.exif_transpose``)
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

#: file signatures of the formats we read: a file that starts like one but will not open is corrupt, not "not an image"
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "WEBP",
}

# We enforce our own pixel cap (from the run config) from the header, before any pixel is decoded, so PIL's
# process-wide default (which would warn at 89 Mpx and refuse at 179 Mpx whatever the config says) is off.
Image.MAX_IMAGE_PIXELS = None


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB deliberately, so odd modes neither crash nor shift colours."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode in ("P", "L") and "transparency" in im.info):
        # Flatten transparency onto white: a photo with an alpha channel is still a photo of something.
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode.startswith("I;16"):
        # 16-bit greyscale keeps its absolute levels: 0..65535 maps linearly onto 0..255.
        arr = np.asarray(im, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(arr.round(), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("I", "F"):
        # 32-bit int / float has no fixed range: rescale its real range to 8 bit instead of clipping at 255.
        arr = np.asarray(im, dtype=np.float64)
        finite = np.isfinite(arr)
        lo, hi = (float(arr[finite].min()), float(arr[finite].max())) if finite.any() else (0.0, 0.0)
        scaled = np.zeros_like(arr) if hi <= lo else (np.where(finite, arr, lo) - lo) / (hi - lo) * 255.0
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if mode in ("L", "P", "1", "CMYK", "YCbCr", "HSV"):
        return im.convert("RGB")
    raise ImageError(Reason.UNSUPPORTED_MODE, f"PIL mode {mode}")


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1..8); 1 when absent or unreadable."""
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block means "no usable orientation"
        return 1
    return value if value in _ORIENT else 1


def orient_array(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to any HxW(xC) uint8/bool array exactly as it is applied to the photo."""
    method = _ORIENT.get(orientation)
    if method is None:
        return array
    dtype = array.dtype
    out = np.asarray(Image.fromarray(array.astype(np.uint8)).transpose(method))
    return out.astype(dtype)


def decode_oriented(data: bytes, max_pixels: int, name: str = "<bytes>") -> tuple[np.ndarray, int]:
    """Decode untrusted bytes to upright RGB uint8 and the EXIF orientation that was applied.

    Annotated sources need the orientation: their masks may be drawn on the stored (unrotated) pixels.
    """
    if not data:
        raise ImageError(Reason.EMPTY_FILE, f"{name} has zero bytes")
    try:
        im: Image.Image = Image.open(io.BytesIO(data))
        w, h = im.size
        if w * h > max_pixels:
            raise ImageError(Reason.TOO_MANY_PIXELS, f"{name} is {w}x{h} = {w * h} px > cap {max_pixels}")
        im.load()
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        fmt = next((f for magic, f in _MAGIC.items() if data.startswith(magic)), None)
        if fmt is not None:
            raise ImageError(Reason.DECODE_ERROR, f"{name} starts like a {fmt} file but cannot be parsed") from exc
        raise ImageError(Reason.NOT_IMAGE, f"{name} is not a recognised image format") from exc
    except (OSError, SyntaxError) as exc:
        msg = str(exc)
        low = msg.lower()
        reason = (
            Reason.TRUNCATED
            if "truncated" in low or "premature" in low or "end of file" in low
            else Reason.DECODE_ERROR
        )
        raise ImageError(reason, f"{name}: {msg}") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a property of the file
        raise ImageError(Reason.DECODE_ERROR, f"{name}: {type(exc).__name__}: {exc}") from exc
    orientation = exif_orientation(im)
    if orientation != 1:
        im = im.transpose(_ORIENT[orientation])
    try:
        rgb = _to_rgb(im)
    except ImageError:
        raise
    except (ValueError, OSError) as exc:
        raise ImageError(Reason.UNSUPPORTED_MODE, f"{name}: PIL mode {im.mode}: {exc}") from exc
    return np.asarray(rgb, dtype=np.uint8).copy(), orientation


def decode_image(data: bytes, max_pixels: int, name: str = "<bytes>") -> np.ndarray:
    """Decode untrusted bytes to an RGB uint8 array, EXIF-oriented, or raise :class:`ImageError`."""
    return decode_oriented(data, max_pixels, name)[0]


def read_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes; a missing or unreadable file (permissions, an I/O error) is an :class:`ImageError` like any
    other bad input."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(Reason.MISSING_FILE, f"{p} does not exist") from exc
    except IsADirectoryError as exc:
        raise ImageError(Reason.NOT_IMAGE, f"{p} is a directory") from exc
    except OSError as exc:
        raise ImageError(Reason.UNREADABLE, f"{p} cannot be read: {exc.strerror or exc}") from exc


def read_image(path: str | os.PathLike, max_pixels: int) -> np.ndarray:
    """Read and decode a file, EXIF-oriented."""
    return decode_image(read_bytes(path), max_pixels, name=str(path))


def read_mask(path: str | os.PathLike, max_pixels: int) -> np.ndarray:
    """A binary mask file (any mode) as a bool array."""
    rgb = read_image(path, max_pixels)
    return rgb.max(axis=2) > 127


#: PNG row filters by config name; ``adaptive`` lets libpng choose per row (its default, the slowest)
PNG_FILTERS = {
    "none": cv2.IMWRITE_PNG_FILTER_NONE,
    "sub": cv2.IMWRITE_PNG_FILTER_SUB,
    "up": cv2.IMWRITE_PNG_FILTER_UP,
    "avg": cv2.IMWRITE_PNG_FILTER_AVG,
    "paeth": cv2.IMWRITE_PNG_FILTER_PAETH,
    "adaptive": cv2.IMWRITE_PNG_ALL_FILTERS,
}


def encode_png(array: np.ndarray, compression: int = 3, row_filter: str = "adaptive") -> bytes:
    """Lossless PNG of an L, RGB or RGBA uint8 array (OpenCV's encoder: several times faster than PIL's).

    ``compression`` is zlib's level, ``row_filter`` one of :data:`PNG_FILTERS`: both trade bytes for CPU
    and never change the decoded pixels.
    """
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise ValueError(f"PNG layers must be uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(
        ".png", array, [cv2.IMWRITE_PNG_COMPRESSION, compression, cv2.IMWRITE_PNG_FILTER, PNG_FILTERS[row_filter]]
    )
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
