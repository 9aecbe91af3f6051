"""The Prometheus alerting rules (manifests/prometheus/curation-rules.yml): valid for ``promtool`` (Debian:
``apt-get install -y prometheus``), each alert firing on the series it is for and quiet on a healthy run
(tests/fixtures/curation-rules.test.yml), and asking only for metrics the pipeline exports."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from curation.core import metrics
from tests.conftest import REPO

RULES = REPO / "manifests" / "prometheus" / "curation-rules.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="no promtool on this machine (apt-get install -y prometheus)"
)


@needs_promtool
def test_promtool_accepts_the_rules():
    done = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_each_alert_fires_on_its_case_and_not_on_a_healthy_run():
    fixtures = REPO / "tests" / "fixtures"
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "curation-rules.test.yml"], cwd=fixtures, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_ask_for_exported_metrics_only():
    used = {re.sub(r"_(bucket|count|sum)$", "", n) for n in re.findall(r"ray_(curation_\w+)", RULES.read_text())}
    assert used and used <= set(metrics.NAMES)
