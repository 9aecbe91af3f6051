"""The learned (``exported``) fill batched for GPU actors: fixed window sizes, many windows per forward pass, the
stage's rows filled together in the real pipeline on a real local Ray, known pixels exact. A tiny model that the
test exports itself stands in for LaMa and runs on the CPU."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from curation.core.config.masks import InpaintOptions
from curation.core.inpaint import ExportedInpainter, hole_window
from curation.core.morphology import dilate
from tests.conftest import small_config


class _MeanOfKnown(torch.nn.Module):
    """Fills each window's hole with the mean colour of that window's known pixels: a result that depends on the
    window and on nothing else in the batch, so a window mixed up with another in a pass shows."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        known = 1 - mask
        mean = (image * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp(min=1)
        return image * known + mean * mask


def _export(path, batch: int | None = None, side: int | None = None) -> str:
    """Save the stand-in as a ``.pt2``: dynamic batch unless ``batch``, dynamic square side unless ``side``."""
    s = side or 64
    n = batch or 2
    dims: dict[int, torch.export.Dim] = {}
    if batch is None:
        dims[0] = torch.export.Dim("b", min=1, max=256)
    if side is None:
        sd = torch.export.Dim("s", min=16, max=2048)
        dims[2], dims[3] = sd, sd
    program = torch.export.export(
        _MeanOfKnown(), (torch.rand(n, 3, s, s), torch.ones(n, 1, s, s)), dynamic_shapes=(dims, dims)
    )
    torch.export.save(program, str(path))
    return str(path)


@pytest.fixture(scope="module")
def dynamic_model(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("fill") / "mean.pt2")


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = (
        np.linspace(0, 200, w, dtype=np.float32)[None, :, None] + np.linspace(0, 50, h, dtype=np.float32)[:, None, None]
    )
    return np.clip(ramp + rng.integers(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def _hole(h: int, w: int, y: int, x: int, side: int) -> np.ndarray:
    region = np.zeros((h, w), bool)
    region[y : y + side, x : x + side] = True
    return region


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Holes for every window size and edge: small (64), medium (128), one too large for any size (reduced), one
    at a photo's corner, one in a photo smaller than its window (mirrored), and two sharing one photo."""
    big = _photo(300, 400, 2)
    return [
        (_photo(120, 160, 0), _hole(120, 160, 40, 60, 12)),
        (_photo(200, 260, 1), _hole(200, 260, 50, 70, 50)),
        (big, _hole(300, 400, 20, 30, 200)),
        (big, _hole(300, 400, 280, 385, 15)),
        (_photo(48, 40, 3), _hole(48, 40, 10, 10, 8)),
        (_photo(130, 90, 4), _hole(130, 90, 100, 5, 10)),
    ]


def test_windows_take_the_smallest_size_that_holds_the_hole_and_its_context():
    sizes = (64, 128)
    for (image, region), want_size, reduced in zip(
        _cases(), (64, 128, 128, 64, 64, 64), (False, False, True, False, False, False), strict=True
    ):
        win = hole_window(image.shape, region, sizes, 0.5)
        assert win.size == want_size and (win.side > win.size) == reduced
        ys, xs = np.nonzero(region)
        assert win.y <= ys.min() and ys.max() < win.y + win.side and win.x <= xs.min() and xs.max() < win.x + win.side


def test_batched_fill_equals_one_by_one_and_keeps_known_pixels_exact(dynamic_model):
    fill = ExportedInpainter(dynamic_model, "cpu", (64, 128))
    assert fill.static_batch is None and fill.sizes == (64, 128)
    cases = _cases()
    together = fill.fill_many([c[0] for c in cases], [c[1] for c in cases])
    for (image, region), batched in zip(cases, together, strict=True):
        alone = fill(image, region)
        assert np.array_equal(batched.image, alone)  # a window's fill does not depend on its batch mates
        assert np.array_equal(batched.image[~region], image[~region])
        assert not np.array_equal(batched.image[region], image[region])
    per_size = {64: 4, 128: 2}  # four holes fit 64 px, two need 128: one pass each
    assert [f.window["windows_in_pass"] for f in together] == [per_size[f.window["window_px"]] for f in together]
    # the mean-colour model: the hole takes the mean of its window's known pixels
    image, region = cases[0]
    win = hole_window(image.shape, region, (64, 128), 0.5)
    crop = image[win.y : win.y + win.side, win.x : win.x + win.side].astype(float)
    known = ~region[win.y : win.y + win.side, win.x : win.x + win.side]
    assert np.abs(together[0].image[region].astype(float) - crop[known].mean(axis=0)).max() <= 1.0


def test_a_static_batch_program_is_padded_and_a_static_side_is_the_only_size(tmp_path):
    static = ExportedInpainter(_export(tmp_path / "b3.pt2", batch=3, side=96), "cpu", (64, 128))
    assert static.static_batch == 3 and static.sizes == (96,)
    cases = _cases()
    out = static.fill_many([c[0] for c in cases], [c[1] for c in cases])  # 6 windows: passes of 3 + 3
    assert [f.window["windows_in_pass"] for f in out] == [3] * 6
    for (image, region), filled in zip(cases, out, strict=True):
        assert np.array_equal(filled.image[~region], image[~region])
    with pytest.raises(ValueError, match="window_sizes"):
        InpaintOptions(backend="exported", checkpoint=tmp_path / "b3.pt2", window_sizes=[16])


def _members(tar_path) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            key, _, field = m.name.partition(".")
            if field.endswith(".png"):
                data = tar.extractfile(m)
                assert data is not None
                out.setdefault(key, {})[field[:-4]] = np.asarray(Image.open(io.BytesIO(data.read())))
    return out


def test_pipeline_fills_the_rows_of_a_batch_in_shared_passes(ray_session, dynamic_model, tmp_path):
    from curation.pipeline import run

    cfg = small_config(
        tmp_path / "out",
        masks={
            "resources": {"num_cpus": 0.5, "batch_size": 8, "concurrency": 1},
            "inpaint": {
                "backend": "exported",
                "checkpoint": dynamic_model,
                "device": "cpu",
                "window_sizes": [64, 128, 256],
            },
            "quality": {"enabled": False},  # a flat mean-colour fill is a smear by design
        },
        curate={"threshold": 0.0},  # ... and a ghost to the physical curator: what is tested here is the fill
        ray={"fusion": "off"},
    )
    cfg = cfg.model_copy(update={"sources": [cfg.sources[0].model_copy(update={"count": 12, "paired_fraction": 0.0})]})
    result = run(cfg)
    s = result.stats
    assert s["ingested"] == s["accepted"] + s["rejected"] and s["accepted"] >= 4
    index = pd.read_parquet(result.out / "index.parquet")
    fills = [json.loads(meta)["masks"]["fill"] for meta in index[index["status"] == "ok"]["meta"] if '"fill"' in meta]
    assert len(fills) == s["accepted"]  # every unpaired row was filled by the model, and says how
    assert max(f["windows_in_pass"] for f in fills) >= 2  # rows of one stage batch shared a forward pass
    assert {f["window_px"] for f in fills} <= {64, 128, 256}
    layers = {}
    for tar in (result.out / "shards").glob("*.tar"):
        layers.update(_members(tar))
    assert len(layers) == s["accepted"]
    for sample in layers.values():
        obj = sample["mask"] > 0
        background, composite = sample["background"], sample["composite"]
        assert len(np.unique(background[obj].reshape(-1, 3), axis=0)) == 1  # the model's fill, one colour
        far = ~dilate(obj, 8) & ~dilate(sample["effect"] > 0, 8)
        assert np.array_equal(background[far], composite[far])  # known pixels exact
