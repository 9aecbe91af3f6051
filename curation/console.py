"""What ``curate run`` prints: where to watch the run, one progress line per stage, a summary at the end.

On a terminal the progress lines are redrawn in place every second; in a log (stdout not a terminal) the
block is printed every ``LOG_EVERY_S`` seconds. Ray's own log lines stay in its log files unless
``--verbose`` (see :func:`curation.pipeline.init_ray`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TextIO

from curation.atomicio import disk_full, written_path
from curation.core.config import ConfigError, RunConfig
from curation.core.schema import OK
from curation.finalize import run_files
from curation.layout import OutDir
from curation.lock import OutLocked
from curation.pipeline import RunFailed, RunResult, out_dir, run
from curation.progress import estimate
from curation.progress_view import PROGRESS_FILE, progress_lines, write_snapshot
from curation.watch import RunStart

LOG_EVERY_S = 15.0


class TerminalWatcher:
    """The CLI's :class:`curation.watch.Watcher`: prints where to watch, then the progress block."""

    def __init__(self, stream: TextIO | None = None, native_log: Path | None = None, progress_file: Path | None = None):
        self.stream = stream or sys.stdout  # looked up now: sys.stdout may have been replaced since import
        self.native_log = native_log
        self.progress_file = progress_file
        self.segment: str | None = None
        self.tty = self.stream.isatty()
        self.drawn = 0
        self.last_print = 0.0
        self.lock = threading.Lock()

    def _print(self, text: str = "") -> None:
        """One line; on a terminal, wrapped at its width between words (a long path stays whole)."""
        if self.tty and text:
            width = max(20, shutil.get_terminal_size().columns - 1)
            indent = " " * (len(text) - len(text.lstrip()) + 4)
            text = (
                "\n".join(
                    textwrap.wrap(
                        text,
                        width,
                        subsequent_indent=indent,
                        break_long_words=False,
                        break_on_hyphens=False,
                        drop_whitespace=True,
                    )
                )
                or text
            )
        print(text, file=self.stream, flush=True)

    def started(self, run: RunStart) -> None:
        self.segment = run.segment
        pools = ", ".join(
            f"{'+'.join(s.name.value for s in p.stages)} ×{p.resources.concurrency}"
            + (
                f"..{p.resources.max_concurrency}"
                if p.resources.max_concurrency not in (None, p.resources.concurrency)
                else ""
            )
            + (f" ({p.resources.num_gpus:g} GPU)" if p.resources.num_gpus else "")
            for p in run.pools
        )
        if run.ray.cluster:
            self._print(run.ray.cluster)
        self._print(f"run segment {run.segment}: {run.units} source units; actor pools: {pools}")
        if run.ray.dashboard_url:
            token = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
            self._print(
                f"  Ray dashboard  {run.ray.dashboard_url}"
                + ("  (token auth: paste the output of `ray get-auth-token`)" if token else "")
            )
        if run.ray.metrics_url:
            self._print(f"  metrics        {run.ray.metrics_url}  (Prometheus text; ray_curation_* series)")
        if run.ray.logs:
            self._print(
                f"  Ray logs       {run.ray.logs}"
                + (f" (what Ray's native code wrote to stderr: {self.native_log})" if self.native_log else "")
            )

    def progress(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            if self.progress_file is not None:
                write_snapshot(self.progress_file, {**snapshot, "segment": self.segment})
            now = time.monotonic()
            if not self.tty and now - self.last_print < LOG_EVERY_S:
                return
            self.last_print = now
            if self.tty:  # the block fits the terminal as it is now (redrawn each second: a resize is followed)
                lines = progress_lines(snapshot, max(20, shutil.get_terminal_size().columns - 1))
                up = f"\x1b[{self.drawn}F" if self.drawn else ""
                self.stream.write(up + "".join(f"{line}\x1b[K\n" for line in lines) + "\x1b[J")
                self.stream.flush()
                self.drawn = len(lines)
            else:
                for line in progress_lines(snapshot):
                    self._print(line)

    def finished(self, result: RunResult) -> None:
        """The last progress block, then a one-screen summary."""
        if result.progress:
            self.last_print = 0.0
            self.progress(result.progress)
        for line in summary_lines(result):
            self._print(line)


def summary_lines(result: RunResult) -> list[str]:
    s = result.stats
    lines = [
        "",
        f"{s['ingested']} ingested = {s['accepted']} accepted + {s['rejected']} rejected in {s['shards']} "
        f"shard{'' if s['shards'] == 1 else 's'} "
        f"({s['tar_bytes'] / 1e6:.1f} MB), {result.seconds:.1f} s (segment {result.segment})",
    ]
    if result.progress:
        lines.append(
            f"  {'stage':<8} {'inputs':>7} {'passed':>7} {'rejected':>8} {'batches':>7} {'busy s':>8} "
            f"{'per busy s':>10}"
        )
        for p in estimate(result.progress):
            per = f"{p.inputs / p.busy_s:10.2f}" if p.busy_s else f"{'-':>10}"
            batches = result.progress["stages"][p.stage]["batches"]
            lines.append(
                f"  {p.stage:<8} {p.inputs:>7} {p.accepted:>7} {p.rejected_total:>8} {batches:>7} "
                f"{p.busy_s:>8.1f} {per}"
            )
    if result.progress and result.progress["stages"]:
        ingest = next(iter(result.progress["stages"].values()))
        skipped = resumed_keys(result.out)
        if ingest["inputs"] and not ingest["accepted"] and not ingest["rejected"] and skipped:
            lines.append(f"  nothing left to do: all {skipped} keys of the work list were already done in {result.out}")
    top = list(s["by_reason"].items())[:5]
    if top:
        lines.append("  top reject reasons: " + ", ".join(f"{k} {v}" for k, v in top))
    rates = source_rates(result.out)
    if rates:
        lines.append("  accepted per source: " + ", ".join(rates))
    if result.ray.metrics_url and result.ray.embedded:
        state = (
            "final values exported" if not result.metrics_left else f"NOT final: {'; '.join(result.metrics_left[:3])}"
        )
        lines.append(f"  metrics  {result.ray.metrics_url} ({state})")
    for name, path in run_files(result.out).items():
        lines.append(f"  {name:16s} {path}")
    return lines


def resumed_keys(root: Path) -> int:
    """How many keys the latest run segment found already done (run.json), 0 when unknown."""
    try:
        return int(json.loads((root / "run.json").read_text())["history"][-1].get("skipped_done_keys") or 0)
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def source_rates(root: Path) -> list[str]:
    """``name accepted/rows (share)`` per source of the run folder's index (every segment)."""
    import pyarrow.parquet as pq

    try:
        index = pq.read_table(root / "index.parquet", columns=["source", "status"])
    except (OSError, ValueError):
        return []
    counts: dict[str, list[int]] = {}
    for source, status in zip(index.column("source").to_pylist(), index.column("status").to_pylist(), strict=True):
        c = counts.setdefault(source, [0, 0])
        c[0] += status == OK
        c[1] += 1
    return [f"{name} {ok}/{n} ({ok / n:.0%})" for name, (ok, n) in sorted(counts.items())]


def hold(result: RunResult, stream: TextIO | None = None) -> None:
    """Keep this process, and with it the embedded Ray's dashboard and metrics endpoint, up until Ctrl-C or
    SIGTERM (a run started in the background, where SIGINT is ignored, ends with ``kill``)."""
    what = ", ".join(x for x in (result.ray.dashboard_url, result.ray.metrics_url) if x)
    print(f"holding the local Ray ({what}); Ctrl-C to end", file=stream or sys.stdout, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


@contextmanager
def native_stderr_to(path: Path) -> Iterator[None]:
    """Send what native code writes to this process's stderr (Ray's C++ core logs its errors there, some of
    them expected, such as the note on every actor pool's constructor arguments) to ``path``, while Python's
    ``sys.stderr`` (warnings, tracebacks, error messages) still reaches the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        yield
    finally:
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def run_in_terminal(cfg: RunConfig, verbose: bool = False, hold_after: bool = False, debug: bool = False) -> int:
    """``curate run``: the run with its terminal output (where to watch it, progress lines, the summary), then
    the local Ray kept up when ``hold_after``; the exit code. A user's mistake found at start (a missing
    source, a locked or unusable OUT, pools the cluster cannot place, a cluster that does not answer) is one line
    and exit 2 and leaves no new OUT behind; so is a full disk, named (``debug``: the traceback). A run whose stage
    code failed beyond the error budget, or that accepted nothing, is one line and exit 1."""
    new_out = not Path(cfg.run.out).exists()
    try:
        work = out_dir(cfg).work
        native_log = work / "ray-native-stderr.log"
        watcher = TerminalWatcher(native_log=None if verbose else native_log, progress_file=work / PROGRESS_FILE)
        with nullcontext() if verbose else native_stderr_to(native_log):
            result = run(cfg, watcher=watcher, verbose=verbose)
            watcher.finished(result)
            if hold_after and result.ray.embedded:
                hold(result)
    except ConfigError as err:
        started_here = new_out and not isinstance(err, OutLocked) and not OutDir(Path(cfg.run.out)).complete_shards()
        if started_here:  # a mistake found at start leaves no half-made OUT behind
            shutil.rmtree(cfg.run.out, ignore_errors=True)
        if debug:
            raise
        print(f"curate run: {err}", file=sys.stderr)
        return 2
    except RunFailed as err:
        if debug:
            raise
        print(f"curate run: FAILED: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        full = disk_full(err)
        if full is None or debug:
            raise
        print(
            f"curate run: no space left on the device writing {written_path(full) or cfg.run.out}; the complete "
            f"shards are kept: free space and run the same command again to resume",
            file=sys.stderr,
        )
        return 2
    if result.failure:
        print(f"curate run: FAILED: {result.failure}", file=sys.stderr)
        return 1
    return 0
