"""The labelling loop's review page: the samples the curator is least sure about, one self-contained HTML file.

Each card shows the composite, background, foreground on a checkerboard (so shadow alpha is visible)
and the alpha itself, with the curator's P(good) and its guess of the failure. Good/bad buttons (and an
optional failure mode) are kept in the browser; a second section shows the rejects the run kept thumbnails
of (possible false rejects), with the same buttons; "download labels.csv" saves them in the format
:mod:`curator_model.labels` defines, which ``curate train-curator --labels`` reads back.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from curation.core.preview import data_uri, on_checkerboard
from curator_model.features import Triplet, features
from curator_model.labels import COLUMNS, LABELS, kept_rejects, shard_samples
from curator_model.network import FAILURES, Curator


@dataclass
class Candidate:
    key: str
    triplet: Triplet
    p_good: float
    likely: str
    rejected: str = ""  # stage/reason and detail, for a kept reject


def _scored(curator: Curator, triplets: list[Triplet]) -> np.ndarray:
    return curator.predict(np.stack([features(t, curator.spec.input_size) for t in triplets]))


def _candidate(curator: Curator, key: str, triplet: Triplet, probs: np.ndarray, rejected: str = "") -> Candidate:
    return Candidate(key, triplet, float(probs[0]), curator.spec.classes[1 + int(np.argmax(probs[1:]))], rejected)


def least_sure(curator: Curator, runs: list[Path], n: int, threshold: float) -> list[Candidate]:
    """The ``n`` samples whose P(good) lies closest to the threshold (most informative to label)."""
    keys, triplets = [], []
    for key, t in shard_samples(runs):
        keys.append(key)
        triplets.append(t)
    if not keys:
        return []
    probs = _scored(curator, triplets)
    order = np.argsort(np.abs(probs[:, 0] - threshold), kind="stable")[:n]
    return [_candidate(curator, keys[i], triplets[i], probs[i]) for i in order]


def false_reject_candidates(curator: Curator, runs: list[Path], n: int) -> list[Candidate]:
    """Up to ``n`` of the rejects the runs kept thumbnails of, the likeliest false rejects first: the highest
    P(good), the one the run gave the full-size layers where it scored them (the curator sees a thumbnail
    differently), else the thumbnail's."""
    kept = list(kept_rejects(runs))
    if not kept:
        return []
    probs = _scored(curator, [r.triplet for r in kept])
    run_p = np.array([probs[i, 0] if r.score is None else r.score for i, r in enumerate(kept)])
    order = np.argsort(-run_p, kind="stable")[:n]
    out = []
    for i in order:
        r = kept[i]
        said = "" if r.score is None else f"; P(good) in the run {r.score:.3f}"
        out.append(_candidate(curator, r.key, r.triplet, probs[i], f"{r.reason}: {r.detail}{said}"))
    return out


def _card(c: Candidate) -> str:
    t = c.triplet
    imgs = [("composite", Image.fromarray(t.composite)), ("background", Image.fromarray(t.background)),
            ("foreground", on_checkerboard(Image.fromarray(t.foreground, "RGBA"))),
            ("alpha", Image.fromarray(t.foreground[..., 3]))]
    cells = "".join(f'<figure><img src="{data_uri(im)}"><figcaption>{name}</figcaption></figure>' for name, im in imgs)
    opts = "".join(f'<option value="{f}">{f}</option>' for f in ("",) + FAILURES)
    key = html.escape(c.key, quote=True)
    why = f'<br><i>rejected: {html.escape(c.rejected)}</i>' if c.rejected else ""
    return (f'<div class="s" data-key="{key}"><div>{cells}</div><code>{key}</code> '
            f'P(good) <b>{c.p_good:.3f}</b>, likely failure: {html.escape(c.likely)}{why}<br>'
            f'<button class="good">good</button><button class="bad">bad</button> '
            f'failure <select>{opts}</select> <span class="state"></span></div>')


SCRIPT = """
const COLUMNS = %(columns)s, LABELS = %(labels)s, STORE = "curator-labels:" + %(title)s;
const state = JSON.parse(localStorage.getItem(STORE) || "{}");
function show(card) {
  const s = state[card.dataset.key];
  card.querySelector(".state").textContent = s ? s.label + (s.failure ? " (" + s.failure + ")" : "") : "";
  card.className = "s " + (s ? s.label : "");
  if (s) card.querySelector("select").value = s.failure;
}
function set(card, label) {
  const failure = label === LABELS[1] ? card.querySelector("select").value : "";
  state[card.dataset.key] = {label: label, failure: failure};
  localStorage.setItem(STORE, JSON.stringify(state));
  show(card);
}
const q = v => /[",\\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
document.querySelectorAll(".s").forEach(card => {
  card.querySelector(".good").onclick = () => set(card, LABELS[0]);
  card.querySelector(".bad").onclick = () => set(card, LABELS[1]);
  card.querySelector("select").onchange = () => { if (state[card.dataset.key]) set(card, LABELS[1]); };
  show(card);
});
document.getElementById("download").onclick = () => {
  const lines = [COLUMNS.join(",")].concat(Object.entries(state).map(([k, s]) => [k, s.label, s.failure].map(q).join(",")));
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([lines.join("\\n") + "\\n"], {type: "text/csv"}));
  a.download = "labels.csv";
  a.click();
};
"""


def write_review(path: Path, candidates: list[Candidate], threshold: float, title: str,
                 rejects: list[Candidate] = ()) -> None:
    """The page: ``candidates`` (accepted samples), then ``rejects`` (kept rejects, shown as small as kept)."""
    rejected = ("" if not rejects else
                f"<h2>Rejected rows kept for review: {len(rejects)} possible false rejects</h2><p>Thumbnails the run "
                f"kept of a sample of its rejects, the highest P(good) first (the run's, where the curator scored "
                f"the row; the P(good) on each card is the thumbnail's). Label one good and "
                f"<code>train-curator</code> learns from it too (it reads them from the run's rejects.parquet).</p>"
                + "".join(_card(c) for c in rejects))
    script = SCRIPT % {"columns": json.dumps(COLUMNS), "labels": json.dumps(LABELS), "title": json.dumps(title)}
    page = f"""<!doctype html><meta charset="utf-8"><title>curator review: {html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}.s{{display:inline-block;vertical-align:top;margin:6px;padding:6px;
border:2px solid #ccc;font-size:13px}}.s.good{{border-color:#2a2}}.s.bad{{border-color:#c22}}figure{{display:inline-block;
margin:0 3px;text-align:center;font-size:11px}}img{{display:block}}</style>
<h1>Curator review: {len(candidates)} samples it is least sure about</h1>
<p>Threshold {threshold:.3f}. Mark each sample good or bad (optionally the failure), then
<button id="download">download labels.csv</button> and train with
<code>curate train-curator --labels labels.csv --shards {html.escape(title)}</code>.</p>
{''.join(_card(c) for c in candidates)}
{rejected}
<script>{script}</script>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
