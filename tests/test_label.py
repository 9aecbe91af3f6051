"""The labelling loop: export a review page from shards, "edit" labels as the page would, train on them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from curation.cli import main
from curation.core.schema import new_row, set_image
from curation.sink import write_shard
from curator_model import generate
from curator_model.features import features
from curator_model.labels import COLUMNS, Label, LabelsError, read_labels, shard_samples, to_csv
from curator_model.layering import Layering, Stage2Recipe
from curator_model.network import Curator, ModelSpec, build_model, save_checkpoint
from curator_model.review import review_candidates, write_review
from curator_model.train import DataConfig, SplitSize, TrainConfig, train

TINY = ModelSpec(arch="resnet10t", model_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, input_size=32)
TINY_DATA = DataConfig(
    train=SplitSize(synthetic=1, composite=1, real_views=0),
    calibration=SplitSize(synthetic=1, composite=2, real_views=0),
    test=SplitSize(synthetic=1, composite=1, real_views=0),
    unseen=SplitSize(synthetic=0, composite=0, real_views=0),
    cache_dir=None,
    workers=1,
)

LAY = Layering(Stage2Recipe())  # a default run's stage 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder with one complete shard of real (generated) triplets, as the sink writes it."""
    out = tmp_path_factory.mktemp("run")
    rows = []
    for i, s in enumerate(generate.scene_samples(10_000_002, LAY) + generate.scene_samples(10_000_003, LAY)):
        row = new_row(
            key=f"synth-{i:06d}-0", source="synth", source_ref=f"synthetic:seed={i}:instance=0", psnr=60.0, score=0.5
        )
        for name in ("composite", "background", "foreground", "mask", "effect"):
            set_image(row, name, getattr(s.triplet, name))
        rows.append(row)
    write_shard(out / "shards", "r000-000000", rows)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "curator.safetensors"
    save_checkpoint(build_model(TINY), TINY.model_copy(update={"threshold": 0.4}), path)
    return path


def test_labels_round_trip_export_edit_train(run_dir, checkpoint, tmp_path):
    out = run_dir
    assert main(["label", "export", str(out), "--checkpoint", str(checkpoint), "--n", "4"]) == 0
    page = (out / "label_review.html").read_text()
    keys = re.findall(r'data-key="([^"]+)"', page)
    assert len(keys) == 4 and len(set(keys)) == 4
    assert page.count("data:image/png;base64,") == 4 * 4  # composite, background, foreground, alpha per sample
    assert json.dumps(COLUMNS) in page and "labels.csv" in page  # the page's CSV uses the one definition
    # what a reviewer's download contains: some good, some bad with and without a failure mode
    edited = [Label(keys[0], True), Label(keys[1], False, "ghost"), Label(keys[2], False), Label("not-in-shards", True)]
    labels = tmp_path / "labels.csv"
    labels.write_text(to_csv(edited))
    assert read_labels(labels) == edited
    cfg = TrainConfig(
        arch=TINY.arch,
        model_kwargs=TINY.model_kwargs,
        input_size=32,
        epochs=1,
        batch_size=8,
        data=TINY_DATA,
        labels=labels,
        shards=[out],
        human_ratio=0.5,
    )
    card = train(cfg, tmp_path / "ckpt")
    assert card["data"]["human"] == {"labels": str(labels), "samples": 3, "good": 1, "ratio": 0.5}
    assert (tmp_path / "ckpt" / "curator.safetensors").exists()
    saved = json.loads((tmp_path / "ckpt" / "model_card.json").read_text())
    assert saved["threshold"] == card["spec"]["threshold"] and "physical_rule" in saved["metrics"]["results"]


def test_train_curator_cli_reads_the_labels_and_says_what_is_wrong(run_dir, tmp_path, capsys):
    out = run_dir
    bad = tmp_path / "bad.csv"
    bad.write_text("key,label,failure\nsynth-000000-0,maybe,\n")
    assert main(["train-curator", "--labels", str(bad), "--shards", str(out), "--out", str(tmp_path)]) == 2
    assert "line 2: label 'maybe'" in capsys.readouterr().err
    assert main(["train-curator", "--labels", str(bad), "--out", str(tmp_path)]) == 2
    assert "--labels needs --shards" in capsys.readouterr().err


def test_read_labels_validates_and_reads_parquet(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("key,label,failure\na,bad,smudge\n")
    with pytest.raises(LabelsError, match="line 2: failure 'smudge'"):
        read_labels(path)
    path.write_text("key,verdict\na,good\n")
    with pytest.raises(LabelsError, match=r"lacks column\(s\) \['label'\]"):
        read_labels(path)
    pq = tmp_path / "l.parquet"
    pd.DataFrame({"key": ["a", "b", "a"], "label": ["good", "BAD", "bad"]}).to_parquet(pq)
    assert read_labels(pq) == [Label("a", False), Label("b", False)]  # the last label of a key wins
    with pytest.raises(LabelsError, match="does not exist"):
        read_labels(tmp_path / "none.csv")


def test_export_picks_the_samples_closest_to_the_threshold(run_dir, checkpoint):
    out = run_dir
    curator = Curator(checkpoint, "cpu")
    picked = review_candidates(curator, [out], 3, 0.4)
    p_all = curator.predict(np.stack([features(t, 32) for _, t, _ in shard_samples([out])]))[:, 0]
    assert np.allclose(sorted(abs(c.p_good - 0.4) for c in picked), np.sort(np.abs(p_all - 0.4))[:3], atol=1e-6)
    assert not any(c.real for c in picked)  # the run holds rendered scenes only


def test_export_shows_real_photo_rejects_first(tmp_path, checkpoint):
    """Real-photo samples the curator rejects come first (lowest P(good) first), whatever their distance to
    the threshold; the page says which are real and rejected, and names the likeliest failure."""
    samples = generate.scene_samples(10_000_002, LAY)[:6]
    rows = []
    for i, s in enumerate(samples):
        real = i % 2 == 1
        row = new_row(
            key=f"{'photo' if real else 'synth'}-{i:06d}-0",
            source="src",
            source_ref=f"photos/{i}.jpg" if real else f"synthetic:seed={i}:instance=0",
            psnr=60.0,
            score=0.5,
        )
        for name in ("composite", "background", "foreground", "mask", "effect"):
            set_image(row, name, getattr(s.triplet, name))
        rows.append(row)
    write_shard(tmp_path / "shards", "r000-000000", rows)
    curator = Curator(checkpoint, "cpu")
    p = {
        k: float(v)
        for k, v in zip(
            (r["key"] for r in rows),
            curator.predict(np.stack([features(s.triplet, 32) for s in samples]))[:, 0],
            strict=True,
        )
    }
    threshold = float(np.median(list(p.values()))) + 1e-6  # about half of them rejected
    picked = review_candidates(curator, [tmp_path], 6, threshold)
    real_rejects = sorted((k for k in p if k.startswith("photo") and p[k] < threshold), key=p.get)
    assert real_rejects and [c.key for c in picked[: len(real_rejects)]] == real_rejects
    assert all(c.real and c.rejected for c in picked[: len(real_rejects)])
    assert not any(c.real and c.rejected for c in picked[len(real_rejects) :])
    write_review(tmp_path / "page.html", picked, threshold, str(tmp_path))
    page = (tmp_path / "page.html").read_text()
    assert page.index(real_rejects[0]) < page.index(next(c.key for c in picked if not c.real))
    assert (
        "real photo, <b>rejected</b>" in page
        and f"likely failure: {picked[0].likely} ({picked[0].p_likely:.2f})" in page
    )


NODE_DOM = """
const cards = KEYS.map(key => {
  const el = {good: {}, bad: {}, select: {value: ""}, state: {}};
  return {dataset: {key}, className: "", querySelector: sel => el[sel.replace(".", "")]};
});
const store = {}, saved = [];
globalThis.localStorage = {getItem: k => store[k] ?? null, setItem: (k, v) => { store[k] = v; }};
globalThis.Blob = class { constructor(parts) { this.text = parts.join(""); } };
globalThis.URL = {createObjectURL: b => b};
const download = {};
globalThis.document = {
  querySelectorAll: () => cards, getElementById: () => download,
  createElement: () => ({click() { saved.push(this.href.text); }}),
};
"""
CLICKS = """
cards[0].querySelector(".good").onclick();
cards[1].querySelector("select").value = "ghost"; cards[1].querySelector(".bad").onclick();
cards[2].querySelector(".bad").onclick();
download.onclick();
process.stdout.write(saved[0]);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's JavaScript")
def test_the_review_pages_own_script_writes_a_labels_file_train_curator_reads(run_dir, checkpoint, tmp_path):
    out = run_dir
    page = tmp_path / "review.html"
    assert main(["label", "export", str(out), "--checkpoint", str(checkpoint), "--n", "3", "--html", str(page)]) == 0
    text = page.read_text()
    keys = re.findall(r'data-key="([^"]+)"', text)
    script = text[text.index("<script>") + len("<script>") : text.index("</script>")]
    js = f"const KEYS = {json.dumps(keys)};\n{NODE_DOM}\n{script}\n{CLICKS}"
    csv_text = subprocess.run(["node", "-e", js], capture_output=True, text=True, check=True, timeout=60).stdout
    (tmp_path / "labels.csv").write_text(csv_text)
    assert read_labels(tmp_path / "labels.csv") == [
        Label(keys[0], True),
        Label(keys[1], False, "ghost"),
        Label(keys[2], False),
    ]


def test_kept_rejects_show_on_the_review_page_and_their_labels_train(checkpoint, tmp_path):
    """A false reject: a row the curator rejected keeps thumbnails (report.rejects_per_reason), the review page
    shows it with its reason, and a 'good' label for its key is a human sample train-curator uses."""
    from curation.core.reasons import Reason, StageName
    from curation.core.rejects import RejectSampler
    from curation.core.schema import reject
    from curation.finalize import finalize
    from curation.layout import OutDir
    from curator_model.labels import kept_rejects

    out = tmp_path / "run"
    rows = []
    for i, s in enumerate(generate.scene_samples(10_000_004, LAY)[:3]):
        row = new_row(key=f"synth-{i:06d}-0", source="synth", source_ref="test", psnr=60.0, score=0.2)
        for name in ("composite", "background", "foreground", "mask", "effect"):
            set_image(row, name, getattr(s.triplet, name))
        rows.append(reject(row, StageName.CURATE, Reason.LOW_CURATOR_SCORE, "score 0.2 < 0.5") if i < 2 else row)
    RejectSampler(StageName.CURATE.value, per_reason=1, px=48)(rows)  # one of the two rejects keeps thumbnails
    write_shard(out / "shards", "r000-000000", rows)
    finalize(OutDir(out))
    kept = list(kept_rejects([out]))
    assert [(r.key, r.reason) for r in kept] == [("synth-000000-0", "curate/low_curator_score")]
    assert max(kept[0].triplet.composite.shape[:2]) == 48 and kept[0].triplet.foreground.shape[2] == 4

    assert main(["label", "export", str(out), "--checkpoint", str(checkpoint), "--n", "4"]) == 0
    page = (out / "label_review.html").read_text()
    assert re.findall(r'data-key="([^"]+)"', page) == ["synth-000002-0", "synth-000000-0"]
    assert (
        "possible false rejects" in page
        and "rejected: curate/low_curator_score: score 0.2 &lt; 0.5; P(good) in the run 0.200" in page
    )

    labels = tmp_path / "labels.csv"
    labels.write_text(to_csv([Label("synth-000000-0", True), Label("synth-000002-0", False)]))
    cfg = TrainConfig(
        arch=TINY.arch,
        model_kwargs=TINY.model_kwargs,
        input_size=32,
        epochs=1,
        batch_size=8,
        data=TINY_DATA,
        labels=labels,
        shards=[out],
        human_ratio=0.5,
    )
    assert train(cfg, tmp_path / "ckpt")["data"]["human"]["samples"] == 2
