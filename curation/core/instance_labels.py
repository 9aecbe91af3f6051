"""The annotated instances of one photo as one label image: what stage 2 knows about a row's neighbours.

The shadows of a photo's other objects say where its light comes from (``stages/shadows/light.py``), so a row
carries its photo's annotated instances, selected or not (an occluder that selection rejected still casts its
shadow the light's way). One ``uint8`` image per photo (0: no instance, k: the k-th), the same array in every
row of the photo, so that between actors it travels once per photo like the photo itself (``schema``), and
the row's own instance is ``ann["photo_instance"]``. Where instances overlap the later one keeps the pixel;
instances beyond :data:`MAX_LABELS` are left out. A source with one instance per photo (folders, paired sets)
gives no label image: one object says nothing about the light.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: a uint8 label image holds this many instances (enough to read the light from)
MAX_LABELS = 255


def label_image(masks: Sequence[np.ndarray | None]) -> tuple[np.ndarray | None, list[int]]:
    """The label image of ``masks`` and each mask's label (0: empty, absent or beyond :data:`MAX_LABELS`); no
    image for fewer than two non-empty masks of one shape."""
    present = [(n, m) for n, m in enumerate(masks) if m is not None and m.any()]
    labels = [0] * len(masks)
    if len(present) < 2 or len({m.shape for _, m in present}) != 1:
        return None, labels
    out = np.zeros(present[0][1].shape, np.uint8)
    for k, (n, m) in enumerate(present[:MAX_LABELS], 1):
        out[m.astype(bool)] = k
        labels[n] = k
    return out, labels


def other_masks(labels: np.ndarray, own: int, limit: int) -> list[tuple[int, np.ndarray]]:
    """The labels and masks of the photo's instances other than ``own``, the ``limit`` largest (the likeliest to
    show a shadow clearly), largest first."""
    counts = np.bincount(labels.ravel(), minlength=MAX_LABELS + 1)
    ids = [int(k) for k in np.argsort(-counts, kind="stable") if k not in (0, own) and counts[k] > 0][:limit]
    return [(k, labels == k) for k in ids]
