"""The pipeline writes exactly the reference output: same samples, reasons, captions, scores and decoded pixels.

``tests/fixtures/golden.json`` holds the reference digest and the releases it was made with (requirements.lock
pins them); regenerate it only for a change meant to alter the output (see tests/fixtures/golden.py).
"""

from __future__ import annotations

import json
import math

import pytest

from tests.fixtures.golden import GOLDEN, run_golden, version_drift


def _differences(want: dict, got: dict, path: str = "") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for k in sorted(set(want) | set(got)):
            if k not in got or k not in want:
                out.append(f"{path}{k}: {'missing' if k not in got else 'unexpected'}")
            else:
                out += _differences(want[k], got[k], f"{path}{k}.")
        return out
    same = want == got or (isinstance(want, float) and isinstance(got, float) and math.isnan(want) and math.isnan(got))
    return [] if same else [f"{path.rstrip('.')}: {want!r} -> {got!r}"]


@pytest.mark.parametrize("fusion", ["auto", "off"])
def test_pipeline_output_matches_the_golden_reference(ray_session, tmp_path, fusion):
    """Fused (one actor for all CPU stages) and unfused (a pool per stage, odd batch sizes, autoscaling)."""
    record = json.loads(GOLDEN.read_text())
    got = run_golden(tmp_path, fusion)
    diff = _differences(record["samples"], got)
    drift = version_drift(record["recorded_with"])
    hint = f"; {'; '.join(drift)}: install requirements.lock (make venv), or regenerate deliberately" if drift else ""
    assert not diff, f"{len(diff)} differences from {GOLDEN.name}{hint}, first: {diff[:15]}"
