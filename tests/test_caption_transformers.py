"""Stage 3 with the transformers backend, through its real loading path, on tiny VLMs the tests build.

Both prompt styles and both architectures: plain-prompt BLIP (decoder echoes the prompt) and Florence-2
(encoder-decoder), and a chat-template Qwen2-VL. Their words are random, their length
is not (see devdata/tiny_vlm.py): with ``min_new_tokens = max_new_tokens = n`` every caption is
exactly n words; with ``min_new_tokens: 0`` the BLIP's captions are empty.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in this module may reach the network

import cv2
import numpy as np
import pytest
import torch
import webdataset as wds

from curation.core.config import CaptionConfig
from curation.core.schema import REJECTED, new_row
from curation.pipeline import run
from curation.verify import verify
from devdata.tiny_vlm import build_tiny_blip, build_tiny_florence2, build_tiny_qwen2_vl
from stages.caption import Caption
from stages.captioners import Sample, build_captioner
from stages.captioners.transformers_vlm import CaptionerLoadError
from tests.conftest import small_config

STYLE = {"blip": "plain", "florence2": "plain", "qwen2_vl": "chat"}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """As in a Ray actor (one OpenMP thread): tiny models on a shared CPU are faster without thread spinning."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    return str(build_tiny_blip(tmp_path_factory.mktemp("tiny-blip")))


@pytest.fixture(scope="module", params=sorted(STYLE))
def tiny_vlm(request, tmp_path_factory):
    """Each tiny model in turn: (model type, checkpoint directory)."""
    build = {"blip": build_tiny_blip, "florence2": build_tiny_florence2, "qwen2_vl": build_tiny_qwen2_vl}[request.param]
    return request.param, str(build(tmp_path_factory.mktemp(request.param)))


def caption_section(model: str, **options) -> dict:
    generation = options.pop("generation", {"min_new_tokens": 4, "max_new_tokens": 4})
    return {
        "backend": "transformers",
        "resources": {"batch_size": 4},
        "transformers": {"model": model, "generation": generation, **options},
    }


def captioner(model: str, **options):
    return build_captioner(CaptionConfig.model_validate(caption_section(model, **options)))


def blocks(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """A random 4×4 mosaic: unlike pixel noise, it differs between images at every model's patch scale."""
    return cv2.resize(rng.integers(0, 256, (4, 4, channels), np.uint8), (64, size), interpolation=cv2.INTER_NEAREST)


def random_sample(seed: int, opaque: bool = False, size: int = 64) -> Sample:
    rng = np.random.default_rng(seed)
    comp = blocks(rng, size, 3)
    alpha = np.full((size, 64), 255, np.uint8) if opaque else blocks(rng, size, 1)
    fg = np.dstack([comp, alpha])
    mask = alpha > 200
    return Sample("box", comp, comp if opaque else blocks(rng, size, 3), fg, mask, ~mask)


def test_loads_through_auto_classes_and_records_provenance(tiny_vlm):
    kind, path = tiny_vlm
    c = captioner(path)
    assert c.provenance() == {
        "backend": "transformers",
        "model": path,
        "model_type": kind,
        "dtype": "float32",
        "device": "cpu",
        "prompt_style": STYLE[kind],
    }
    caps = c.caption([random_sample(0)])
    assert all(len(text.split()) == 4 for text in caps[0])


def test_a_batch_captions_like_one_sample_at_a_time(tiny_vlm):
    c = captioner(tiny_vlm[1])
    samples = [random_sample(i, size=48 + 16 * i) for i in range(4)]  # sizes differ: Qwen pads the prompts
    batched = c.caption(samples)
    assert batched == [c.caption([s])[0] for s in samples]
    assert len(set(batched)) > 1  # a kind has one prompt: differing captions come from the images


def test_each_caption_kind_is_asked_with_its_own_prompt(tiny_vlm):
    # the three views of an opaque sample are one image, so a caption depends only on its prompt
    p1, p2, p3 = "a picture of", "the dog on the beach", "red"
    samples = [random_sample(i, opaque=True) for i in range(3)]
    a = captioner(tiny_vlm[1], prompts={"composite": p1, "foreground": p2, "background": p3}).caption(samples)
    b = captioner(tiny_vlm[1], prompts={"composite": p2, "foreground": p3, "background": p1}).caption(samples)
    assert [x.composite for x in b] == [x.foreground for x in a]
    assert [x.foreground for x in b] == [x.background for x in a]
    assert [x.background for x in b] == [x.composite for x in a]
    # the check above can fail: some sample tells every pair of prompts apart
    assert all(any(x[i] != x[j] for x in a) for i, j in ((0, 1), (1, 2), (0, 2)))


def test_foreground_is_shown_over_the_configured_backdrop(tiny_vlm):
    samples = [random_sample(i) for i in range(3)]
    grey = captioner(tiny_vlm[1]).caption(samples)
    blue = captioner(tiny_vlm[1], backdrop=(0, 0, 255)).caption(samples)
    assert [x.composite for x in grey] == [x.composite for x in blue]
    assert [x.foreground for x in grey] != [x.foreground for x in blue]


def test_dtype_from_the_config(tiny_vlm):
    c = captioner(tiny_vlm[1], dtype="bfloat16")
    assert next(c.model.parameters()).dtype == torch.bfloat16
    assert all(len(text.split()) == 4 for text in c.caption([random_sample(1)])[0])


def test_empty_generation_rejects_the_row(tiny_blip, tmp_path):
    s = random_sample(2)
    row = new_row(
        "k",
        "synth",
        "x",
        label=s.label,
        composite=s.composite,
        background=s.background,
        foreground=s.foreground,
        mask=s.mask,
        effect=s.effect,
    )
    section = caption_section(tiny_blip, generation={"min_new_tokens": 0, "max_new_tokens": 8})
    Caption(small_config(tmp_path, caption=section)).process([row])
    assert row["status"] == REJECTED and row["reject_reason"] == "empty_caption"
    assert "composite, foreground, background" in row["reject_detail"]


def test_missing_checkpoint_fails_at_start_up(tmp_path):
    cfg = small_config(tmp_path, caption=caption_section(str(tmp_path / "no-such-model")))
    for start in (Caption, Caption.preflight):  # in the actor, and on the driver before Ray starts
        with pytest.raises(CaptionerLoadError, match="neither a local checkpoint directory nor a repo id"):
            start(cfg)
    with pytest.raises(CaptionerLoadError, match="in the local Hugging Face cache"):
        captioner("no-such-org/no-such-vlm")
    with pytest.raises(CaptionerLoadError, match="no config.json"):
        captioner(str(tmp_path))


def test_a_model_that_cannot_take_images_fails_at_start_up(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64, n_positions=32)).save_pretrained(tmp_path)
    cfg = small_config(tmp_path, caption=caption_section(str(tmp_path)))
    for start in (Caption, Caption.preflight):
        with pytest.raises(CaptionerLoadError, match="'gpt2' model, which cannot take images"):
            start(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_fails_at_start_up(tiny_blip):
    with pytest.raises(CaptionerLoadError, match="no CUDA device"):
        captioner(tiny_blip, device="cuda")


def test_pipeline_writes_model_captions_into_the_shard_json(ray_session, tiny_blip, tmp_path):
    cfg = small_config(
        tmp_path / "out",
        caption=caption_section(tiny_blip, generation={"min_new_tokens": 3, "max_new_tokens": 6}),
        sources=[{"type": "synthetic", "name": "synth", "count": 4, "size": 96, "seed": 3}],
    )
    result = run(cfg)
    assert result.stats["accepted"] > 0
    assert verify(result.out, cfg.verify.psnr_floor).ok
    n = 0
    for sample in wds.WebDataset(sorted(str(p) for p in (result.out / "shards").glob("*.tar")), shardshuffle=False):
        meta = json.loads(sample["json"])
        assert all(len(meta["captions"][k].split()) == 3 for k in ("composite", "foreground", "background"))
        assert json.loads(meta["meta"])["caption"]["model_type"] == "blip"  # meta is JSON text: one schema for all
        n += 1
    assert n == result.stats["accepted"]
