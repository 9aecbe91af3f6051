"""The report and the label page as a browser shows them: headless Chromium at 1400 px (Debian: ``apt-get install
-y chromium``). Each page renders, every card's pictures decode, nothing is wider than the window, and no text,
bar or legend of the score plot overlaps its threshold label.

A probe script is appended to a copy of each page; Chromium runs it once the page has loaded and
``--dump-dom`` hands back what it measured. The screenshots are kept beside the pages (``*.png``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from curation.cli import main
from curation.core.data import BUNDLED
from curation.pipeline import run
from tests.conftest import small_config

WIDTH = 1400
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install -y chromium)")

PROBE = """<script>
window.addEventListener("load", () => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const meets = (a, b) => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
  const images = [...document.querySelectorAll(".card img, .s img")];
  const out = {cards: document.querySelectorAll(".card, .s").length, images: images.length,
               broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).length,
               scroll_width: document.documentElement.scrollWidth, labels: [], overlaps: []};
  document.querySelectorAll('[id^="threshold-label"]').forEach(label => {
    const lb = box(label);
    out.labels.push(label.textContent.trim());
    const svg = label.closest("svg");
    const others = [...svg.querySelectorAll("text")].filter(t => !label.contains(t))
      .concat([...svg.querySelectorAll('[id^="score-legend"]')])
      .concat([...svg.querySelectorAll("path")].filter(p => !p.closest('[id^="score-legend"]')
                                                     && /fill: ?#(3a7d44|c0392b)/.test(p.getAttribute("style") || "")));
    others.forEach(o => { if (meets(lb, box(o))) out.overlaps.push(o.outerHTML.slice(0, 80)); });
  });
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def probe(page, tmp_path) -> dict:
    """Open ``page`` at 1400 px in headless Chromium: the probe's measurements (and a screenshot beside it)."""
    copy = tmp_path / f"probed-{page.name}"
    copy.write_text(page.read_text() + PROBE)
    flags = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={WIDTH},2000",
        "--virtual-time-budget=10000",
    ]
    dom = subprocess.run(flags + ["--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=120).stdout
    subprocess.run(
        flags + [f"--screenshot={page.with_suffix('.png')}", page.as_uri()],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def pages(ray_session, tmp_path_factory):
    """A small run with the shipped curator on rendered scenes and the bundled real photos: its report and
    its label page."""
    out = tmp_path_factory.mktemp("pages")
    cfg = small_config(
        out,
        sources=[
            {"type": "synthetic", "name": "synth", "count": 8, "size": 96, "seed": 3},
            {"type": "paired", "name": "desoba", "root": str(BUNDLED / "desoba")},
        ],
        curate={"backend": "model"},
    )
    run(cfg)
    assert main(["label", "export", str(out), "--n", "8"]) == 0
    return out


def test_the_report_renders_with_its_pictures_and_an_unobstructed_threshold_label(pages, tmp_path):
    found = probe(pages / "report.html", tmp_path)
    assert found["cards"] >= 4 and found["images"] >= 4 * found["cards"] // 2 and found["broken"] == 0, found
    assert found["scroll_width"] <= WIDTH, found
    [label] = found["labels"]
    threshold = json.loads((pages / "run.json").read_text())  # the label reads as the run used it
    assert label.startswith("threshold ") and float(label.split()[1]) > 0, (label, threshold["config"]["curate"])
    assert found["overlaps"] == [], found["overlaps"]
    assert (pages / "report.png").stat().st_size > 10_000


def test_the_label_page_renders_with_its_pictures_and_true_counts(pages, tmp_path):
    found = probe(pages / "label_review.html", tmp_path)
    assert found["cards"] >= 4 and found["images"] == 4 * found["cards"] and found["broken"] == 0, found
    assert found["scroll_width"] <= WIDTH, found
    text = (pages / "label_review.html").read_text()
    real_rejects = text.count("real photo, <b>rejected</b>")
    assert (f"First the {real_rejects} real-photo" in text) if real_rejects else ("No real-photo sample" in text)
    assert (pages / "label_review.png").stat().st_size > 10_000
