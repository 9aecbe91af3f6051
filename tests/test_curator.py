"""The curator: corruptions, generated splits, training, checkpoints, metrics and stage 4's model backend."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from curation.core.compositing import recomposite_psnr
from curation.core.config import ConfigError, parse_config
from curation.core.morphology import dilate
from curation.core.realdata import real_instances
from curation.core.schema import OK, REJECTED, new_row, set_image
from curator_model import generate
from curator_model.corruptions import CORRUPTIONS
from curator_model.evaluate import metrics, precision_threshold, shipped
from curator_model.features import CHANNELS, features
from curator_model.layering import Layering, Stage2Recipe
from curator_model.network import (
    CLASSES,
    FAILURES,
    CheckpointError,
    Curator,
    ModelSpec,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from curator_model.splits import PHOTO_SPLITS, SPLITS, split_of
from curator_model.train import DataConfig, TrainConfig, fit, set_loss, train

# a tiny network so that tests train in seconds; same timm code path as the shipped one
RECIPE = Stage2Recipe()  # a default run's stage 2
TINY = ModelSpec(
    arch="resnet10t", model_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, input_size=32, stage2=RECIPE
)
SEED = 10_000_001
LAY = Layering(RECIPE)


@pytest.fixture(scope="module")
def scene():
    return generate.scene_samples(SEED, LAY)


def test_every_failure_mode_recomposites_yet_differs_from_the_good_triplet(scene):
    labels = {s.label for s in scene}
    assert set(FAILURES) <= labels | {"took_background"}  # a mode may skip a sample it cannot apply to
    goods = [s.triplet for s in scene if s.label == "good"]
    for s in scene:
        t = s.triplet
        assert recomposite_psnr(t.composite, t.background, t.foreground) > 35, s.label
        if s.label != "good":
            differs = [
                g
                for g in goods
                if g.composite.shape == t.composite.shape
                and all(
                    np.array_equal(getattr(g, n), getattr(t, n))
                    for n in ("composite", "background", "foreground", "mask")
                )
            ]
            assert not differs, f"{s.label} left the triplet unchanged"


def test_corruptions_return_none_where_the_mode_does_not_apply(scene):
    good = next(s.triplet for s in scene if s.label == "good")
    shadowless = LAY.decompose(good.composite, good.composite, good.mask > 0)  # background = composite: no effect
    assert CORRUPTIONS["lost_shadow"](shadowless, np.random.default_rng(0), LAY) is None


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, {
        split: generate.build_split(split, 2, 3, 1, 32, RECIPE, workers=1, cache_dir=cache) for split in SPLITS
    }


def test_generated_splits_are_deterministic_cached_and_disjoint_by_photo(splits):
    cache, arrays = splits
    train = arrays["train"]
    again = generate.build_split("train", 2, 3, 1, 32, RECIPE, workers=1, cache_dir=cache)  # from the cache
    assert np.array_equal(again.x, train.x) and train.x.shape[1:] == (len(CHANNELS), 32, 32)
    first, second = generate.scene_samples(SEED, LAY), generate.scene_samples(SEED, LAY)
    assert [s.label for s in first] == [s.label for s in second]
    assert all(np.array_equal(a.triplet.foreground, b.triplet.foreground) for a, b in zip(first, second, strict=True))
    scenes = {s: set(a.scene) for s, a in arrays.items()}
    assert not scenes["train"] & scenes["calibration"] and not scenes["train"] & scenes["test"]
    assert not scenes["calibration"] & scenes["test"]
    assert {k for a in arrays.values() for k in a.kind} == set(generate.KINDS)
    # every real instance sits in the split of its photo, and no photo is in two splits
    photos = [p for ps in PHOTO_SPLITS.values() for p in ps]
    assert len(photos) == len(set(photos))
    for split, a in arrays.items():
        real = {s.removeprefix("real:") for s in a.scene if s.startswith("real:")}
        assert real and all(split_of(i.photo) == split for i in real_instances() if i.name in real)
    assert {"desoba/05/target", "desoba/06/target", "desoba/07/target"} <= {
        s.removeprefix("real:") for a in arrays.values() for s in a.scene
    }
    assert set(np.unique(train.y)) == set(range(len(CLASSES)))


def test_composites_use_only_their_split_photos_and_keep_clutter_off_the_target():
    from curator_model.composites import compose, cutouts

    assert all(split_of(p) == "train" for p in PHOTO_SPLITS["train"])
    assert len(cutouts("calibration")) == 3 and len(cutouts("test")) == 4  # whole instances only (07: two cut)
    for seed in range(6):
        scene = compose(np.random.default_rng(seed), "test")
        if scene is None:
            continue
        # plate = photo away from the target (a shadow's faint tail below EFFECT_MIN may move a level or two)
        changed = np.abs(scene.composite.astype(int) - scene.plate.astype(int)).max(2) > 2
        assert not (changed & ~dilate(scene.mask | scene.effect, 6)).any()


def test_real_border_cut_instances_are_truncated_samples():
    names = [i.name for i in real_instances()]
    cut = generate.real_samples(names.index("desoba/07/target"), 0, LAY)
    assert [s.label for s in cut] == ["truncated"] and cut[0].kind == "real"
    whole = generate.real_samples(names.index("desoba/06/target"), 0, LAY)
    assert whole[0].label == "good" and {s.label for s in whole[1:]} <= set(FAILURES)


def test_training_a_few_steps_lowers_the_loss(splits):
    train = splits[1]["train"]
    allowed = torch.from_numpy(np.eye(len(CLASSES), dtype=bool)[train.y])
    torch.manual_seed(0)
    net = build_model(TINY).eval()
    x = torch.from_numpy(train.x)

    def loss() -> float:  # batch statistics: a few steps are too few to settle the running ones
        with torch.inference_mode():
            return float(set_loss(net.train()(x), allowed))

    before = loss()
    losses = fit(net, train.x, allowed.numpy(), TrainConfig(epochs=8, batch_size=8, lr=3e-3, seed=0))
    assert losses[-1] < losses[0]
    assert loss() < 0.9 * before


def test_a_saved_checkpoint_reloads_to_identical_outputs(tmp_path):
    torch.manual_seed(0)
    net = build_model(TINY).eval()
    x = np.random.default_rng(0).integers(0, 256, (5, len(CHANNELS), 32, 32), dtype=np.uint8)
    spec = TINY.model_copy(update={"threshold": 0.37})
    save_checkpoint(net, spec, tmp_path / "c.safetensors")
    curator = Curator(tmp_path / "c.safetensors", "cpu")
    with torch.inference_mode():
        want = torch.softmax(net(torch.from_numpy(x)), 1).numpy()
    assert np.array_equal(curator.predict(x), want)
    assert np.allclose(curator.predict(x, batch_size=2), want, atol=1e-5)  # batching only reorders float sums
    assert curator.spec == spec


def test_a_corrupt_checkpoint_fails_with_a_clear_message(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(build_model(TINY), TINY, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file.*truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="no 'curator_spec' metadata"):
        load_checkpoint(path)
    other = TINY.model_copy(update={"model_kwargs": {"channels": [8, 16, 32, 32], "stem_width": 8}})
    save_checkpoint(build_model(TINY), other, path)  # weights of one width, spec of another
    with pytest.raises(CheckpointError, match="does not match architecture resnet10t"):
        load_checkpoint(path)


def test_pretrained_backbone_weights_load_from_a_local_file(tmp_path):
    rgb = timm.create_model("resnet10t", num_classes=1000, **TINY.model_kwargs)
    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, str(tmp_path / "rgb.safetensors"))
    net = build_model(TINY, tmp_path / "rgb.safetensors")
    got, src = net.backbone.state_dict(), rgb.state_dict()
    assert torch.equal(got["layer4.0.conv2.weight"], src["layer4.0.conv2.weight"])
    assert got["conv1.0.weight"].shape[1] == len(CHANNELS)  # 3-channel stem adapted to our channel count
    with pytest.raises(CheckpointError, match="do not exist"):
        build_model(TINY, tmp_path / "nope.safetensors")


def test_metrics_at_a_threshold():
    y = np.array([0] * 10 + [1, 2, 3, 4, 5] * 2)
    p = np.r_[np.linspace(0.5, 1.0, 10), np.full(10, 0.2)]
    p[10] = 0.9  # one ghost scores like a good sample
    t = float(np.linspace(0.5, 1.0, 10)[1])
    m = metrics(p, y, t)
    assert (
        m["good_kept"] == 0.9 and m["recall_per_failure"]["ghost"] == 0.5 and m["recall_per_failure"]["occluded"] == 1.0
    )
    assert m["precision"] == pytest.approx(9 / 10) and 0.9 < m["roc_auc"] < 1.0


def test_the_precision_rule_keeps_the_most_good_at_the_target_precision():
    # scores high to low: good, bad, good x8, bad, good, bad x3
    p = np.array([0.99, 0.95, *np.linspace(0.9, 0.6, 8), 0.55, 0.5, 0.4, 0.3, 0.2])
    good = np.array([1, 0, *[1] * 8, 0, 1, 0, 0, 0], bool)
    t, met = precision_threshold(p, good, 0.9)
    assert met and t == pytest.approx(0.6)  # 9 of 10 kept are good; one lower adds a bad one (9/11)
    t, met = precision_threshold(p, good, 0.8)
    assert met and t == pytest.approx(0.5)  # 10 of 12
    t, met = precision_threshold(p, good, 0.99)
    assert met and t == pytest.approx(0.99)  # only the top one
    t, met = precision_threshold(np.array([0.9, 0.5]), np.array([False, True]), 0.9)
    assert not met and t == pytest.approx(0.5)  # unreachable: the most precise cut, and it says so
    tie, met = precision_threshold(np.array([0.7, 0.7, 0.7, 0.1]), np.array([True, False, True, False]), 0.6)
    assert met and tie == pytest.approx(0.7)  # a threshold keeps every sample of its score: 2 of 3
    arrays = generate.Arrays(
        np.zeros((4, len(CHANNELS), 8, 8), np.uint8),
        np.array([0, 0, 1, 2]),
        np.zeros(4, np.float32),
        np.array(["real:a", "real:a", "real:b", "real:b"]),
        np.array(["real"] * 4),
        np.array([True, True, True, False]),  # stage 2's checks reject the took_background one
    )
    s = shipped(np.array([0.9, 0.2, 0.8, 0.95]), arrays, 0.5)
    assert (s["reach_stage4"], s["good"], s["shipped"], s["shipped_good"]) == (3, 2, 2, 1)
    assert s["precision"] == 0.5 and s["yield"] == 0.5 and s["shipped_bad_by_mode"] == {"ghost": 1}


def test_the_threshold_comes_from_the_calibration_split_only(tmp_path, monkeypatch):
    """Training twice with the same train and calibration data but different test data gives the same
    checkpoint and threshold; changing the calibration data moves the threshold."""
    rng = np.random.default_rng(0)

    def arrays(n: int, seed: int) -> generate.Arrays:
        r = np.random.default_rng(seed)
        return generate.Arrays(
            r.integers(0, 256, (n, len(CHANNELS), 32, 32), dtype=np.uint8),
            np.r_[np.zeros(n // 2, np.int64), r.integers(1, len(CLASSES), n - n // 2)],
            r.random(n).astype(np.float32),
            np.array([f"s{i}" for i in range(n)]),
            np.array(["composite", "real"] * (n // 2)),
            np.ones(n, bool),
        )

    data = {"train": arrays(40, 1), "calibration": arrays(30, 2), "test": arrays(30, 3), "unseen": arrays(10, 5)}
    monkeypatch.setattr(generate, "build_split", lambda split, *a, **k: data[split])
    cfg = TrainConfig(
        arch=TINY.arch,
        model_kwargs=TINY.model_kwargs,
        input_size=32,
        epochs=1,
        batch_size=8,
        data=DataConfig(cache_dir=None, workers=1),
    )
    first = train(cfg, tmp_path / "a")
    data["test"] = generate.Arrays(
        data["test"].x[::-1].copy(),
        rng.permutation(data["test"].y),
        *(getattr(data["test"], f) for f in ("physical", "scene", "kind", "stage2_ok")),
    )  # other test images and labels
    second = train(cfg, tmp_path / "b")
    assert second["threshold"] == first["threshold"] and second["sha256"] == first["sha256"]
    assert second["metrics"]["results"]["curator"]["test"] != first["metrics"]["results"]["curator"]["test"]
    data["calibration"] = arrays(30, 4)
    third = train(cfg, tmp_path / "c")
    assert third["threshold"] != first["threshold"]
    assert set(first["data"]["splits"]) == {*SPLITS, "unseen"} and first["data"]["splits"]["test"]["photos"] == list(
        PHOTO_SPLITS["test"]
    )


def _rows(scene, n=3):
    rows = []
    goods = [s for s in scene if s.label == "good"]
    for i in range(n):
        s = goods[i % len(goods)]
        row = new_row(key=f"synth-{i:06d}-0", source="synth", source_ref="test", psnr=60.0)
        for name in ("composite", "background", "foreground", "mask", "effect"):
            set_image(row, name, getattr(s.triplet, name))
        rows.append(row)
    return rows


def _cfg(tmp_path, **curate):
    return parse_config(
        {"run": {"out": str(tmp_path)}, "sources": [{"type": "synthetic", "name": "s", "count": 1}], "curate": curate}
    )


def test_stage4_model_backend_scores_batched_and_rejects_below_threshold(tmp_path, scene):
    from stages.curate import Curate

    ckpt = tmp_path / "c.safetensors"
    save_checkpoint(build_model(TINY), TINY.model_copy(update={"threshold": 0.0}), ckpt)
    rows = _rows(scene)
    set_image(rows[-1], "mask", np.zeros((7, 7), np.uint8))  # a layer of the wrong size
    stage = Curate(_cfg(tmp_path, backend="model", checkpoint=str(ckpt), device="cpu"))
    assert stage.threshold == 0.0  # the checkpoint's own threshold
    stage.process_isolated(rows)
    assert [r["status"] for r in rows] == [OK, OK, REJECTED]
    assert rows[2]["reject_reason"] == "size_mismatch"
    assert all(0 <= r["score"] <= 1 for r in rows[:2]) and rows[0]["meta"]["curate"]["backend"] == "model"
    strict = _rows(scene, 2)
    Curate(_cfg(tmp_path, backend="model", checkpoint=str(ckpt), threshold=1.0)).process_isolated(strict)
    assert {r["reject_reason"] for r in strict} == {"low_curator_score"}
    assert "most likely" in strict[0]["reject_detail"]


def test_stage4_physical_backend_rejects_a_black_fill_that_recomposites_exactly(tmp_path, scene):
    """The physical rule reads checks that can fail: the same good triplet with its fill blacked out (and its
    foreground solved again, so it still recomposites exactly) must score below the threshold."""
    from curation.core.decompose import decompose
    from stages.curate import Curate

    good = next(s.triplet for s in scene if s.label == "good")
    black = good.background.copy()
    black[good.mask > 0] = 0
    blacked = decompose(good.composite, black, good.mask > 0, 1)
    rows = _rows([generate.Sample(good, "good", "s"), generate.Sample(blacked, "good", "s")], 2)
    Curate(_cfg(tmp_path, backend="physical")).process_isolated(rows)
    assert rows[0]["status"] == OK and rows[0]["score"] > 0.5
    assert rows[1]["status"] == REJECTED and rows[1]["score"] < 0.5
    assert recomposite_psnr(blacked.composite, blacked.background, blacked.foreground) > 35


def test_stage4_config_is_strict_and_a_broken_checkpoint_stops_the_stage(tmp_path):
    from stages.curate import Curate

    with pytest.raises(ConfigError, match="curate.chekpoint"):
        _cfg(tmp_path, backend="model", chekpoint="x")
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.safetensors is not a readable safetensors file"):
        Curate(_cfg(tmp_path, backend="model", checkpoint=str(tmp_path / "bad.safetensors")))


def test_the_curator_reads_the_same_input_the_stage_builds(scene):
    t = next(s.triplet for s in scene if s.label == "truncated")
    f = features(t, 32)
    valid = f[CHANNELS.index("valid")]
    assert valid.min() == 0 and valid.max() == 255  # the cut object's crop runs past the photo's border


def _tiny_checkpoint(path, stage2):
    save_checkpoint(build_model(TINY), TINY.model_copy(update={"stage2": stage2}), path)
    return path


def test_a_run_refuses_a_checkpoint_trained_on_another_fill_unless_told(tmp_path, scene, capsys):
    """A run whose stage 2 fills (or layers) otherwise than the checkpoint's training data stops at start with one
    line, before any Ray; ``curate.allow_fill_mismatch: true`` runs it anyway; a checkpoint that records no recipe
    cannot be matched, so it is refused too."""
    import yaml

    from curation.cli import main
    from curator_model.layering import FillMismatch
    from stages.curate import Curate

    other = "telea" if RECIPE.inpaint.backend != "telea" else "navier_stokes"
    ckpt = _tiny_checkpoint(
        tmp_path / "other.safetensors",
        Stage2Recipe(inpaint=RECIPE.inpaint.model_copy(update={"backend": other}), soft_edge_px=2),
    )
    with pytest.raises(FillMismatch) as err:
        Curate.preflight(_cfg(tmp_path, backend="model", checkpoint=str(ckpt)))
    message = str(err.value)
    assert "\n" not in message and "allow_fill_mismatch" in message
    assert f"masks.inpaint.backend '{other}' (run: '{RECIPE.inpaint.backend}')" in message
    assert "masks.soft_edge_px 2 (run: 1)" in message
    with pytest.raises(FillMismatch):  # an actor refuses it too (a cluster run skips the driver's preflight)
        Curate(_cfg(tmp_path, backend="model", checkpoint=str(ckpt), device="cpu"))
    # the run's own stage 2 set to the checkpoint's recipe: accepted
    same = _cfg(tmp_path, backend="model", checkpoint=str(ckpt))
    fill = RECIPE.inpaint.model_copy(update={"backend": other})
    same = same.model_copy(update={"masks": same.masks.model_copy(update={"inpaint": fill, "soft_edge_px": 2})})
    Curate.preflight(same)
    # told otherwise: it runs and scores
    allowed = Curate(_cfg(tmp_path, backend="model", checkpoint=str(ckpt), device="cpu", allow_fill_mismatch=True))
    rows = _rows(scene, 2)
    allowed.process_isolated(rows)
    assert all(0 <= r["score"] <= 1 for r in rows)
    unknown = _tiny_checkpoint(tmp_path / "unknown.safetensors", None)
    with pytest.raises(FillMismatch, match="records no stage-2 recipe"):
        Curate.preflight(_cfg(tmp_path, backend="model", checkpoint=str(unknown)))
    # the command line: one line on stderr, exit 2, before Ray starts, no OUT left behind
    config = tmp_path / "run.yaml"
    out = tmp_path / "out"
    config.write_text(
        yaml.safe_dump(
            {
                "sources": [{"type": "synthetic", "name": "s", "count": 1}],
                "curate": {"backend": "model", "checkpoint": str(ckpt)},
            }
        )
    )
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("curate run: curator checkpoint") and f"'{other}'" in lines[0]
    assert not out.exists()
