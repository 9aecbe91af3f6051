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
from curator_model.evaluate import calibrate, metrics
from curator_model.features import CHANNELS, features
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
TINY = ModelSpec(arch="resnet10t", model_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, input_size=32)
SEED = 10_000_001


@pytest.fixture(scope="module")
def scene():
    return generate.scene_samples(SEED)


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
    shadowless = generate.decompose(good.composite, good.composite, good.mask > 0)  # background = composite: no effect
    assert CORRUPTIONS["lost_shadow"](shadowless, np.random.default_rng(0)) is None


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, {split: generate.build_split(split, 2, 3, 1, 32, workers=1, cache_dir=cache) for split in SPLITS}


def test_generated_splits_are_deterministic_cached_and_disjoint_by_photo(splits):
    cache, arrays = splits
    train = arrays["train"]
    assert len(list(cache.glob("train-*.npz"))) == 1
    again = generate.build_split("train", 2, 3, 1, 32, workers=1, cache_dir=cache)  # from the cache
    assert np.array_equal(again.x, train.x) and train.x.shape[1:] == (len(CHANNELS), 32, 32)
    first, second = generate.scene_samples(SEED), generate.scene_samples(SEED)
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
    cut = generate.real_samples(names.index("desoba/07/target"), 0)
    assert [s.label for s in cut] == ["truncated"] and cut[0].kind == "real"
    whole = generate.real_samples(names.index("desoba/06/target"), 0)
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


def test_metrics_at_a_threshold_and_the_calibration_rule():
    y = np.array([0] * 10 + [1, 2, 3, 4, 5] * 2)
    p = np.r_[np.linspace(0.5, 1.0, 10), np.full(10, 0.2)]
    p[10] = 0.9  # one ghost scores like a good sample
    kind = np.array(["synthetic"] * 20)
    t = calibrate(p, y, kind, 0.9)
    assert t == pytest.approx(np.linspace(0.5, 1.0, 10)[1])
    m = metrics(p, y, t)
    assert (
        m["good_kept"] == 0.9 and m["recall_per_failure"]["ghost"] == 0.5 and m["recall_per_failure"]["occluded"] == 1.0
    )
    assert m["precision"] == pytest.approx(9 / 10) and 0.9 < m["roc_auc"] < 1.0
    # a second kind whose good samples score lower pulls the threshold down: each kind keeps its 90 %
    real_p, real_y = np.r_[np.linspace(0.2, 0.4, 10), 0.1], np.r_[[0] * 10, 1]
    both = calibrate(np.r_[p, real_p], np.r_[y, real_y], np.r_[kind, ["real"] * 11], 0.9)
    assert both == pytest.approx(np.linspace(0.2, 0.4, 10)[1])


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
        )

    data = {"train": arrays(40, 1), "calibration": arrays(30, 2), "test": arrays(30, 3)}
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
        *(getattr(data["test"], f) for f in ("physical", "scene", "kind")),
    )  # other test images and labels
    second = train(cfg, tmp_path / "b")
    assert second["threshold"] == first["threshold"] and second["sha256"] == first["sha256"]
    assert second["metrics"]["results"]["curator"]["test"] != first["metrics"]["results"]["curator"]["test"]
    data["calibration"] = arrays(30, 4)
    third = train(cfg, tmp_path / "c")
    assert third["threshold"] != first["threshold"]
    assert set(first["data"]["splits"]) == set(SPLITS) and first["data"]["splits"]["test"]["photos"] == list(
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
