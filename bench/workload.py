"""The benchmark workload: ``bench/bench.yaml`` with one synthetic source of a given size and count.

Fixed seed, rendered on the workers (the units are scene indices), so the N-sample and 4N-sample runs
share their first N samples and every mode sees exactly the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from curation.core.config import RunConfig, parse_config

BENCH_CONFIG = Path(__file__).resolve().parent / "bench.yaml"


@dataclass(frozen=True)
class Workload:
    size: int  # synthetic scene side, px
    units: int  # scenes (source units); each gives 1..max_objects candidate rows
    seed: int = 0

    @property
    def label(self) -> str:
        return f"{self.size}px x {self.units}"

    def config(self, out: Path, config_path: Path = BENCH_CONFIG) -> RunConfig:
        """The run config for this workload, writing into ``out``."""
        data = yaml.safe_load(config_path.read_text())
        data["run"]["out"] = str(out)
        data["sources"] = [
            {
                "type": "synthetic",
                "name": "bench",
                "count": self.units,
                "size": self.size,
                "seed": self.seed,
                "max_objects": 2,
                "paired_fraction": 0.5,
            }
        ]
        return parse_config(data)
