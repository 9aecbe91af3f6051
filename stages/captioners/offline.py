"""The offline default: captions composed from the source label and measurements of the layers.

Needs no weights, so it runs on any machine; every word is either the source's category name or a
measurement (colour votes, position, size, brightness, surface texture, shadow type and side).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from curation.core.config import CaptionConfig
from stages.captioners.base import Captioner, Captions, Sample
from stages.captioners.describe import (
    brightness_word,
    colour_phrase,
    position_phrase,
    shadow_direction,
    shadow_phrase,
    size_word,
    texture_word,
    with_article,
)


def describe_sample(sample: Sample) -> Captions:
    """Captions for one sample from what its layers measure."""
    obj = sample.mask > 0
    eff = sample.effect > 0
    noun = sample.label.replace("_", " ").strip() or "object"
    fg_rgb, alpha = sample.foreground[..., :3], sample.foreground[..., 3]
    obj_colour = colour_phrase(fg_rgb[obj])
    thing = " ".join(w for w in (size_word(obj), obj_colour, noun) if w)
    # the surface the object stands on: background pixels away from the object and its shadow
    surround = ~cv2.dilate((obj | eff).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    region = surround if surround.any() else np.ones(obj.shape, bool)
    gray = cv2.cvtColor(sample.background, cv2.COLOR_RGB2GRAY)
    texture = texture_word(gray, region)
    surface = " ".join(
        w
        for w in (
            brightness_word(gray, region),
            texture,
            colour_phrase(sample.background[region]),
            "scene" if texture == "busy" else "surface",
        )
        if w
    )
    shadow = shadow_phrase(alpha, eff)
    if shadow:
        side = shadow_direction(obj, eff)
        shadow = f"{shadow} {side}" if side else shadow
    comp = f"{with_article(thing)} {position_phrase(obj)}" + (f" casting {shadow}" if shadow else "")
    comp += f" on {with_article(surface)}"
    fg = with_article(thing) + (f" with {shadow}" if shadow else "")
    return Captions(comp, fg, with_article(surface))


class OfflineCaptioner(Captioner):
    @classmethod
    def from_config(cls, cfg: CaptionConfig) -> OfflineCaptioner:
        return cls()

    def caption(self, samples: Sequence[Sample]) -> list[Captions]:
        return [describe_sample(s) for s in samples]

    def provenance(self) -> dict[str, Any]:
        return {"backend": "offline"}
