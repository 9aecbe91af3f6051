"""A local image-text-to-text checkpoint (Qwen2.5-VL, Florence-2, BLIP, ...) loaded with ``transformers``.

Loaded once per actor. Everything that can be wrong with the checkpoint (missing, not a vision-language
model, no image processor, no CUDA device) is found here at construction, so a run fails at start-up with
a message that names the problem instead of rejecting every row of the first batch.

Per batch: one ``generate()`` call per caption kind. The composite and background are shown as they are;
the foreground layer is composited over a neutral backdrop first (a VLM has no notion of alpha). Prompt
style is detected at load time: processors with a chat template (Qwen2.5-VL) get a user turn with an
image entry, the others (BLIP, Florence-2) get the prompt as a plain text prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from curation.core.compositing import over
from curation.core.config.caption import CaptionConfig, TransformersCaptionConfig
from curation.core.devices import resolve_device
from stages.captioners.base import KINDS, Captioner, Captions, Sample

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class CaptionerLoadError(RuntimeError):
    """The configured checkpoint cannot caption images; the message says why and what to change."""


def resolve_checkpoint(model: str, allow_download: bool) -> str:
    """A local directory as is; a repo id from the local Hugging Face cache (downloaded only if allowed)."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CaptionerLoadError(
                f"caption.transformers.model: {path} has no config.json, so it is not a "
                "transformers checkpoint directory"
            )
        return str(path)
    if allow_download:
        return model
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(model, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError):
        raise CaptionerLoadError(
            f"caption.transformers.model: {model!r} is neither a local checkpoint directory nor a repo id in the "
            f"local Hugging Face cache ({constants.HF_HUB_CACHE}); "
            "download it first or set caption.transformers.allow_download: true"
        ) from None


def pick_device(device: str) -> torch.device:
    try:
        return torch.device(resolve_device(device, "caption.transformers.device"))
    except RuntimeError as exc:
        raise CaptionerLoadError(str(exc)) from None


def prompt_prefix_length(sequences: torch.Tensor, input_ids: torch.Tensor | None) -> int:
    """How many leading tokens of ``generate()``'s output are the prompt echoed back.

    Decoder-only models echo the prompt exactly; BLIP echoes it with its first token swapped for BOS
    and its closing [SEP] dropped. Either way the echo is the run of positions (after the first) where
    output and prompt agree, never longer than the prompt.
    """
    if input_ids is None:
        return 1 if sequences.shape[1] else 0  # the start token generate() begins from
    n = min(input_ids.shape[1], sequences.shape[1])
    agree = (sequences[:, 1:n] == input_ids[:, 1:n]).all(dim=0)
    mismatch = torch.nonzero(~agree)
    return 1 + int(mismatch[0]) if len(mismatch) else n


def inspect_checkpoint(cfg: TransformersCaptionConfig) -> str:
    """Find the checkpoint and read its config (no weights): the cheap checks a driver can run before Ray starts."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    pick_device(cfg.device)
    checkpoint = resolve_checkpoint(cfg.model, cfg.allow_download)
    try:
        config = AutoConfig.from_pretrained(
            checkpoint, local_files_only=not cfg.allow_download, trust_remote_code=cfg.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise CaptionerLoadError(f"caption.transformers.model: cannot read the config of {cfg.model}: {exc}") from None
    remote = cfg.trust_remote_code and "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
    if config.model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and not remote:
        raise CaptionerLoadError(
            f"caption.transformers.model: {cfg.model} is a {config.model_type!r} model, which cannot take images "
            "(not an image-text-to-text model); bring a vision-language checkpoint such as Qwen2.5-VL, "
            "Florence-2 or BLIP"
        )
    return checkpoint


class TransformersCaptioner(Captioner):
    @classmethod
    def from_config(cls, cfg: CaptionConfig) -> TransformersCaptioner:
        assert cfg.transformers is not None  # guaranteed by CaptionConfig's validator
        return cls(cfg.transformers)

    @classmethod
    def check(cls, cfg: CaptionConfig) -> None:
        assert cfg.transformers is not None
        inspect_checkpoint(cfg.transformers)

    def __init__(self, cfg: TransformersCaptionConfig):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.cfg = cfg
        self.checkpoint = inspect_checkpoint(cfg)
        self.device = pick_device(cfg.device)
        self.dtype = _DTYPES[cfg.dtype]
        opts = dict(local_files_only=not cfg.allow_download, trust_remote_code=cfg.trust_remote_code)
        try:
            self.processor = AutoProcessor.from_pretrained(self.checkpoint, **opts)
        except (OSError, ValueError) as exc:
            raise CaptionerLoadError(
                f"caption.transformers.model: cannot load the processor of {cfg.model}: {exc}"
            ) from None
        if getattr(self.processor, "image_processor", None) is None:
            raise CaptionerLoadError(f"caption.transformers.model: the processor of {cfg.model} has no image processor")
        self.model = AutoModelForImageTextToText.from_pretrained(self.checkpoint, dtype=self.dtype, **opts)
        # the cast: transformers wraps .to with functools.wraps, whose stub keeps Module.to's self
        cast(torch.nn.Module, self.model).to(self.device).eval()
        self.encoder_decoder = bool(getattr(self.model.config, "is_encoder_decoder", False))
        self.chat = bool(getattr(self.processor, "chat_template", None))
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None and not self.encoder_decoder:
            tokenizer.padding_side = "left"  # decoder-only: new tokens must follow every prompt directly
        self.backdrop = np.array(cfg.backdrop, np.uint8)

    def _view(self, sample: Sample, kind: str) -> np.ndarray:
        """The image the model sees for one caption kind."""
        if kind == "foreground":
            return over(sample.foreground, np.broadcast_to(self.backdrop, sample.foreground.shape[:2] + (3,)))
        return sample.composite if kind == "composite" else sample.background

    def _inputs(self, images: list[np.ndarray], prompt: str) -> Any:
        if self.chat:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return self.processor(text=[text] * len(images), images=images, padding=True, return_tensors="pt")
        if prompt:
            return self.processor(text=[prompt] * len(images), images=images, padding=True, return_tensors="pt")
        return self.processor(images=images, return_tensors="pt")

    @torch.inference_mode()
    def _generate(self, images: list[np.ndarray], prompt: str) -> list[str]:
        inputs = self._inputs(images, prompt).to(self.device, dtype=self.dtype)
        g = self.cfg.generation
        sequences = self.model.generate(
            **inputs,
            max_new_tokens=g.max_new_tokens,
            min_new_tokens=g.min_new_tokens or None,
            num_beams=g.num_beams,
            do_sample=g.do_sample,
        )
        start = 0 if self.encoder_decoder else prompt_prefix_length(sequences, inputs.get("input_ids"))
        return self.processor.batch_decode(sequences[:, start:].cpu(), skip_special_tokens=True)

    def caption(self, samples: Sequence[Sample]) -> list[Captions]:
        if not samples:
            return []
        prompts = self.cfg.prompts
        texts = {kind: self._generate([self._view(s, kind) for s in samples], getattr(prompts, kind)) for kind in KINDS}
        return [Captions(*(texts[k][i] for k in KINDS)) for i in range(len(samples))]

    def provenance(self) -> dict[str, Any]:
        return {
            "backend": "transformers",
            "model": self.cfg.model,
            "model_type": self.model.config.model_type,
            "dtype": self.cfg.dtype,
            "device": str(self.device),
            "prompt_style": "chat" if self.chat else "plain",
        }
