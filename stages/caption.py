"""Stage 3, caption: three captions per sample (composite, foreground, background).

The offline backend builds them from the source label and measurements of the layers (colour names,
position, surface texture, shadow type), so every word is true without any downloaded model.
"""
from __future__ import annotations

import re

import cv2
import numpy as np

from curation.config import Resources, RunConfig
from curation.schema import Reason, Row, get_image, reject, update_meta
from curation.stage import Stage
from stages.describe import colour_name, position_phrase, shadow_phrase, texture_word

_BOILERPLATE = re.compile(r"^(the|this) (image|picture|photo)( shows| depicts| contains)?[:,]?\s*", re.I)


def clean_caption(text: str, max_chars: int) -> str:
    """Strip boilerplate openings and whitespace, cap the length at a word boundary."""
    text = _BOILERPLATE.sub("", " ".join(text.split())).strip(" .")
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0]
    return text


def offline_captions(label: str, composite: np.ndarray, background: np.ndarray, foreground: np.ndarray,
                     mask: np.ndarray, effect: np.ndarray) -> tuple[str, str, str]:
    """Captions from the label and what the layers measure."""
    obj = mask > 0
    eff = effect > 0
    noun = label.replace("_", " ") or "object"
    obj_colour = colour_name(foreground[..., :3][obj])
    surround = ~cv2.dilate((obj | eff).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    bg_colour = colour_name(background[surround]) if surround.any() else colour_name(background.reshape(-1, 3))
    gray = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY)
    surface = f"{texture_word(gray, surround)} {bg_colour} surface"
    shadow = shadow_phrase(foreground[..., 3], eff)
    with_shadow = f" casting {shadow}" if shadow else ""
    comp = f"a {obj_colour} {noun} {position_phrase(obj)}{with_shadow} on a {surface}"
    fg = f"a {obj_colour} {noun}" + (f" with {shadow}" if shadow else "")
    bg = f"an empty {surface}"
    return comp, fg, bg


class Caption(Stage):
    name = "caption"

    @staticmethod
    def resources(cfg: RunConfig) -> Resources:
        return cfg.caption.resources

    def process(self, rows: list[Row]) -> None:
        cfg = self.cfg.caption
        for row in rows:
            texts = offline_captions(
                row["label"], get_image(row, "composite"), get_image(row, "background"),
                get_image(row, "foreground"), get_image(row, "mask"), get_image(row, "effect"),
            )
            texts = tuple(clean_caption(t, cfg.max_chars) for t in texts)
            empty = [k for k, t in zip(("composite", "foreground", "background"), texts) if not t]
            if empty:
                reject(row, self.name, Reason.EMPTY_CAPTION, f"empty caption for {', '.join(empty)}")
                continue
            row["caption_composite"], row["caption_foreground"], row["caption_background"] = texts
            update_meta(row, self.name, {"backend": cfg.backend})
