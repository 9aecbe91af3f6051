"""Stage 3 config: captioning backend, its model options and the post-processing."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from curation.core.config.base import Resources, Strict

Channel = Annotated[int, Field(ge=0, le=255)]


class CaptionPrompts(Strict):
    """What the model is asked, per caption kind.

    Chat-template models (Qwen2.5-VL) get these as the user turn; plain models (BLIP, Florence-2) get them
    as the text prefix (BLIP: ``"a picture of"``; Florence-2: a task token such as ``"<CAPTION>"``).
    """

    composite: str = "Describe this photo in one short sentence."
    foreground: str = "Describe the object in this image in a few words."
    background: str = "Describe this scene in a few words."


class GenerationOptions(Strict):
    """Decoding limits; greedy and deterministic unless the run asks otherwise."""

    max_new_tokens: int = Field(40, ge=1, le=1024)
    #: forbid end-of-sequence before this many tokens (0: the model may stop at once)
    min_new_tokens: int = Field(0, ge=0)
    num_beams: int = Field(1, ge=1)
    do_sample: bool = False

    @model_validator(mode="after")
    def _min_below_max(self) -> GenerationOptions:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError("min_new_tokens must not exceed max_new_tokens")
        return self


class TransformersCaptionConfig(Strict):
    """A local image-text-to-text checkpoint loaded with ``transformers``; batches are ``resources.batch_size``."""

    #: a checkpoint directory, or a Hugging Face repo id that is already in the local cache
    model: str = Field(min_length=1)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    #: ``auto``: CUDA when torch sees a GPU, else CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: let ``from_pretrained`` download a repo id missing from the cache (off: nothing leaves the machine)
    allow_download: bool = False
    #: run the checkpoint's own modelling code (older Florence-2 repos need it); off by default
    trust_remote_code: bool = False
    #: RGB of the neutral backdrop the foreground layer is composited over before the model sees it
    backdrop: tuple[Channel, Channel, Channel] = (128, 128, 128)
    prompts: CaptionPrompts = CaptionPrompts()
    generation: GenerationOptions = GenerationOptions()


class CaptionConfig(Strict):
    resources: Resources = Resources(num_cpus=0.25, batch_size=16, concurrency=1)
    #: ``offline``: measured captions, no weights; ``transformers``: a local VLM (the ``transformers`` section)
    backend: Literal["offline", "transformers"] = "offline"
    #: captions longer than this are cut at a word boundary
    max_chars: int = Field(200, ge=8)
    transformers: TransformersCaptionConfig | None = None

    @model_validator(mode="after")
    def _backend_has_options(self) -> CaptionConfig:
        if self.backend == "transformers" and self.transformers is None:
            raise ValueError("backend 'transformers' needs a 'transformers' section with at least 'model'")
        return self
