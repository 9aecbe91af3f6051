"""``report.html``: a self-contained page of counts, reject reasons and a gallery of triplets."""
from __future__ import annotations

import html
import io
import json
import tarfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
from PIL import Image

from curation.core.preview import data_uri, on_checkerboard
from curation.layout import OutDir

GALLERY = 16


def _samples(tars: list[Path]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member: bytes}) per sample, read with the standard library: the report runs inside every run,
    and ``import webdataset`` would import torch into the driver for a gallery of a few pictures."""
    for path in tars:
        try:
            yield from _tar_samples(path)
        except (OSError, EOFError, tarfile.TarError, ValueError):  # damaged since it was written: the rest not shown
            continue


def _tar_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    key, members = None, {}
    with tarfile.open(path) as tar:
        for info in tar:
            k, member = info.name.split(".", 1)
            if k != key and members:
                yield key, members
                members = {}
            key, members[member] = k, tar.extractfile(info).read()
    if members:
        yield key, members


def _gallery(out: OutDir, names: list[str]) -> list[str]:
    cells: list[str] = []
    for key, sample in _samples([out.shards / f"{n}.tar" for n in names]):
        fg = Image.open(io.BytesIO(sample["foreground.png"])).convert("RGBA")
        caps = json.loads(sample["json"])["captions"]
        layers = (("composite", Image.open(io.BytesIO(sample["composite.png"])).convert("RGB")),
                  ("background", Image.open(io.BytesIO(sample["background.png"])).convert("RGB")),
                  ("foreground", on_checkerboard(fg)))
        imgs = "".join(f'<img src="{data_uri(im)}" title="{t}">' for t, im in layers)
        cells.append(f'<div class="s"><div>{imgs}</div><code>{html.escape(key)}</code>'
                     f'<p>{html.escape(caps["composite"])}<br><i>fg:</i> {html.escape(caps["foreground"])}'
                     f'<br><i>bg:</i> {html.escape(caps["background"])}</p></div>')
        if len(cells) >= GALLERY:
            break
    return cells


def write_report(out: OutDir, stats: dict[str, Any], index: pa.Table) -> None:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in stats["by_reason"].items())
    srcs = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in stats["by_source"].items())
    psnr = [v for v in index.column("psnr").to_pylist() if v == v] if index.num_rows else []
    q = np.percentile(psnr, [5, 50, 95]).round(2).tolist() if psnr else []
    page = f"""<!doctype html><meta charset="utf-8"><title>curation report</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 10px}}.s{{display:inline-block;width:500px;
vertical-align:top;margin:6px}}.s img{{margin-right:3px}}p{{font-size:12px}}</style>
<h1>Layered triplet curation</h1>
<p><b>{stats['ingested']}</b> ingested = <b>{stats['accepted']}</b> accepted + <b>{stats['rejected']}</b> rejected,
in {stats['shards']} shards ({stats['tar_bytes'] / 1e6:.1f} MB). Recomposite PSNR 5/50/95%: {q} dB.</p>
<h2>Rejects by stage/reason</h2><table>{rows}</table>
<h2>Rows by source</h2><table>{srcs}</table>
<h2>Accepted samples (composite · background · foreground on checkerboard)</h2>
{''.join(_gallery(out, out.complete_shards()))}
"""
    (out.root / "report.html").write_text(page)
