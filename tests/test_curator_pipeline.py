"""The shipped curator: its card matches its weights, and stage 4 runs it inside the real Ray pipeline."""

from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq
import pytest

from curation.pipeline import run
from curation.verify import verify
from curator_model.network import DEFAULT_CHECKPOINT, CheckpointError, load_checkpoint
from tests.conftest import small_config


def test_the_shipped_checkpoint_matches_its_model_card():
    card = json.loads((DEFAULT_CHECKPOINT.parent / "model_card.json").read_text())
    data = DEFAULT_CHECKPOINT.read_bytes()
    assert card["sha256"] == hashlib.sha256(data).hexdigest() and card["size_bytes"] == len(data) < 20e6
    _, spec = load_checkpoint(DEFAULT_CHECKPOINT)
    assert spec.threshold == card["threshold"] and spec.arch == card["train_config"]["arch"]
    results = card["metrics"]["results"]
    assert {"curator", "physical_rule"} <= set(results)
    assert all({"calibration", "test"} <= set(r) and "real" in r["test"] for r in results.values())


def test_the_shipped_checkpoint_was_trained_on_the_default_fill_and_its_card_says_what_it_ships():
    """Trained on the fill a default run uses (so a default run accepts it), with every stage-2 setting, the
    label definition and the real photos' precision and yield, with their counts, in the card."""
    from curation.core.config import MasksConfig
    from curator_model.layering import Stage2Recipe, check_run

    card = json.loads((DEFAULT_CHECKPOINT.parent / "model_card.json").read_text())
    _, spec = load_checkpoint(DEFAULT_CHECKPOINT)
    assert spec.stage2 is not None and card["fill"] == spec.stage2.inpaint.backend == MasksConfig().inpaint.backend
    assert Stage2Recipe.model_validate(card["stage2"]) == spec.stage2
    check_run(spec.stage2, MasksConfig(), str(DEFAULT_CHECKPOINT), allow=False)  # a default run accepts it
    assert card["label_definition"] and card["data"]["generator_version"] and card["data"]["content_key"]
    real = card["real_precision_yield"]
    assert {"calibration", "test", "unseen"} <= set(real)
    for r in real.values():
        assert r["threshold"] == round(spec.threshold, 6) and r["shipped"] >= r["shipped_good"] and r["good"] > 0
    # the card says whether the precision aim was reached on the calibration photos, and it is true to its figures
    calibration = real["calibration"]
    assert calibration["precision"] == round(calibration["shipped_good"] / calibration["shipped"], 4)
    assert card["target_precision_met_on_calibration"] == (
        calibration["precision"] >= card["train_config"]["target_precision"]
    )


@pytest.fixture(scope="module")
def model_run(ray_session, tmp_path_factory):
    cfg = small_config(
        tmp_path_factory.mktemp("curated"),
        curate={"backend": "model", "resources": {"num_cpus": 0.25, "batch_size": 8, "concurrency": 1}},
    )
    return cfg, run(cfg)


def test_stage4_runs_the_shipped_curator_in_the_pipeline(model_run):
    cfg, result = model_run
    assert verify(result.out, cfg.verify.psnr_floor).ok
    index = pq.read_table(result.out / "index.parquet").to_pylist()
    scored = [r for r in index if r["status"] == "ok" or r["reject_stage"] == "curate"]
    assert scored and all(0 <= r["score"] <= 1 for r in scored)
    assert all(json.loads(r["meta"])["curate"]["backend"] == "model" for r in scored)
    for r in index:
        if r["reject_stage"] == "curate":
            assert r["reject_reason"] == "low_curator_score" and "P(good)" in r["reject_detail"]


def test_a_broken_checkpoint_stops_the_run_on_the_driver_before_ray(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    cfg = small_config(tmp_path / "out", curate={"backend": "model", "checkpoint": str(tmp_path / "bad.safetensors")})
    with pytest.raises(CheckpointError, match="bad.safetensors is not a readable safetensors file"):
        run(cfg)
