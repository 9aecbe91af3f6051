"""The labelling loop's review page: real-photo rejects first, then the samples the curator is least sure
about, then the rejects the run kept thumbnails of (possible false rejects); one self-contained HTML file.

Each card shows the composite, background, foreground on a checkerboard (so shadow alpha is visible)
and the alpha itself, with the curator's P(good) and its guess of the failure. Good/bad buttons (and an
optional failure mode) are kept in the browser; "download labels.csv" saves them in the format
:mod:`curator_model.labels` defines, which ``curate train-curator --labels`` reads back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from curation.core.htmlescape import attr, script_json, text
from curation.core.preview import data_uri, on_checkerboard
from curator_model.features import Triplet, features
from curator_model.labels import COLUMNS, LABELS, kept_rejects, shard_samples
from curator_model.network import FAILURES, Curator


@dataclass
class Candidate:
    key: str
    triplet: Triplet
    p_good: float
    likely: str  # the likeliest failure mode
    p_likely: float  # its probability
    real: bool  # from a real photo (not a rendered scene)
    rejected: bool  # P(good) below the threshold
    kept: str = ""  # for a reject the run kept thumbnails of: stage/reason and detail


def is_real(info: dict) -> bool:
    """A sample of a real photo: every source but the synthetic one (whose refs start with ``synthetic:``)."""
    return not str(info.get("source_ref", "")).startswith("synthetic:")


def review_candidates(curator: Curator, runs: list[Path], n: int, threshold: float) -> list[Candidate]:
    """What a person should look at first, ``n`` samples: the real-photo samples the curator rejects (the
    ones it most likely gets wrong, since it learned from generated labels; lowest P(good) first), then
    the samples whose P(good) lies closest to the threshold (the most informative to label)."""
    keys, triplets, feats, real = [], [], [], []
    for key, t, info in shard_samples(runs):
        keys.append(key)
        triplets.append(t)
        feats.append(features(t, curator.spec.input_size))
        real.append(is_real(info))
    if not keys:
        return []
    probs = curator.predict(np.stack(feats))
    p_good, is_real_photo = probs[:, 0], np.array(real)
    rejected_real = np.flatnonzero(is_real_photo & (p_good < threshold))
    rest = np.setdiff1d(np.arange(len(keys)), rejected_real)
    order = np.r_[
        rejected_real[np.argsort(p_good[rejected_real], kind="stable")],
        rest[np.argsort(np.abs(p_good[rest] - threshold), kind="stable")],
    ][:n]
    out = []
    for i in order:
        k = 1 + int(np.argmax(probs[i, 1:]))
        out.append(
            Candidate(
                keys[i],
                triplets[i],
                float(p_good[i]),
                curator.spec.classes[k],
                float(probs[i, k]),
                bool(is_real_photo[i]),
                bool(p_good[i] < threshold),
            )
        )
    return out


def false_reject_candidates(curator: Curator, runs: list[Path], n: int) -> list[Candidate]:
    """Up to ``n`` of the rejects the runs kept thumbnails of, the likeliest false rejects first: the highest
    P(good), the one the run gave the full-size layers where it scored them (the curator sees a thumbnail
    differently), else the thumbnail's."""
    kept = list(kept_rejects(runs))
    if not kept:
        return []
    probs = curator.predict(np.stack([features(r.triplet, curator.spec.input_size) for r in kept]))
    run_p = np.array([probs[i, 0] if r.score is None else r.score for i, r in enumerate(kept)])
    out = []
    for i in np.argsort(-run_p, kind="stable")[:n]:
        r, k = kept[i], 1 + int(np.argmax(probs[i, 1:]))
        said = "" if r.score is None else f"; P(good) in the run {r.score:.3f}"
        out.append(
            Candidate(
                r.key,
                r.triplet,
                float(probs[i, 0]),
                curator.spec.classes[k],
                float(probs[i, k]),
                False,
                True,
                f"{r.reason}: {r.detail}{said}",
            )
        )
    return out


def _card(c: Candidate) -> str:
    t = c.triplet
    imgs = [
        ("composite", Image.fromarray(t.composite)),
        ("background", Image.fromarray(t.background)),
        ("foreground", on_checkerboard(Image.fromarray(t.foreground, "RGBA"))),
        ("alpha", Image.fromarray(t.foreground[..., 3])),
    ]
    cells = "".join(
        f'<figure><img src="{data_uri(im)}"><figcaption>{text(name)}</figcaption></figure>' for name, im in imgs
    )
    opts = "".join(f'<option value="{attr(f)}">{text(f)}</option>' for f in ("",) + FAILURES)
    key = attr(c.key)
    why = f"<br><i>rejected: {text(c.kept)}</i>" if c.kept else ""
    return (
        f'<div class="s" data-key="{key}"><div>{cells}</div><code>{key}</code> '
        f"{'real photo, ' if c.real else ''}{'<b>rejected</b>, ' if c.rejected else ''}"
        f"P(good) <b>{c.p_good:.3f}</b>, likely failure: {text(c.likely)} ({c.p_likely:.2f}){why}<br>"
        f'<button class="good">good</button><button class="bad">bad</button> '
        f'failure <select>{opts}</select> <span class="state"></span></div>'
    )


def _order(candidates: list[Candidate]) -> str:
    """What the page lists, in order, with the true counts (a part with nothing in it is said to be empty)."""
    real = sum(c.real and c.rejected for c in candidates)
    rest = len(candidates) - real
    first = (
        f"First the {real} real-photo sample{'' if real == 1 else 's'} the curator rejects (it learned from "
        "generated labels: these are where it is most likely wrong), then"
        if real
        else "No real-photo sample falls below the threshold; here are"
    )
    return f"{first} the {rest} sample{'' if rest == 1 else 's'} it is least sure about."


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
  const lines = [COLUMNS.join(",")].concat(Object.entries(state).map(([k, s]) => [k, s.label,
  s.failure].map(q).join(",")));
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([lines.join("\\n") + "\\n"], {type: "text/csv"}));
  a.download = "labels.csv";
  a.click();
};
"""


def write_review(
    path: Path, candidates: list[Candidate], threshold: float, title: str, rejects: Sequence[Candidate] = ()
) -> None:
    """The page: ``candidates`` (from the shards), then ``rejects`` (kept rejects, shown as small as kept)."""
    rejected = (
        ""
        if not rejects
        else f"<h2>Rejected rows kept for review: {len(rejects)} possible false rejects</h2><p>Thumbnails the run "
        f"kept of a sample of its rejects, the highest P(good) first (the run's, where the curator scored "
        f"the row; the P(good) on each card is the thumbnail's). Label one good and "
        f"<code>train-curator</code> learns from it too (it reads them from the run's rejects.parquet).</p>"
        + "".join(_card(c) for c in rejects)
    )
    script = SCRIPT % {"columns": script_json(COLUMNS), "labels": script_json(LABELS), "title": script_json(title)}
    page = f"""<!doctype html><meta charset="utf-8"><title>curator review: {text(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}.s{{display:inline-block;vertical-align:top;margin:6px;padding:6px;
border:2px solid #ccc;font-size:13px}}.s.good{{border-color:#2a2}}.s.bad{{border-color:#c22}}
figure{{display:inline-block;
margin:0 3px;text-align:center;font-size:11px}}img{{display:block}}</style>
<h1>Curator review: {len(candidates)} samples</h1>
<p>{_order(candidates)}
 Threshold {threshold:.6g}. Mark each sample good or bad (optionally the failure), then
<button id="download">download labels.csv</button> and train with
<code>curate train-curator --labels labels.csv --shards {text(title)}</code>.</p>
{"".join(_card(c) for c in candidates)}
{rejected}
<script>{script}</script>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
