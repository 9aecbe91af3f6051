"""``curate eval-layers``: one command prints every stage-2 metric; the headline is held out, in-sample figures
are named so; the bounds below pin measured values (each test's name says which)."""

from __future__ import annotations

import json

import numpy as np

from curation.cli import main
from curation.eval_layers import coarsen

#: measured held-out shadow IoU of the rule detector on the bundled DESOBAv2 targets, less a margin: a pin
#: against regressions, not a target (python -m curation.cli eval-layers prints it)
HELD_OUT_IOU_PINNED = 0.55  # measured 0.633 (n=4) at this commit


def test_eval_layers_reports_all_metrics_with_a_held_out_headline_and_pinned_measured_bounds(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert (
        main(
            [
                "eval-layers",
                "--synthetic",
                "3",
                "--size",
                "128",
                "--fill-methods",
                "telea,fsr_fast",
                "--holes-per-photo",
                "1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "headline: single-image shadow IoU on held-out real photos, DESOBAv2 (held out from the layers" in printed
    assert "in-sample (tuning photos, not a result): shadow IoU on DESOBA" in printed
    report = json.loads(out.read_text())
    assert report["desoba"]["instances"] == 3 and report["desobav2"]["instances"] == 4
    assert report["headline_heldout_shadow_iou"]["n"] == 4
    assert report["headline_heldout_shadow_iou"]["value"] >= HELD_OUT_IOU_PINNED
    assert report["desoba"]["paired"]["paired_shadow_alpha_iou"] >= 0.8
    for name in ("synthetic", "desoba"):
        for mode in ("paired", "source", "detector"):
            m = report[name][mode]
            for key in ("mask_iou", "effect_alpha_mae", "background_psnr", "recomposite_psnr", "seconds_per_sample"):
                assert key in m, (name, mode, key)
            assert m["recomposite_psnr"] >= 45
    assert report["synthetic"]["paired"]["effect_alpha_mae"] <= 0.04
    for source in ("real", "synthetic"):  # the hole benchmark, per method, real photos and synthetic apart
        for method in ("telea", "fsr_fast"):
            assert set(report["fill_benchmark"][source][method]) == {
                "psnr",
                "ssim",
                "gradient_ratio",
                "cpu_seconds_per_hole",
            }
    checks = report["quality_checks"]  # each check's share of known-good rejected and known-bad caught
    assert {"good", "smear", "drift"} <= set(checks["real"]) and {"good", "smear", "drift"} <= set(checks["synthetic"])
    assert "quality checks, held-out split" in printed and "fill benchmark, real" in printed


def test_the_cli_plugin_stays_light():
    import subprocess
    import sys

    code = "import sys, curation.eval_layers; print('cv2' in sys.modules, 'torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == [
        "False",
        "False",
    ]


def test_coarsen_simplifies_an_outline_within_tolerance():
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 < 20**2
    coarse = coarsen(disc, 2)
    assert not np.array_equal(coarse, disc)
    assert 0.85 <= (coarse & disc).sum() / (coarse | disc).sum() < 1
    assert np.array_equal(coarsen(disc, 0), disc)
