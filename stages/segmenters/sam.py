"""SAM prompted by the annotation: box (+ points where the source has them), image embeddings in batches.

The model is loaded once per actor (:func:`load_sam`). A batch of prompts is grouped by image, the
distinct images go through the image encoder ``embed_batch_size`` at a time (under bf16/fp16 autocast
when configured), then each prompt runs the light prompt encoder + mask decoder on its image's embedding.
With ``multimask`` SAM returns three candidate masks; the one kept maximises predicted IoU plus
agreement with the annotation (IoU with its mask, else with its box), so an ambiguous prompt resolves
to the annotated object rather than to a part of it or to its surroundings.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from segment_anything.utils.transforms import ResizeLongestSide

from curation.core.config import MasksConfig
from curation.core.devices import resolve_device
from curation.core.morphology import bbox_of, box_iou, iou
from stages.segmenters.base import Prompt, Segmentation
from stages.segmenters.sam_loader import load_sam

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class SamSegmenter:
    def __init__(
        self,
        checkpoint: str,
        model_type: str = "vit_b",
        device: str = "auto",
        dtype: str = "float32",
        embed_batch_size: int = 4,
        multimask: bool = True,
    ):
        self.device = torch.device(resolve_device(device, "masks.sam.device"))
        self.model = load_sam(checkpoint, model_type, str(self.device))
        self.transform = ResizeLongestSide(self.model.image_encoder.img_size)
        self.dtype, self.batch, self.multimask = DTYPES[dtype], embed_batch_size, multimask
        self.name = f"sam-{model_type}"

    @classmethod
    def from_config(cls, cfg: MasksConfig) -> SamSegmenter:
        o = cfg.sam
        return cls(str(o.checkpoint), o.model_type, o.device, o.dtype, o.embed_batch_size, o.multimask)

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @torch.inference_mode()
    def embed(self, images: list[np.ndarray]) -> list[tuple[torch.Tensor, tuple[int, int]]]:
        """Image embeddings (1, 256, 64, 64) and the resized input size, ``embed_batch_size`` images per pass."""
        out: list[tuple[torch.Tensor, tuple[int, int]]] = []
        for i in range(0, len(images), self.batch):
            chunk: list[torch.Tensor] = []
            sizes: list[tuple[int, int]] = []
            for im in images[i : i + self.batch]:
                x = torch.as_tensor(self.transform.apply_image(im), device=self.device).permute(2, 0, 1)
                sizes.append((int(x.shape[-2]), int(x.shape[-1])))
                chunk.append(self.model.preprocess(x[None].float()))
            with self._autocast():
                feats = self.model.image_encoder(torch.cat(chunk)).float()
            out.extend((feats[j : j + 1], sizes[j]) for j in range(len(sizes)))
        return out

    @torch.inference_mode()
    def segment(self, prompts: list[Prompt]) -> list[Segmentation]:
        order = list(dict.fromkeys(p.image_id for p in prompts))
        first = {p.image_id: p.image for p in reversed(prompts)}
        embeddings = dict(zip(order, self.embed([first[i] for i in order]), strict=True))
        return [self._decode(p, *embeddings[p.image_id]) for p in prompts]

    def _decode(self, p: Prompt, feats: torch.Tensor, input_size: tuple[int, int]) -> Segmentation:
        if p.box is None and p.points is None:
            return Segmentation(None, 0.0)
        size = p.image.shape[:2]
        boxes = points = None
        if p.box is not None:
            x, y, w, h = p.box
            xyxy = torch.tensor([[x, y, x + w, y + h]], dtype=torch.float32, device=self.device)
            boxes = self.transform.apply_boxes_torch(xyxy, size)
        if p.points is not None:
            coords = torch.as_tensor(p.points[None, :, :2], dtype=torch.float32, device=self.device)
            labels = torch.as_tensor(p.points[None, :, 2], dtype=torch.int64, device=self.device)
            points = (self.transform.apply_coords_torch(coords, size), labels)
        sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=None)
        low_res, pred_iou = self.model.mask_decoder(
            image_embeddings=feats,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=self.multimask,
        )
        masks = self.model.postprocess_masks(low_res, input_size, size) > self.model.mask_threshold
        return choose(masks[0].cpu().numpy(), pred_iou[0].float().cpu().numpy(), p)


def choose(masks: np.ndarray, scores: np.ndarray, p: Prompt) -> Segmentation:
    """The candidate with the highest predicted IoU + agreement with the annotation (mask, else box)."""
    best, best_value = Segmentation(None, 0.0), -np.inf
    for m, s in zip(masks, scores, strict=True):
        if not m.any():
            continue
        if p.mask is not None:
            agree = iou(m, p.mask)
        elif p.box is not None and (box := bbox_of(m)) is not None:  # m is not empty: it has a box
            agree = box_iou(box, p.box)
        else:
            agree = 0.0
        if s + agree > best_value:
            best, best_value = Segmentation(m.astype(bool), float(np.clip(s, 0, 1))), s + agree
    return best
