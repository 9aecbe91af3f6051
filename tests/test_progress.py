"""The progress tally, its estimates and the lines the terminal prints (no Ray needed: the tally is a class)."""

from __future__ import annotations

import io

import pytest

from curation.console import TerminalWatcher, progress_lines
from curation.progress import Tally, complete, estimate


def _tally() -> Tally:
    t = Tally(["ingest", "masks"], units=10)
    t.started = 1000.0
    t.add_batch("ingest", 4, 6, {"occluded": 2}, started=1000.0, seconds=1.0)  # 4 units -> 6 rows on, 2 rejected
    t.add_batch("masks", 6, 3, {"fill_smeared": 3}, started=1001.0, seconds=2.0)
    t.add_shard(accepted=3, rows=8, nbytes=1000, at=1003.0)
    return t


def test_estimate_expects_what_the_stage_before_passes_on_and_waits_for_it() -> None:
    snap = {**_tally().snapshot(), "now": 1004.0}
    ingest, masks = estimate(snap)
    assert (ingest.inputs, ingest.expected, ingest.rate) == (4, 10.0, 1.0)
    assert ingest.eta_s == 6.0  # 6 units left at 1 unit/s
    assert masks.expected == 15.0  # 10 units x 6 rows passed on per 4 units
    assert masks.rate == 2.0 and masks.eta_s == 6.0  # 9 rows left at 2/s would take 4.5 s: it waits for ingest
    assert masks.rejected_total == 3


def test_a_run_is_complete_when_every_message_is_in() -> None:
    t = _tally()
    assert not complete(t.snapshot(), ingested=8)  # 4 of 10 units
    t.add_batch("ingest", 6, 0, {}, started=1004.0, seconds=1.0)
    assert complete(t.snapshot(), ingested=8)  # every unit, masks saw what ingest passed on, the sink every row
    assert not complete(t.snapshot(), ingested=9)  # a shard's message still on its way


def test_reject_places_are_granted_per_stage_and_reason_for_the_whole_run() -> None:
    t = Tally(["masks"], units=1)
    assert t.claim("masks", "fill_smeared", 5, limit=3) == 3
    assert t.claim("masks", "fill_smeared", 5, limit=3) == 0
    assert t.claim("masks", "background_drift", 1, limit=3) == 1


def test_the_terminal_prints_each_stage_and_the_sink() -> None:
    snap = {**_tally().snapshot(), "now": 1004.0}
    lines = progress_lines(snap)
    assert lines[0] == "[0:04]  ETA 0:06" and len(lines) == 4
    assert lines[1].startswith("ingest      4/10    units  →     6 passed     2 rejected    1.00/s  ETA 0:06")
    assert lines[1].endswith("occluded 2") and "~15" in lines[2] and lines[2].endswith("fill_smeared 3")
    assert lines[3] == "sink        1 shards  3 samples of 8 rows  0.0 MB"
    out = io.StringIO()
    watcher = TerminalWatcher(out)  # not a terminal: the block is printed, at most every LOG_EVERY_S
    watcher.progress(snap)
    watcher.progress(snap)
    assert out.getvalue().count("[0:04]") == 1


@pytest.mark.parametrize("width", [60, 80, 160])
def test_the_block_fits_the_terminal_and_keeps_every_figure(width: int) -> None:
    """Every line fits; the counts, rate, ETA and every reject reason are there in full, wrapped, not cut."""
    t = _tally()
    t.add_batch("masks", 2, 0, {"effect_implausible": 1, "background_drift": 1}, started=1003.0, seconds=0.5)
    lines = progress_lines({**t.snapshot(), "now": 1004.0}, width)
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    text = " ".join(" ".join(lines).split())
    for part in (
        "ingest 4/10 units",
        "→ 6 passed",
        "1.00/s",
        "ETA 0:06",
        "occluded 2",
        "masks 8/~15 rows",
        "fill_smeared 3",
        "effect_implausible 1",
        "background_drift 1",
        "sink 1 shards",
    ):
        assert part in text, (part, lines)
    if width >= 160:
        assert len(lines) == 4  # one line per stage
    if width == 60:
        assert "…" not in text


def test_an_eta_from_the_first_completed_batch() -> None:
    """One ingest batch in: every stage has an ETA at once, a lower bound (≥) where it has no batch yet."""
    t = Tally(["ingest", "masks", "curate"], units=10)
    t.started = 1000.0
    t.add_batch("ingest", 2, 4, {}, started=1000.0, seconds=1.0)
    lines = progress_lines({**t.snapshot(), "now": 1002.0}, 80)
    assert lines[0] == "[0:02]  ETA ≥0:08"
    assert "ETA 0:08" in lines[1] and "ETA ≥0:08" in lines[2] and "ETA ≥0:08" in lines[3]


def test_a_resume_with_nothing_left_says_so() -> None:
    t = Tally(["ingest", "masks", "curate"], units=81)
    t.started = 1000.0
    t.add_batch("ingest", 40, 0, {}, started=1000.0, seconds=0.2)  # every key of every unit already done
    assert "nothing" not in progress_lines({**t.snapshot(), "now": 1001.0}, 80)[0]  # ingest is not through yet
    t.add_batch("ingest", 41, 0, {}, started=1000.5, seconds=0.2)
    lines = progress_lines({**t.snapshot(), "now": 1001.0}, 80)
    assert lines[0] == "[0:01]  nothing left to do: every key is done"
    assert lines[1].endswith("done") and all(line.endswith("nothing to do") for line in lines[2:4])
    assert "--:--" not in " ".join(lines)
    narrow = progress_lines({**t.snapshot(), "now": 1001.0}, 60)
    assert all(len(line) <= 60 and "…" not in line for line in narrow) and "nothing left to do" in narrow[0]
