"""The progress block as text: one or more lines per stage and the sink, each fitted to a width.

``curate run`` redraws it every second (:mod:`curation.console`) and ``curate status`` prints it from the
snapshot the run keeps in ``_work/progress.json`` (:mod:`curation.status`). Counts, rate and ETA come first
so they survive a narrow terminal; reject reasons follow, wrapped onto continuation lines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from curation.progress import StageProgress, estimate

#: the tally's latest snapshot, in the run's ``_work`` folder, for ``curate status`` in another terminal
PROGRESS_FILE = "progress.json"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def fit(parts: list[str], width: int, indent: str = "    ") -> list[str]:
    """``parts`` joined by two spaces into lines of at most ``width`` columns: a part that does not fit goes to a
    continuation line (indented), and a part wider than a whole line is cut with an ellipsis."""
    lines, line = [], ""
    for part in parts:
        if line.strip() and len(line) + 2 + len(part) > width:
            lines.append(line)
            line, part = indent, part.lstrip()
        line += ("  " if line.strip() else "") + part
    lines.append(line)
    return [x if len(x) <= width else x[: width - 1] + "…" for x in lines]


def _eta(p: StageProgress, first: bool) -> str:
    if p.expected == 0 and p.eta_s == 0:
        return "nothing to do"
    if p.expected is not None and p.inputs >= p.expected and p.eta_s == 0:
        return "done"
    return f"ETA {'≥' if p.eta_floor else ''}{_clock(p.eta_s)}"


def stage_parts(p: StageProgress, first: bool) -> list[str]:
    """``masks      16/~40   rows  →    14 passed     2 rejected    1.30/s  ETA 0:30  empty_mask 2``: the
    counts, rate and ETA first (so that they survive a narrow terminal), then each reject reason."""
    unit = "units" if first else "rows"
    expected = "?" if p.expected is None else (f"{p.expected:.0f}" if first else f"~{p.expected:.0f}")
    rate = f"{'-':>6}/s" if p.rate is None else f"{p.rate:6.2f}/s"
    reasons = [f"{r} {n}" for r, n in sorted(p.rejected.items(), key=lambda kv: -kv[1])]
    idle = p.expected == 0 and not p.inputs  # a rate means nothing here
    return [
        f"{p.stage:<7} {p.inputs:>5}/{expected:<5} {unit:<5}",
        f"→ {p.accepted:>5} passed",
        f"{p.rejected_total:>4} rejected",
        *([] if idle else [rate]),
        _eta(p, first),
        *reasons,
    ]


def stage_lines(p: StageProgress, first: bool, width: int = 1000) -> list[str]:
    return fit(stage_parts(p, first), width)


def sink_lines(sink: dict[str, Any], width: int = 1000) -> list[str]:
    return fit(
        [
            f"{'sink':<7} {sink['shards']:>5} shards",
            f"{sink['accepted']} samples of {sink['rows']} rows",
            f"{sink['bytes'] / 1e6:.1f} MB",
        ],
        width,
    )


def run_eta(stages: list[StageProgress]) -> str:
    """The whole run's ETA: the last stage's (it waits for every stage before it)."""
    if not stages:
        return ""
    first = stages[0]
    if first.inputs and first.eta_s == 0 and all(p.expected == 0 for p in stages[1:]):
        return "nothing left to do: every key is done"
    last = stages[-1]
    if last.eta_s == 0 and not last.eta_floor:
        return "done"
    return f"ETA {'≥' if last.eta_floor else ''}{_clock(last.eta_s)}"


def progress_lines(snap: dict[str, Any], width: int = 1000) -> list[str]:
    """The progress block, every line at most ``width`` columns wide (wrapped, never cut mid-figure)."""
    elapsed = snap["now"] - snap["started"]
    stages = estimate(snap)
    lines = fit([f"[{_clock(elapsed)}]", run_eta(stages)], width)
    for i, p in enumerate(stages):
        lines += stage_lines(p, i == 0, width)
    return lines + sink_lines(snap["sink"], width)


def write_snapshot(path: Path, snapshot: dict[str, Any]) -> None:
    """The tally's snapshot as ``_work/progress.json``, replaced whole (``curate status`` reads it while the
    run goes)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(snapshot))
    os.replace(tmp, path)
