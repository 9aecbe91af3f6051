"""The synthetic source: scenes rendered on the worker (:mod:`curation.core.scenes`), each object an instance.

Half of the scenes (``paired_fraction``) come with their clean background, like a paired photo set; the
rest go through the unpaired path. Deterministic from ``(seed, index)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from curation.core.config import SyntheticSourceConfig
from curation.core.scenes import render_scene
from curation.core.schema import Row, new_row
from stages.sources.base import Source, Unit, make_key


class SyntheticSource(Source):
    """Scenes rendered on the worker: the unit is just the scene index, so the driver holds nothing."""

    def __init__(self, cfg: SyntheticSourceConfig):
        self.cfg = cfg
        self.name = cfg.name

    def units(self) -> Iterator[Unit]:
        for i in range(self.cfg.count):
            yield Unit(unit_id=f"{i:06d}", ref={"index": i})

    def scene_seed(self, index: int) -> int:
        return self.cfg.seed * 1_000_003 + index

    def load(self, unit: Unit, max_pixels: int) -> list[Row]:
        index = int(unit.ref["index"])
        seed = self.scene_seed(index)
        scene = render_scene(seed, self.cfg.size, self.cfg.max_objects)
        paired = np.random.default_rng(seed + 7).random() < self.cfg.paired_fraction
        rows = []
        for j, inst in enumerate(scene.instances):
            rows.append(
                new_row(
                    key=make_key(self.name, f"{index:06d}", j),
                    source=self.name,
                    source_ref=f"synthetic:seed={seed}:instance={j}",
                    label=inst.label,
                    composite=scene.composite,
                    clean=inst.background if paired else None,
                    ann_mask=inst.mask,
                    ann_effect=inst.effect,
                    ann={
                        "bbox": list(inst.bbox),
                        "category": inst.label,
                        "image_id": index,
                        "instance_id": j,
                        "paired": bool(paired),
                        "seed": seed,
                    },
                )
            )
        return rows
