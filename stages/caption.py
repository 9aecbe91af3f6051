"""Stage 3, caption: three captions per sample (composite, foreground, background), written jointly.

The backend (``caption.backend``) is built once per actor: the offline default composes captions from
the source label and measurements of the layers; ``transformers`` runs a local VLM. Whatever it says is
post-processed the same way: boilerplate openings stripped, length capped, and an empty caption rejects
the row (``empty_caption``) instead of shipping a sample with nothing to condition on.
"""

from __future__ import annotations

import re

from curation.core.config import RunConfig
from curation.core.schema import CAPTION_COLUMNS, Reason, Row, StageName, reject, require_image, update_meta
from curation.core.stage import RowStage
from stages.captioners import KINDS, Sample, build_captioner, check_captioner

_BOILERPLATE = re.compile(
    r"^(?:(?:in )?(?:the|this) (?:image|picture|photo|photograph|scene)"
    r"(?: (?:shows|depicts|contains|features|displays|is of|is)[:,]?|[:,])"
    r"|this is|there (?:is|are)"
    r"|(?:an? )?(?:image|picture|photo|photograph|photography) of)(?:\s+|$)",
    re.I,
)


def clean_caption(text: str, max_chars: int) -> str:
    """Collapse whitespace, strip quotes and boilerplate openings, cap the length at a word boundary."""
    text = " ".join(text.split()).strip(" \"'`")
    while (stripped := _BOILERPLATE.sub("", text, count=1)) != text:
        text = stripped
    text = text.strip(" .,;:")
    if len(text) > max_chars:
        text = text[: max_chars + 1].rsplit(" ", 1)[0].rstrip(" ,;:")  # +1: keep a word that ends at the cap
    return text if any(ch.isalnum() for ch in text) else ""


def sample_of(row: Row) -> Sample:
    return Sample(
        label=row["label"],
        composite=require_image(row, "composite"),
        background=require_image(row, "background"),
        foreground=require_image(row, "foreground"),
        mask=require_image(row, "mask"),
        effect=require_image(row, "effect"),
    )


class Caption(RowStage):
    name = StageName.CAPTION
    reads = ("label", "composite", "background", "foreground", "mask", "effect")
    writes = CAPTION_COLUMNS

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        self.captioner = build_captioner(cfg.caption)
        self.provenance = self.captioner.provenance()

    @staticmethod
    def preflight(cfg: RunConfig) -> None:
        """Fail on the driver, in a second, when the checkpoint is missing or cannot take images."""
        check_captioner(cfg.caption)

    def process(self, rows: list[Row]) -> None:
        max_chars = self.cfg.caption.max_chars
        raw = self.captioner.caption([sample_of(row) for row in rows])
        for row, captions in zip(rows, raw, strict=True):
            texts = [clean_caption(t, max_chars) for t in captions]
            empty = [k for k, t in zip(KINDS, texts, strict=True) if not t]
            if empty:
                said = "; ".join(f"{k}: {t!r}" for k, t in zip(KINDS, captions, strict=True) if k in empty)
                reject(row, self.name, Reason.EMPTY_CAPTION, f"empty caption for {', '.join(empty)} ({said})")
                continue
            for kind, text in zip(KINDS, texts, strict=True):
                row[f"caption_{kind}"] = text
            update_meta(row, self.name, self.provenance)
