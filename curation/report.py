"""``report.html``: one self-contained page about a run folder, written at the end of each run and by
``curate report OUT``.

Counts and reasons (``stats.json``), the curator-score and fill-quality distributions (``index.parquet``),
per-stage throughput and time (the run's progress figures in ``run.json``), a sample of rejects per reason
with the thumbnails they kept, a gallery of accepted triplets (the shards), the run history and the config
(``run.json``). Pictures and plots are inline (PNG data URIs, SVG), so the page opens anywhere, e.g. on a
laptop after ``rsync``; a section whose file is missing or unreadable says so and the others still show.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from curation.atomicio import write_atomic
from curation.core.htmlescape import attr, text
from curation.core.preview import data_uri, on_checkerboard
from curation.core.rejects import reject_samples
from curation.finalize import merge_index, merge_stats
from curation.layout import OutDir

GALLERY = 16
#: rejects shown per reason (the run keeps up to ``report.rejects_per_reason`` with thumbnails)
REJECTS_SHOWN = 8
#: the fill-quality values stage 2 records per row (``meta.masks.quality``) and the ``masks.quality`` key gating each
FILL_KEYS = (("fill_texture", "min_fill_texture"), ("fill_seam", "max_fill_seam"), ("fill_ghost", "max_fill_ghost"))
ACCEPTED_COLOUR, REJECTED_COLOUR = "#3a7d44", "#c0392b"


def _esc(value: Any) -> str:
    return text(value)


def _table(header: list[str], rows: list[list[Any]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"n" if i >= numeric_from else ""}">{_esc(v)}</td>' for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _svg(figure: Any) -> str:
    """A matplotlib figure as inline SVG (text kept as text: small and searchable)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    figure.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})  # the same run, the same page
    plt.close(figure)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def _figure(width: float = 4.2, height: float = 2.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.hashsalt": "curation",
            "svg.fonttype": "none",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt.subplots(figsize=(width, height))


class Run:
    """What the report reads from a run folder, each file once, on first use."""

    def __init__(self, out: OutDir):
        self.out = out
        self._cache: dict[str, Any] = {}

    def _once(self, name: str, load: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = load()
        return self._cache[name]

    @property
    def stats(self) -> dict[str, Any]:
        path = self.out.root / "stats.json"
        return self._once("stats", lambda: json.loads(path.read_text()) if path.exists() else merge_stats(self.out))

    @property
    def index(self) -> pa.Table:
        path = self.out.root / "index.parquet"
        return self._once("index", lambda: pq.read_table(path) if path.exists() else merge_index(self.out))

    @property
    def info(self) -> dict[str, Any]:
        return self._once("info", lambda: json.loads(self.out.run_json.read_text()))

    def metas(self) -> list[tuple[str, dict[str, Any]]]:
        """(status, parsed meta) of every row of the index."""
        return self._once(
            "metas",
            lambda: [
                (s, json.loads(m or "{}"))
                for s, m in zip(
                    self.index.column("status").to_pylist(), self.index.column("meta").to_pylist(), strict=True
                )
            ],
        )


def _counts(run: Run) -> str:
    s = run.stats
    reasons = _table(["stage/reason", "rows"], [[k, v] for k, v in s["by_reason"].items()])
    sources = _table(["source", "rows"], [[k, v] for k, v in s["by_source"].items()])
    return (
        f"<p class=big><b>{s['ingested']}</b> ingested = <b>{s['accepted']}</b> accepted + <b>{s['rejected']}</b> "
        f"rejected, in {s['shards']} shard{'' if s['shards'] == 1 else 's'} ({s['tar_bytes'] / 1e6:.1f} MB)</p>"
        f"<div class=cols><div><h3>Rejects by stage/reason</h3>{reasons}</div>"
        f"<div><h3>Rows by source</h3>{sources}</div></div>"
    )


def _scores(run: Run) -> str:
    index = run.index
    scores = [
        (v, st)
        for v, st in zip(index.column("score").to_pylist(), index.column("status").to_pylist(), strict=True)
        if v is not None and math.isfinite(v)
    ]
    if not scores:
        return "<p class=skip>No row of this run has a curator score.</p>"
    thresholds = {m.get("curate", {}).get("threshold") for _, m in run.metas()} - {None}
    fig, ax = _figure(5.5, 3.0)
    bins = np.linspace(0, 1, 41)
    groups = [[v for v, st in scores if st == "ok"], [v for v, st in scores if st != "ok"]]
    ax.hist(
        groups,
        bins=bins,
        stacked=True,
        color=[ACCEPTED_COLOUR, REJECTED_COLOUR],
        label=[f"accepted ({len(groups[0])})", f"rejected ({len(groups[1])})"],
    )
    for i, t in enumerate(sorted(thresholds)):
        # the label sits above the axes (nothing else is there) and reads the threshold as the run used it
        ax.axvline(t, color="#333", linestyle="--", linewidth=1)
        ax.annotate(
            f"threshold {t:.6g}",
            (t, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 3 + 11 * i),
            textcoords="offset points",
            ha="right" if t > 0.6 else "left",
            va="bottom",
            gid=f"threshold-label-{i}",
        )
    ax.set_xlabel("curator score (P(good))")
    ax.set_ylabel("rows")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0)).set_gid("score-legend")
    psnr = [v for v in index.column("psnr").to_pylist() if v is not None and math.isfinite(v)]
    q = np.percentile(psnr, [5, 50, 95]).round(2).tolist() if psnr else "n/a"
    return f"<div class=plot>{_svg(fig)}</div><p>Recomposite PSNR 5/50/95%: {q} dB (rows that reached stage 2).</p>"


def _fill_quality(run: Run) -> str:
    values: dict[str, list[tuple[float, str]]] = {k: [] for k, _ in FILL_KEYS}
    for status, meta in run.metas():
        quality = meta.get("masks", {}).get("quality") or {}
        for k, _ in FILL_KEYS:
            if isinstance(quality.get(k), (int, float)) and math.isfinite(quality[k]):
                values[k].append((float(quality[k]), status))
    shown = {k: v for k, v in values.items() if v}
    if not shown:
        return (
            "<p class=skip>No fill-quality values in this run's index (stage 2 records them per row as "
            "<code>meta.masks.quality</code> when its quality checks run).</p>"
        )
    gates = run.info.get("config", {}).get("masks", {}).get("quality", {})
    plots = []
    for key, gate in FILL_KEYS:
        if key not in shown:
            continue
        fig, ax = _figure(3.2, 2.2)
        groups = [[v for v, st in shown[key] if st == "ok"], [v for v, st in shown[key] if st != "ok"]]
        ax.hist(groups, bins=30, stacked=True, color=[ACCEPTED_COLOUR, REJECTED_COLOUR])
        title = f"{len(groups[0])} accepted, {len(groups[1])} rejected"
        if gates.get("enabled") and isinstance(gates.get(gate), (int, float)):
            ax.axvline(gates[gate], color="#333", linestyle="--", linewidth=1)
            title += f"; gate {gate} {gates[gate]:g}"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel(key)
        ax.set_ylabel("rows")
        plots.append(f"<div class=plot>{_svg(fig)}</div>")
    return (
        "<p>The fill under the object as stage 2's quality checks measured it on the rows they passed "
        '(<code>meta.masks.quality</code>): <span style="color:#3a7d44">accepted</span> and '
        '<span style="color:#c0392b">rejected by a later stage</span>, stacked; dashed: the run\'s gate '
        "(<code>masks.quality</code>). The rows the checks rejected are under Rejects, their values in the "
        "detail.</p><div class=cols>" + "".join(plots) + "</div>"
    )


def _throughput(run: Run) -> str:
    history = run.info.get("history", [])
    seg = next((h for h in reversed(history) if h.get("progress")), None)
    if seg is None:
        return (
            "<p class=skip>run.json holds no per-stage figures (a run from before they were recorded, or one that "
            "did not end).</p>"
        )
    p = seg["progress"]
    rows, names, busy = [], [], []
    for name, s in p["stages"].items():
        span = (s["last"] - s["first"]) if s["first"] is not None else 0.0
        rejected = sum(s["rejected"].values())
        rows.append(
            [
                name,
                s["inputs"],
                s["accepted"],
                rejected,
                s["batches"],
                f"{s['busy_s']:.1f}",
                f"{s['inputs'] / s['busy_s']:.2f}" if s["busy_s"] else "-",
                f"{span:.1f}",
                f"{s['inputs'] / span:.2f}" if span > 0 else "-",
            ]
        )
        names.append(name)
        busy.append(s["busy_s"])
    k = p["sink"]
    sink_span = (k["last"] - k["first"]) if k["first"] is not None else 0.0
    sink = (
        f"<p>Sink: {k['shards']} shard{'' if k['shards'] == 1 else 's'} written, {k['accepted']} samples of "
        f"{k['rows']} rows, {k['bytes'] / 1e6:.1f} MB; "
        f"{sink_span:.1f} s from the first shard to the last.</p>"
    )
    table = _table(
        [
            "stage",
            "inputs",
            "passed on",
            "rejected",
            "batches",
            "busy s (all actors)",
            "inputs per busy s",
            "first→last batch s",
            "inputs per s",
        ],
        rows,
    )
    fig, ax = _figure(4.2, 0.5 + 0.35 * len(names))
    ax.barh(names[::-1], busy[::-1], color="#4c72b0")
    ax.set_xlabel("busy seconds, summed over the stage's actors")
    wall = p["now"] - p["started"]
    return (
        f"<p>Segment {_esc(seg['segment'])}: {p['units']} source units, {wall:.1f} s from the first unit sent to "
        f"the last shard counted. Ingest's inputs are source units, the other stages' are rows; a stage whose busy "
        f"seconds come close to its actors × wall time is the bottleneck.</p>{table}{sink}<div "
        f"class=plot>{_svg(fig)}</div>"
    )


def _layer_images(layers: dict[str, np.ndarray | None]) -> list[tuple[str, Image.Image]]:
    """The layers a row was judged on, the foreground on a checkerboard and its alpha beside it."""
    out = []
    for name in ("composite", "background", "foreground", "mask", "effect"):
        a = layers.get(name)
        if a is None:
            continue
        im = Image.fromarray(a)
        out.append((name, on_checkerboard(im) if name == "foreground" else im))
        if name == "foreground" and a.ndim == 3 and a.shape[2] == 4:
            out.append(("alpha", Image.fromarray(np.ascontiguousarray(a[..., 3]))))
    return out


def _figures(images: list[tuple[str, Image.Image]]) -> str:
    return "".join(
        f'<figure><img src="{data_uri(im)}" alt="{attr(t)}"><figcaption>{text(t)}</figcaption></figure>'
        for t, im in images
    )


def _score(score: float | None) -> str:
    return f" score {score:.3f}" if score is not None and math.isfinite(score) else ""


def _rejects(run: Run) -> str:
    samples = reject_samples(run.index)
    counts = run.stats["by_reason"]
    if not counts:
        return "<p>No rows were rejected.</p>"
    parts = []
    for reason, n in counts.items():
        kept = samples.get(reason, [])[:REJECTS_SHOWN]
        cards = "".join(
            f'<div class="card wide"><div>{_figures(_layer_images(r["thumbnails"]))}</div>'
            f"<code>{_esc(r['key'])}</code>{_score(r['score'])}<p>{_esc(r['reject_detail'])}</p></div>"
            for r in kept
        )
        note = "" if kept else "<p class=skip>no thumbnails kept for this reason</p>"
        parts.append(
            f"<h3>{_esc(reason)}: {n} row{'' if n == 1 else 's'} ({len(kept)} shown)</h3>{note}<div>{cards}</div>"
        )
    return "".join(parts)


def _samples(tars: list[Path]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member: bytes}) per sample, read with the standard library: the report runs inside every run,
    and ``import webdataset`` would import torch into the driver for a gallery of a few pictures."""
    for path in tars:
        try:
            yield from _tar_samples(path)
        except (OSError, EOFError, tarfile.TarError, ValueError):  # damaged since it was written: the rest not shown
            continue


def _tar_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    key = ""  # set before any member is added
    members: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for info in tar:
            if not info.isfile():  # as curation.shards reads them: a sample's members are regular files
                continue
            k, member = info.name.split(".", 1)
            if k != key and members:
                yield key, members
                members = {}
            data = tar.extractfile(info)
            assert data is not None, "a regular file has a body"
            key, members[member] = k, data.read()
    if members:
        yield key, members


def _is_real(source_ref: str) -> bool:
    """A real photo: every source but the synthetic scenes (whose refs start with ``synthetic:``)."""
    return not str(source_ref).startswith("synthetic:")


def gallery_picks(index: pa.Table, n: int = GALLERY) -> list[tuple[dict[str, Any], str]]:
    """Up to ``n`` accepted rows, each with why it is shown: every real photo first (lowest P(good) first, as many
    as leave room for the extremes), then the lowest and the highest curator scores, then every source's first
    rows in turn, so a page of 16 shows the run's range rather than the first shard's start."""
    cols = [c for c in ("key", "source", "source_ref", "score", "meta", "shard", "status") if c in index.column_names]
    rows = [r for r in index.select(cols).to_pylist() if r["status"] == "ok"]
    picked: dict[str, tuple[dict[str, Any], str]] = {}

    def take(candidates: list[dict[str, Any]], why: str, k: int) -> None:
        for r in candidates:
            if len(picked) >= n or k <= 0:
                return
            if r["key"] not in picked:
                picked[r["key"]] = (r, why)
                k -= 1

    def score(r: dict[str, Any]) -> float:
        return r["score"] if r.get("score") is not None and math.isfinite(r["score"]) else float("nan")

    scored = sorted((r for r in rows if math.isfinite(score(r))), key=score)
    # every shipped real-photo triplet first (the most doubtful first), so that precision can be checked by eye;
    # room is left only for the extremes of the score
    real = [r for r in scored + [r for r in rows if not math.isfinite(score(r))] if _is_real(r.get("source_ref", ""))]
    take(real, "real photo", n - 2 * (n // 8 or 1))
    take(scored, "lowest score", n // 8 or 1)
    take(scored[::-1], "highest score", n // 8 or 1)
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    while len(picked) < n and any(by_source.values()):
        for name, queue in by_source.items():
            while queue and queue[0]["key"] in picked:
                queue.pop(0)
            if queue:
                take([queue.pop(0)], f"source {name}", 1)
    return list(picked.values())


def _card_note(row: dict[str, Any], why: str) -> str:
    curate = json.loads(row.get("meta") or "{}").get("curate", {})
    p = row.get("score")
    parts = [f"<b>{_esc(why)}</b>"] + ([] if why.startswith("source ") else [f"source {_esc(row['source'])}"])
    if p is not None and math.isfinite(p):
        parts.append(f"P(good) <b>{p:.3f}</b>")
    if curate.get("likely_failure"):
        failure = f"top failure {_esc(curate['likely_failure'])}"
        parts.append(failure + (f" ({curate['p_failure']:.2f})" if isinstance(curate.get("p_failure"), float) else ""))
    return " · ".join(parts)


def _gallery(run: Run) -> str:
    picks = gallery_picks(run.index)
    if not picks:
        return "<p class=skip>No accepted samples in the shards.</p>"
    wanted = {r["key"]: (r, why) for r, why in picks}
    shards = sorted({r["shard"] for r, _ in picks if r.get("shard")})
    found: dict[str, dict[str, bytes]] = {}
    for key, sample in _samples([run.out.shards / f"{s}.tar" for s in shards]):
        if key in wanted:
            found[key] = sample
    cells: list[str] = []
    for key, (row, why) in wanted.items():
        if key not in found:
            continue
        sample = found[key]
        fg = Image.open(io.BytesIO(sample["foreground.png"])).convert("RGBA")
        caps = json.loads(sample["json"])["captions"]
        layers = [
            ("composite", Image.open(io.BytesIO(sample["composite.png"])).convert("RGB")),
            ("background", Image.open(io.BytesIO(sample["background.png"])).convert("RGB")),
            ("foreground", on_checkerboard(fg)),
            ("alpha", fg.getchannel("A")),
        ]
        cells.append(
            f'<div class="card wide"><div>{_figures(layers)}</div><code>{_esc(key)}</code>'
            f"<p>{_card_note(row, why)}</p>"
            f"<p>{_esc(caps['composite'])}<br><i>fg:</i> {_esc(caps['foreground'])}"
            f"<br><i>bg:</i> {_esc(caps['background'])}</p></div>"
        )
    real = sum(why == "real photo" for _, why in picks)
    return (
        f"<p>{len(cells)} of {sum(1 for s in run.index.column('status').to_pylist() if s == 'ok')} accepted "
        f"samples: {real} from real photos first (lowest P(good) first, each with its top failure), then the "
        f"lowest and highest curator scores, then each source "
        f"in turn.</p>" + "".join(cells)
    )


def _history(run: Run) -> str:
    info = run.info
    rows = [
        [
            h.get("segment"),
            h.get("start"),
            h.get("end") or "did not end",
            h.get("wall_seconds", ""),
            h.get("skipped_done_keys", ""),
            len(h.get("removed_torn_files") or []),
            h.get("ray_address", ""),
        ]
        for h in info.get("history", [])
    ]
    table = _table(
        ["segment", "start", "end", "wall s", "keys skipped (resumed)", "torn files removed", "Ray"],
        rows,
        numeric_from=3,
    )
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())
    return f"{table}<p>git {_esc(info.get('git_revision', 'unknown'))}; {_esc(versions)}</p>"


def _config(run: Run) -> str:
    c = run.info["config"]
    sources = ", ".join(f"{s.get('name')} ({s.get('type')})" for s in c.get("sources", []))
    choices = [
        ["sources", sources],
        ["masks.segmenter", c["masks"].get("segmenter")],
        ["caption.backend", c["caption"].get("backend")],
        ["curate.backend", c["curate"].get("backend")],
        ["ray.fusion", c["ray"].get("fusion")],
        ["sink.shard_size", c["sink"].get("shard_size")],
    ]
    return (
        _table(["key", "value"], choices, numeric_from=2) + "<details><summary>the whole run config, as validated"
        f"</summary><pre>{_esc(json.dumps(c, indent=1))}</pre></details>"
    )


SECTIONS: tuple[tuple[str, Callable[[Run], str]], ...] = (
    ("Counts", _counts),
    ("Curator score", _scores),
    ("Fill quality (stage 2)", _fill_quality),
    ("Throughput and time per stage", _throughput),
    ("Rejects by reason, with the thumbnails kept", _rejects),
    ("Accepted samples (composite · background · foreground on a checkerboard · alpha)", _gallery),
    ("Run history", _history),
    ("Config", _config),
)

STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em 2em;max-width:1500px;color:#222}
h2{border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:1.6em}h3{margin:1em 0 .3em}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.big{font-size:18px}
.skip{color:#888;font-style:italic}
.cols{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}.plot svg{max-width:100%;height:auto}
.card{display:inline-block;vertical-align:top;margin:6px;padding:6px;border:1px solid #ddd;max-width:500px;
font-size:12px}
.card.wide{max-width:780px}.card.wide img{width:112px}
figure{display:inline-block;margin:0 3px 2px 0;text-align:center;font-size:10px;color:#666}figure img{display:block}
p{margin:.4em 0}pre{font-size:11px;background:#f7f7f7;padding:8px;overflow:auto;max-height:600px}"""


def write_report(out: OutDir) -> Path:
    """Write ``OUT/report.html`` from what the folder holds; returns its path."""
    run = Run(out)
    parts = []
    for title, section in SECTIONS:
        try:
            body = section(run)
        except Exception as err:  # noqa: BLE001 - a file this section needs is missing or unreadable
            body = f"<p class=skip>Not shown: {_esc(type(err).__name__)}: {_esc(err)}</p>"
        parts.append(f"<section><h2>{_esc(title)}</h2>{body}</section>")
    page = (
        f'<!doctype html><meta charset="utf-8"><title>curation report: {_esc(out.root.name)}</title>'
        f"<style>{STYLE}</style><h1>Layered triplet curation: {_esc(out.root)}</h1>{''.join(parts)}"
    )
    path = out.root / "report.html"
    write_atomic(path, page)
    return path


def cmd_report(args: argparse.Namespace) -> int:
    if not (args.out / "run.json").is_file():
        print(f"{args.out} is not a run folder (no run.json)", file=sys.stderr)
        return 2
    print(write_report(OutDir(args.out)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write OUT/report.html again from the run folder (every run writes it)")
    p.add_argument("out", type=Path, help="a run folder")
    p.set_defaults(func=cmd_report)
