"""Where the real photos bundled with the package live (licences: curation/data/real/README.md)."""

from __future__ import annotations

from pathlib import Path

#: real photos shipped with the package: SAM / SOBA example photos and DESOBA samples with ground truth
BUNDLED = Path(__file__).resolve().parents[1] / "data" / "real"
#: DESOBA samples: composite, shadow-free photo, object / shadow / other-object masks per folder
DESOBA = BUNDLED / "desoba"
#: DESOBAv2 samples in the same layout (570 px, JPEG): held out from every tuning and threshold choice
DESOBAV2 = BUNDLED / "desobav2"
