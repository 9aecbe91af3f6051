"""What ``curate run`` prints: where to watch the run, one progress line per stage, a summary at the end.

On a terminal the progress lines are redrawn in place every second; in a log (stdout not a terminal) the
block is printed every ``LOG_EVERY_S`` seconds. Ray's own log lines stay in its log files unless
``--verbose`` (see :func:`curation.pipeline.init_ray`).
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator, TextIO

from curation.atomicio import disk_full, written_path
from curation.core.config import ConfigError, RunConfig
from curation.finalize import run_files
from curation.layout import OutDir
from curation.lock import OutLocked
from curation.pipeline import RunResult, out_dir, run
from curation.progress import StageProgress, estimate
from curation.watch import RunStart

LOG_EVERY_S = 15.0


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _reasons(rejected: dict[str, int], top: int = 2) -> str:
    if not rejected:
        return ""
    items = sorted(rejected.items(), key=lambda kv: -kv[1])
    more = f", +{len(items) - top} more" if len(items) > top else ""
    return " (" + ", ".join(f"{r} {n}" for r, n in items[:top]) + more + ")"


def stage_line(p: StageProgress, first: bool) -> str:
    """``masks     16/~40 rows →   14 passed,   2 rejected (empty_mask 2)   1.30/s  ETA 0:30``."""
    unit = "units" if first else "rows"
    expected = "?" if p.expected is None else (f"{p.expected:.0f}" if first else f"~{p.expected:.0f}")
    rate = "    -  " if p.rate is None else f"{p.rate:6.2f}/s"
    done = p.expected is not None and p.inputs >= p.expected and (first or p.eta_s == 0)
    eta = "done" if done else f"ETA {_clock(p.eta_s)}"
    return (f"{p.stage:<8} {p.inputs:>6}/{expected:<6} {unit:<5} → {p.accepted:>6} passed, {p.rejected_total:>5} rejected  "
            f"{rate}  {eta}{_reasons(p.rejected)}")


def sink_line(sink: dict[str, Any]) -> str:
    return f"{'sink':<8} {sink['shards']:>6} shards, {sink['accepted']} samples of {sink['rows']} rows, {sink['bytes'] / 1e6:.1f} MB"


def progress_lines(snap: dict[str, Any]) -> list[str]:
    elapsed = snap["now"] - snap["started"]
    lines = [stage_line(p, i == 0) for i, p in enumerate(estimate(snap))]
    return [f"[{_clock(elapsed)}]"] + lines + [sink_line(snap["sink"])]


class TerminalWatcher:
    """The CLI's :class:`curation.watch.Watcher`: prints where to watch, then the progress block."""

    def __init__(self, stream: TextIO = sys.stdout, native_log: Path | None = None):
        self.stream = stream
        self.native_log = native_log
        self.tty = stream.isatty()
        self.drawn = 0
        self.last_print = 0.0
        self.lock = threading.Lock()

    def _print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def started(self, run: RunStart) -> None:
        pools = ", ".join(f"{'+'.join(s.name.value for s in p.stages)} ×{p.resources.concurrency}"
                          + (f"..{p.resources.max_concurrency}" if p.resources.max_concurrency not in (None, p.resources.concurrency) else "")
                          + (f" ({p.resources.num_gpus:g} GPU)" if p.resources.num_gpus else "")
                          for p in run.pools)
        if run.ray.cluster:
            self._print(run.ray.cluster)
        self._print(f"run segment {run.segment}: {run.units} source units; actor pools: {pools}")
        if run.ray.dashboard_url:
            token = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
            self._print(f"  Ray dashboard  {run.ray.dashboard_url}"
                        + ("  (token auth: paste the output of `ray get-auth-token`)" if token else ""))
        if run.ray.metrics_url:
            self._print(f"  metrics        {run.ray.metrics_url}  (Prometheus text; ray_curation_* series)")
        if run.ray.logs:
            self._print(f"  Ray logs       {run.ray.logs}"
                        + (f" (what Ray's native code wrote to stderr: {self.native_log})" if self.native_log else ""))

    def progress(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            now = time.monotonic()
            if not self.tty and now - self.last_print < LOG_EVERY_S:
                return
            self.last_print = now
            lines = progress_lines(snapshot)
            if self.tty:
                width = shutil.get_terminal_size().columns - 1
                up = f"\x1b[{self.drawn}F" if self.drawn else ""
                self.stream.write(up + "".join(f"{line[:width]}\x1b[K\n" for line in lines))
                self.stream.flush()
                self.drawn = len(lines)
            else:
                for line in lines:
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
    lines = ["", f"{s['ingested']} ingested = {s['accepted']} accepted + {s['rejected']} rejected in {s['shards']} shard{'' if s['shards'] == 1 else 's'} "
                 f"({s['tar_bytes'] / 1e6:.1f} MB), {result.seconds:.1f} s (segment {result.segment})"]
    if result.progress:
        lines.append(f"  {'stage':<8} {'inputs':>7} {'passed':>7} {'rejected':>8} {'batches':>7} {'busy s':>8} {'per busy s':>10}")
        for p in estimate(result.progress):
            per = f"{p.inputs / p.busy_s:10.2f}" if p.busy_s else f"{'-':>10}"
            batches = result.progress["stages"][p.stage]["batches"]
            lines.append(f"  {p.stage:<8} {p.inputs:>7} {p.accepted:>7} {p.rejected_total:>8} {batches:>7} {p.busy_s:>8.1f} {per}")
    top = list(s["by_reason"].items())[:5]
    if top:
        lines.append("  top reject reasons: " + ", ".join(f"{k} {v}" for k, v in top))
    if result.ray.metrics_url and result.ray.embedded:
        state = ("final values exported" if not result.metrics_left
                 else f"NOT final: {'; '.join(result.metrics_left[:3])}")
        lines.append(f"  metrics  {result.ray.metrics_url} ({state})")
    for name, path in run_files(result.out).items():
        lines.append(f"  {name:16s} {path}")
    return lines


def hold(result: RunResult, stream: TextIO = sys.stdout) -> None:
    """Keep this process, and with it the embedded Ray's dashboard and metrics endpoint, up until Ctrl-C or
    SIGTERM (a run started in the background, where SIGINT is ignored, ends with ``kill``)."""
    what = ", ".join(x for x in (result.ray.dashboard_url, result.ray.metrics_url) if x)
    print(f"holding the local Ray ({what}); Ctrl-C to end", file=stream, flush=True)
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
    and exit 2 and leaves no new OUT behind; so is a full disk, named (``debug``: the traceback)."""
    new_out = not Path(cfg.run.out).exists()
    try:
        native_log = out_dir(cfg).work / "ray-native-stderr.log"
        watcher = TerminalWatcher(native_log=None if verbose else native_log)
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
    except Exception as err:
        full = disk_full(err)
        if full is None or debug:
            raise
        print(f"curate run: no space left on the device writing {written_path(full) or cfg.run.out}; the complete "
              f"shards are kept: free space and run the same command again to resume", file=sys.stderr)
        return 2
    return 0
