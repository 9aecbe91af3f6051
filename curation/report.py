"""``report.html``: a self-contained page of counts, reject reasons and a gallery of triplets."""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import pyarrow as pa
import webdataset as wds

from curation.core.preview import data_uri, on_checkerboard
from curation.layout import OutDir

GALLERY = 16


def _gallery(out: OutDir, names: list[str]) -> list[str]:
    cells: list[str] = []
    urls = [str(out.shards / f"{n}.tar") for n in names]
    if not urls:
        return cells
    # "pilrgba", not "pil": webdataset's "pil" converts to RGB and would drop the foreground's alpha
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pilrgba"):
        fg = sample["foreground.png"]
        caps = sample["json"]["captions"]
        layers = (("composite", sample["composite.png"].convert("RGB")),
                  ("background", sample["background.png"].convert("RGB")), ("foreground", on_checkerboard(fg)))
        imgs = "".join(f'<img src="{data_uri(im)}" title="{t}">' for t, im in layers)
        cells.append(f'<div class="s"><div>{imgs}</div><code>{html.escape(sample["__key__"])}</code>'
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
