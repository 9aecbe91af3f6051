"""The benchmark workloads: ``bench/bench.yaml`` with one synthetic source of a given size and count, or with the
photos bundled in the package at their own size.

Fixed seed, rendered on the workers (the units are scene indices), so the N-sample and 4N-sample runs
share their first N samples and every mode sees exactly the same pixels. ``overrides`` are dotted config keys
(``masks.inpaint.backend``) set on top of bench.yaml, for a run that measures something other than the defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from curation.core.config import RunConfig, parse_config
from curation.core.realdata import photo_path

BENCH_CONFIG = Path(__file__).resolve().parent / "bench.yaml"
#: the bundled photos without annotations: candidates come from the folder source's object proposals
REAL_PHOTOS = ("soba_web-shadow0573.jpg", "sam_dog.jpg", "sam_truck.jpg", "sam_groceries.jpg")


@dataclass(frozen=True)
class Workload:
    size: int  # synthetic scene side, px (real photos: 0, each at its own size up to ingest.max_side)
    units: int  # scenes (source units); each gives 1..max_objects candidate rows
    seed: int = 0
    overrides: tuple[tuple[str, str], ...] = ()  # (dotted key, YAML value) on top of bench.yaml
    real: bool = False  # the bundled real photos instead of synthetic scenes

    @property
    def label(self) -> str:
        return "real photos" if self.real else f"{self.size}px x {self.units}"

    def scaled(self, factor: int) -> Workload:
        return Workload(self.size, self.units * factor, self.seed, self.overrides, self.real)

    def config(self, out: Path, config_path: Path = BENCH_CONFIG) -> RunConfig:
        """The run config for this workload, writing into ``out``."""
        data = yaml.safe_load(config_path.read_text())
        data["run"]["out"] = str(out)
        data["sources"] = self._real_sources(out) if self.real else [self._synthetic()]
        return parse_config(data, {key: yaml.safe_load(value) for key, value in self.overrides})

    def _synthetic(self) -> dict[str, Any]:
        return {
            "type": "synthetic",
            "name": "bench",
            "count": self.units,
            "size": self.size,
            "seed": self.seed,
            "max_objects": 2,
            "paired_fraction": 0.5,
        }

    @staticmethod
    def _real_sources(out: Path) -> list[dict[str, Any]]:
        """DESOBA and DESOBAv2 (a shadow-free photo with the object still in it: the object is filled) and the
        unannotated photos (the plaza, SAM's examples; up to 1024 px: the proposals' objects are filled)."""
        listing = out.parent / f"{out.name}-photos.txt"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{photo_path(f'bundled:{name}')}\n" for name in REAL_PHOTOS))
        return [
            {"type": "paired", "name": "desoba", "root": "desoba"},
            {"type": "paired", "name": "desobav2", "root": "desobav2"},
            {"type": "folder", "name": "photos", "list_file": str(listing)},
        ]

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "overrides": [list(kv) for kv in self.overrides]})

    @classmethod
    def from_json(cls, text: str) -> Workload:
        data = json.loads(text)
        return cls(**{**data, "overrides": tuple(tuple(kv) for kv in data["overrides"])})
