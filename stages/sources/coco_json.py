"""Reading COCO-style annotation files at full scale: streamed JSON, an on-disk join, RLE/polygon masks.

A COCO file lists ``images`` and ``annotations`` as two separate arrays (annotations usually after the
images), so grouping annotations per image would normally mean holding every annotation in memory. Here
one streaming pass (``ijson``) writes each annotation, as compact JSON text, into a temporary SQLite table
indexed by image id; a second pass streams ``images`` and fetches each image's group from the index.
The driver holds one image entry and its annotations at a time, plus SQLite's page cache (capped at 16 MB).
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson
import numpy as np
from pycocotools import mask as mask_utils

_BATCH = 5000
_CACHE_KIB = 16 * 1024


class AnnotationError(ValueError):
    """An annotation whose geometry cannot become a mask (becomes ``bad_annotation``)."""


#: what a bare ``NaN``, ``Infinity`` or ``-Infinity`` (Python's ``json.dump`` writes them) reads as: a string no
#: real annotation holds, so the element carrying it is found (:func:`has_nonfinite`) and rejected alone
NONFINITE = "\x00nonfinite"
_NONFINITE_TOKENS = (b"-Infinity", b"Infinity", b"NaN")
_SPECIAL = (re.compile(rb'["NI-]'), re.compile(rb'["\\]'))  # what matters outside a string, and inside one


class LenientJSON:
    """A binary stream of JSON with every bare ``NaN`` / ``Infinity`` / ``-Infinity`` outside strings turned into
    the string :data:`NONFINITE`, for ``ijson`` (which, like the JSON standard, refuses them)."""

    def __init__(self, raw: Any, chunk: int = 1 << 16):
        self.raw, self.chunk = raw, chunk
        self.in_string = False
        self.carry = b""  # bytes whose meaning depends on what follows (a cut token, a trailing backslash)
        self.out = b""
        self.eof = False

    def read(self, size: int = -1) -> bytes:
        while not self.eof and (size < 0 or len(self.out) < size):
            data = self.raw.read(self.chunk)
            self.eof = not data
            self.out += self._filter(self.carry + data, final=self.eof)
        if size < 0:
            size = len(self.out)
        result, self.out = self.out[:size], self.out[size:]
        return result

    def _filter(self, data: bytes, final: bool) -> bytes:
        out, i, n = bytearray(), 0, len(data)
        self.carry = b""
        while i < n:
            m = _SPECIAL[self.in_string].search(data, i)
            if m is None:
                out += data[i:]
                break
            j = m.start()
            out += data[i:j]
            c = data[j : j + 1]
            if self.in_string:
                if c == b"\\":
                    if j + 1 >= n and not final:
                        self.carry = data[j:]
                        break
                    out += data[j : j + 2]
                    i = j + 2
                    continue
                self.in_string = False
                out += c
                i = j + 1
                continue
            if c == b'"':
                self.in_string = True
                out += c
                i = j + 1
                continue
            token = next((t for t in _NONFINITE_TOKENS if data.startswith(t, j)), None)
            if token is not None:
                out += json.dumps(NONFINITE).encode()
                i = j + len(token)
                continue
            if not final and any(t.startswith(data[j:]) for t in _NONFINITE_TOKENS):
                self.carry = data[j:]  # a token cut by the chunk boundary
                break
            out += c
            i = j + 1
        return bytes(out)


def has_nonfinite(value: Any) -> bool:
    """Whether a parsed element holds a bare ``NaN`` / ``Infinity`` (read as :data:`NONFINITE`) anywhere."""
    if isinstance(value, dict):
        return any(has_nonfinite(v) for v in value.values())
    if isinstance(value, list):
        return any(has_nonfinite(v) for v in value)
    return value == NONFINITE


def stream_items(path: Path, prefix: str) -> Iterator[Any]:
    """Stream the elements of the array at ``prefix`` (``"images.item"``) without loading the file.

    Standard JSON is read at full speed; a file that ``ijson`` refuses is read again leniently (bare
    ``NaN`` / ``Infinity`` become :data:`NONFINITE`), skipping the elements already given.
    """
    given = 0
    with open(path, "rb") as f:
        try:
            for item in ijson.items(f, prefix, use_float=True):
                given += 1
                yield item
            return
        except ijson.JSONError:
            pass
    with open(path, "rb") as f:
        try:
            for n, item in enumerate(ijson.items(LenientJSON(f), prefix, use_float=True)):
                if n >= given:
                    yield item
        except ijson.JSONError as err:
            raise ValueError(f"{path} is not valid JSON (while reading {prefix}): {err}") from None


def id_key(value: Any) -> str | None:
    """COCO ids are ints (some exports use strings); anything else is not an id."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        return None
    return str(value)


class AnnotationIndex:
    """Annotations grouped by image id in a temporary SQLite file; also tracks which image ids were seen."""

    def __init__(self, path: Path, array: str = "annotations", tmp_dir: Path | None = None):
        self._tmp = tempfile.TemporaryDirectory(prefix="coco-index-", dir=tmp_dir)
        self.db = sqlite3.connect(Path(self._tmp.name) / "index.sqlite")
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{_CACHE_KIB}", "temp_store=FILE"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute("CREATE TABLE anns (seq INTEGER PRIMARY KEY, image_id TEXT, body TEXT)")
        self.db.execute("CREATE TABLE seen (image_id TEXT PRIMARY KEY)")
        self.count = 0
        batch: list[tuple[int, str | None, str]] = []
        for ann in stream_items(path, f"{array}.item"):
            image_id = id_key(ann.get("image_id")) if isinstance(ann, dict) else None
            batch.append((self.count, image_id, json.dumps(ann, separators=(",", ":"))))
            self.count += 1
            if len(batch) == _BATCH:
                self.db.executemany("INSERT INTO anns VALUES (?, ?, ?)", batch)
                batch = []
        self.db.executemany("INSERT INTO anns VALUES (?, ?, ?)", batch)
        self.db.execute("CREATE INDEX anns_image ON anns (image_id, seq)")
        self.db.commit()

    def mark_seen(self, image_id: str) -> bool:
        """Record an image id; False if it was already listed (a duplicate image entry)."""
        return self.db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (image_id,)).rowcount == 1

    def for_image(self, image_id: str) -> list[Any]:
        rows = self.db.execute("SELECT body FROM anns WHERE image_id = ? ORDER BY seq", (image_id,))
        return [json.loads(body) for (body,) in rows]

    def orphans(self) -> Iterator[tuple[int, Any]]:
        """Annotations whose image id is missing, malformed, or not among the listed images."""
        rows = self.db.execute(
            "SELECT seq, body FROM anns WHERE image_id IS NULL OR image_id NOT IN (SELECT image_id FROM seen) "
            "ORDER BY seq"
        )
        for seq, body in rows:
            yield seq, json.loads(body)

    def close(self) -> None:
        self.db.close()
        self._tmp.cleanup()

    def __enter__(self) -> AnnotationIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def categories(path: Path) -> dict[str, str]:
    """Category id → name (the array is small)."""
    out: dict[str, str] = {}
    for cat in stream_items(path, "categories.item"):
        key = id_key(cat.get("id")) if isinstance(cat, dict) else None
        if key is not None:
            out[key] = str(cat.get("name", cat["id"]))
    return out


def image_entry_problem(entry: Any) -> str | None:
    """Why an ``images`` element cannot be used, or None."""
    if not isinstance(entry, dict):
        return f"image entry is a {type(entry).__name__}, not an object"
    if id_key(entry.get("id")) is None:
        return "image entry has no usable id"
    name = entry.get("file_name")
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        return f"image {entry.get('id')}: file_name {name!r} is not a relative path"
    for dim in ("width", "height"):
        v = entry.get(dim)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < 1:
            return f"image {entry.get('id')}: {dim} {v!r} is not a positive integer"
    return None


def rle_string_counts(s: bytes) -> list[int]:
    """Decode COCO's compressed RLE string to run lengths (the format of pycocotools' ``rleFrString``).

    Checked here first because pycocotools' C decoder writes runs without bounds checks: a corrupt
    string would overrun its buffer instead of raising.
    """
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise AnnotationError("compressed RLE string ends inside a run")
            c = s[p] - 48
            if not 0 <= c < 64:
                raise AnnotationError(f"byte {s[p]!r} is not a compressed RLE character")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _check_polygons(polys: list[list[Any]], h: int, w: int) -> None:
    for p in polys:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in p):
            raise AnnotationError("polygon coordinates are not finite numbers")
        xs, ys = p[0::2], p[1::2]
        # pycocotools rasterises every edge pixel by pixel: absurd coordinates would mean absurd memory
        if min(xs) < -w or max(xs) > 2 * w or min(ys) < -h or max(ys) > 2 * h:
            raise AnnotationError(f"polygon reaches far outside the {w}x{h} image")


def decode_segmentation(segm: Any, h: int, w: int) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed RLE or compressed RLE) as an HxW bool mask."""
    try:
        if isinstance(segm, list):
            polys = [p for p in segm if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
            if not polys:
                raise AnnotationError("no polygon with at least 3 points")
            _check_polygons(polys, h, w)
            rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
        elif isinstance(segm, dict) and "counts" in segm and "size" in segm:
            if [int(v) for v in segm["size"]] != [h, w]:
                raise AnnotationError(f"RLE size {segm['size']} differs from the image's {[h, w]}")
            counts = segm["counts"]
            if isinstance(counts, list):
                if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != h * w:
                    raise AnnotationError(f"uncompressed RLE counts do not cover {h}x{w} pixels")
                rle = mask_utils.frPyObjects(segm, h, w)
            elif isinstance(counts, (str, bytes)):
                raw = counts.encode("ascii") if isinstance(counts, str) else counts
                runs = rle_string_counts(raw)
                if any(c < 0 for c in runs) or sum(runs) != h * w:
                    raise AnnotationError(f"compressed RLE runs do not cover {h}x{w} pixels")
                rle = {"size": [h, w], "counts": raw}
            else:
                raise AnnotationError(f"RLE counts of type {type(counts).__name__}")
        else:
            raise AnnotationError(f"segmentation of type {type(segm).__name__} is neither polygons nor RLE")
        mask = mask_utils.decode(rle)
    except AnnotationError:
        raise
    except Exception as exc:  # noqa: BLE001 - pycocotools raises assorted errors for malformed input
        raise AnnotationError(f"undecodable segmentation: {type(exc).__name__}: {exc}") from exc
    if mask.shape[:2] != (h, w):
        raise AnnotationError(f"decoded mask is {mask.shape[1]}x{mask.shape[0]}, image is {w}x{h}")
    return mask.astype(bool)
