"""``layered_loader``: exact epochs over workers and ranks, layer-aligned augmentation, filters, sources."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from curation.augment import Window, apply_window, draw_window
from curation.loader import decode_members, layered_loader
from devdata.layered_shards import write_layered_shards

SIZE = 32


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_layered_shards(tmp_path_factory.mktemp("loader") / "out")


def _epoch_keys(loader) -> list[str]:
    return [k for batch in loader for k in batch["key"]]


def test_each_key_once_per_epoch_across_workers_and_ranks(shards):
    loaders = [
        layered_loader(shards.out, size=SIZE, batch_size=3, num_workers=2, seed=7, rank=r, world_size=2)
        for r in range(2)
    ]
    epochs = []
    for epoch in range(2):
        per_rank = []
        for loader in loaders:
            batches = list(loader)
            assert len(batches) == len(loader)  # len() is the exact batch count of this rank
            assert all(b["composite"].shape[1:] == (3, SIZE, SIZE) for b in batches)
            per_rank.append([k for b in batches for k in b["key"]])
        keys = [k for rank_keys in per_rank for k in rank_keys]
        duplicates = [k for k, n in Counter(keys).items() if n > 1]
        assert not duplicates, f"epoch {epoch}: read twice: {duplicates}"
        assert sorted(keys) == sorted(shards.accepted), f"epoch {epoch}: missing {set(shards.accepted) - set(keys)}"
        assert abs(len(per_rank[0]) - len(per_rank[1])) <= 1  # ranks stay in step
        epochs.append(per_rank[0])
    assert epochs[0] != epochs[1], "the order must change from epoch to epoch"
    again = layered_loader(shards.out, size=SIZE, batch_size=3, num_workers=2, seed=7, rank=0, world_size=2)
    assert _epoch_keys(again) == epochs[0], "the same seed must replay the same epoch"
    again.set_epoch(1)
    assert _epoch_keys(again) == epochs[1], "set_epoch(1) must replay epoch 1"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _recomposite(batch: dict) -> torch.Tensor:
    fg, bg = batch["foreground"], batch["background"]
    return fg[:, 3:] * fg[:, :3] + (1 - fg[:, 3:]) * bg


def test_random_crops_keep_foreground_over_background_equal_to_composite(shards):
    loader = layered_loader(shards.out, size=SIZE, batch_size=4, num_workers=0, crop="random", seed=3)
    seen = 0
    for epoch in range(3):  # different crops, sizes and flips each epoch
        for batch in loader:
            re = _recomposite(batch)
            for i, key in enumerate(batch["key"]):
                value = _psnr(re[i], batch["composite"][i])
                assert value >= 35.0, f"epoch {epoch} {key}: recomposite PSNR {value:.1f} dB after the crop"
                seen += 1
            assert float(batch["foreground"].min()) >= 0 and float(batch["foreground"].max()) <= 1
    assert seen == 3 * len(shards.accepted)


def test_the_psnr_check_catches_layers_cut_apart(shards):
    """The check above can fail: the same layers with the background mirrored on its own do fail it."""
    import webdataset as wds

    sample = next(
        iter(wds.WebDataset(str(shards.out / "shards" / "r000-000000.tar"), shardshuffle=False, empty_check=False))
    )
    layers, _ = decode_members(sample)
    h, w = layers["composite"].shape[:2]
    window = draw_window(h, w, "random", np.random.default_rng(0), None)
    aligned = apply_window(layers, window, SIZE)
    mirrored = apply_window(layers, Window(window.y, window.x, window.h, window.w, not window.flip), SIZE)
    batch = {k: v[None] for k, v in aligned.items()}
    assert _psnr(_recomposite(batch)[0], aligned["composite"]) >= 35.0
    batch["background"] = mirrored["background"][None]
    assert _psnr(_recomposite(batch)[0], aligned["composite"]) < 35.0


def test_members_decode_in_their_own_modes_and_mixed_sizes_batch(shards):
    batch = next(
        iter(
            layered_loader(
                shards.out, size=SIZE, batch_size=len(shards.accepted), num_workers=0, crop="center", shuffle=False
            )
        )
    )
    assert batch["composite"].shape == batch["background"].shape == (len(shards.accepted), 3, SIZE, SIZE)
    assert batch["foreground"].shape == (len(shards.accepted), 4, SIZE, SIZE)
    assert batch["mask"].shape == batch["effect"].shape == (len(shards.accepted), 1, SIZE, SIZE)
    alpha = batch["foreground"][:, 3]
    assert float(alpha.max()) == 1.0 and float(alpha.min()) == 0.0 and bool(((alpha > 0) & (alpha < 1)).any())
    assert batch["composite"].dtype == torch.float32
    assert batch["key"] == shards.accepted  # no shuffle: the stored order
    assert set(batch["captions"][0]) == {"composite", "foreground", "background"}
    assert batch["json"][0]["key"] == batch["key"][0]


def test_filters_by_score_source_and_captions(shards):
    def keys(**filters) -> set[str]:
        return set(_epoch_keys(layered_loader(shards.out, size=16, num_workers=0, **filters)))

    assert keys(min_score=0.6) == {k for k, s in shards.scores.items() if s >= 0.6}  # an unscored sample never passes
    assert keys(sources=["photo"]) == {k for k, s in shards.sources.items() if s == "photo"}
    assert keys(sources="synth", require_captions=True) == {
        k for k, s in shards.sources.items() if s == "synth" and k not in shards.no_captions
    }
    with pytest.raises(ValueError, match="no sample that passes"):
        layered_loader(shards.out, min_score=2.0)


def test_globs_lists_and_tars_without_an_index_read_the_same(shards, tmp_path):
    tars = sorted((shards.out / "shards").glob("*.tar"))
    bare = tmp_path / "bare"
    bare.mkdir()
    for t in tars:  # no parquet beside them: the loader reads the json members instead
        shutil.copy(t, bare / t.name)
    expected = set(shards.accepted)
    for source in (
        str(shards.out / "shards" / "*.tar"),
        str(shards.out / "shards" / "r000-{000000..000003}.tar"),
        [str(t) for t in tars],
        bare,
        str(bare / "*.tar"),
    ):
        assert set(_epoch_keys(layered_loader(source, size=16, num_workers=0))) == expected, source
    # without an index the filters read the sample json
    assert set(_epoch_keys(layered_loader(bare, size=16, num_workers=0, require_captions=True, min_score=0.5))) == {
        k for k, s in shards.scores.items() if s >= 0.5 and k not in shards.no_captions
    }
    with pytest.raises(FileNotFoundError):
        layered_loader(tmp_path / "nothing-*.tar")


def test_rank_arguments_are_checked(shards):
    with pytest.raises(ValueError, match="together"):
        layered_loader(shards.out, rank=0)
    with pytest.raises(ValueError, match="rank must be"):
        layered_loader(shards.out, rank=2, world_size=2)
    with pytest.raises(ValueError, match="crop"):
        layered_loader(shards.out, crop="zoom")


def test_a_sample_missing_from_its_tar_is_an_error_not_a_short_epoch(shards, tmp_path):
    import tarfile

    src = shards.out / "shards" / "r000-000000.tar"
    dropped = shards.accepted[0]
    shutil.copy(src.with_suffix(".parquet"), tmp_path / src.with_suffix(".parquet").name)  # the index still lists it
    with tarfile.open(src) as tar_in, tarfile.open(tmp_path / src.name, "w") as tar_out:
        for info in tar_in:
            if not info.name.startswith(dropped + "."):
                tar_out.addfile(info, tar_in.extractfile(info))
    with pytest.raises(RuntimeError, match="1 of this worker's"):
        _epoch_keys(layered_loader(tmp_path / src.name, size=16, num_workers=0))
