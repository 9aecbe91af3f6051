"""Stage 3 offline path: post-processing, the measured vocabulary, the offline captioner, the config."""

from __future__ import annotations

import numpy as np
import pytest

from curation.core.config import ConfigError, parse_config
from curation.core.schema import OK, new_row
from stages.caption import Caption, clean_caption
from stages.captioners import Sample
from stages.captioners.describe import colour_names, shadow_direction, size_word, with_article
from stages.captioners.offline import describe_sample
from tests.conftest import small_config


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("The image shows a dog on a beach.", "a dog on a beach"),
        ("In this image, a cat sleeps", "a cat sleeps"),
        ("a picture of a red box", "a red box"),
        ('  "This is  a   red box." ', "a red box"),
        ("There are two dogs", "two dogs"),
        ("the picture frame on the wall", "the picture frame on the wall"),
        ("The image shows", ""),
        ("... !", ""),
    ],
)
def test_clean_caption_strips_boilerplate(raw, expected):
    assert clean_caption(raw, 200) == expected


def test_clean_caption_caps_at_a_word_boundary():
    text = clean_caption("a dog " * 50, 40)
    assert len(text) <= 40 and ("a dog " * 50).startswith(text + " ")
    assert clean_caption("a red box on the floor", 14) == "a red box on"  # the cut lands right after a word


def test_colour_votes_name_both_halves_of_a_two_colour_region():
    red, white = np.array([200, 30, 30], np.uint8), np.array([240, 240, 240], np.uint8)
    pixels = np.concatenate([np.tile(red, (600, 1)), np.tile(white, (400, 1))])
    assert colour_names(pixels) == ["red", "white"]
    assert colour_names(pixels[:700]) == ["red"]  # white is 14 %: too little to name
    grey, blue = np.array([128, 128, 128], np.uint8), np.array([40, 80, 200], np.uint8)
    three = np.concatenate([np.tile(red, (340, 1)), np.tile(grey, (330, 1)), np.tile(blue, (330, 1))])
    assert colour_names(three) == ["multicoloured"]
    mostly = np.concatenate([np.tile(red, (450, 1)), np.tile(grey, (400, 1)), np.tile(blue, (150, 1))])
    assert colour_names(mostly) == ["red", "grey"]
    assert colour_names(
        np.concatenate(
            [np.tile(red, (450, 1)), np.tile(grey, (150, 1)), np.tile(blue, (150, 1)), np.tile(white, (250, 1))]
        )
    ) == ["red", "white"]  # the rest is scattered


def test_shadow_direction_and_size_are_measured():
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:50] = True
    right = np.zeros_like(mask)
    right[50:60, 50:80] = True
    assert shadow_direction(mask, right) == "to its right"
    below = np.zeros_like(mask)
    below[60:80, 40:50] = True
    assert shadow_direction(mask, below) == "below it"
    assert shadow_direction(mask, np.zeros_like(mask)) == ""
    assert size_word(mask) == ""
    tiny = np.zeros_like(mask)
    tiny[10:12, 10:12] = True
    assert size_word(tiny) == "small"
    assert with_article("orange box") == "an orange box" and with_article("red box") == "a red box"


def _scene() -> Sample:
    """A red box on a plain beige floor, its hard shadow to its right."""
    h = w = 128
    bg = np.full((h, w, 3), (215, 195, 160), np.uint8)
    mask = np.zeros((h, w), bool)
    mask[50:80, 20:45] = True
    effect = np.zeros((h, w), bool)
    effect[65:80, 45:90] = True
    fg = np.zeros((h, w, 4), np.uint8)
    fg[mask] = (200, 30, 30, 255)
    fg[effect, 3] = 140  # black shadow layer, alpha = 1 − s with s ≈ 0.45
    comp = bg.copy()
    comp[effect] = (bg[effect] * (1 - 140 / 255)).astype(np.uint8)
    comp[mask] = (200, 30, 30)
    return Sample("box", comp, bg, fg, mask, effect)


def test_offline_captions_say_what_the_layers_measure():
    comp, fg, bg = describe_sample(_scene())
    assert comp == "a red box on the left casting a hard shadow to its right on a plain beige surface"
    assert fg == "a red box with a hard shadow to its right"
    assert bg == "a plain beige surface"


def test_stage_writes_captions_and_provenance(tmp_path):
    s = _scene()
    row = new_row(
        "synth-000000-0",
        "synth",
        "x",
        label=s.label,
        composite=s.composite,
        background=s.background,
        foreground=s.foreground,
        mask=s.mask.astype(np.uint8) * 255,
        effect=s.effect.astype(np.uint8) * 255,
    )
    stage = Caption(small_config(tmp_path))
    stage.process([row])
    assert row["status"] == OK
    assert row["caption_foreground"] == "a red box with a hard shadow to its right"
    assert row["meta"]["caption"]["backend"] == "offline"


def test_unlabelled_object_is_called_an_object_and_length_is_capped(tmp_path):
    s = _scene()
    row = new_row(
        "k",
        "desoba",
        "x",
        label="",
        composite=s.composite,
        background=s.background,
        foreground=s.foreground,
        mask=s.mask,
        effect=s.effect,
    )
    Caption(small_config(tmp_path, caption={"max_chars": 24})).process([row])
    assert row["status"] == OK
    assert row["caption_composite"] == "a red object on the left"
    assert row["caption_foreground"] == "a red object with a hard"


def test_config_is_strict_and_transformers_needs_its_section(tmp_path):
    with pytest.raises(ConfigError, match="caption"):
        small_config(tmp_path, caption={"backend": "transformers"})
    with pytest.raises(ConfigError, match="caption.transformers.generation.max_tokens"):
        small_config(
            tmp_path,
            caption={"backend": "transformers", "transformers": {"model": "m", "generation": {"max_tokens": 5}}},
        )
    with pytest.raises(ConfigError, match="min_new_tokens"):
        small_config(
            tmp_path,
            caption={
                "backend": "transformers",
                "transformers": {"model": "m", "generation": {"min_new_tokens": 9, "max_new_tokens": 4}},
            },
        )
    with pytest.raises(ConfigError, match="dtype"):
        small_config(tmp_path, caption={"backend": "transformers", "transformers": {"model": "m", "dtype": "int8"}})
    cfg = parse_config(
        {
            "sources": [{"type": "synthetic"}],
            "caption": {"backend": "transformers", "transformers": {"model": "/m", "dtype": "bfloat16"}},
        }
    )
    assert cfg.caption.transformers.generation.num_beams == 1 and not cfg.caption.transformers.generation.do_sample
