"""Peak memory of a process tree (a driver and every Ray process it started), sampled in a thread.

Sums PSS (proportional set size) over the tree: shared pages (the Ray object store in /dev/shm,
shared libraries) are split among the processes that map them instead of being counted once per
process, so the sum is what the run really occupies. The USS sum (private pages only: heaps, no object
store) and the RSS sum (shared pages counted once per process, an upper bound) are kept beside it,
and a timeline of the sums shows whether memory plateaus or keeps climbing.

The same readings give the CPU seconds the whole tree spent (user + system, the last reading of every
process that ever appeared; a process's final < ``interval`` seconds can be missed), which shows how
much CPU the orchestration adds on top of the stage code, whatever else the machine is doing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class TreeUsage:
    pss_bytes: int = 0
    uss_bytes: int = 0
    rss_bytes: int = 0
    processes: int = 0  # size of the tree at the PSS peak
    samples: int = 0
    #: the largest processes at the PSS peak, "name (pid)" -> PSS bytes: where the memory sits
    top: dict[str, int] = field(default_factory=dict)
    #: CPU seconds (user + system) of every process of the tree, by pid, at its last reading
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    #: what each pid was last seen as (its command line's first word: "ray::MapWorker(...)", "raylet", ...)
    name_by_pid: dict[int, str] = field(default_factory=dict)
    #: (seconds since start, PSS sum MB, USS sum MB) per sample
    timeline: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu_by_pid.values())

    def cpu_by_name(self) -> dict[str, float]:
        """CPU seconds per kind of process (summed over pids), largest first: where the CPU went."""
        out: dict[str, float] = {}
        for pid, cpu in self.cpu_by_pid.items():
            name = self.name_by_pid[pid]
            out[name] = out.get(name, 0.0) + cpu
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _name(cmdline: list[str]) -> str:
    """A process's kind: Ray's title (``ray::MapWorker(...)``), a binary, or a Python script's name."""
    if not cmdline:
        return ""
    first = cmdline[0].rsplit("/", 1)[-1]
    if first.startswith("python") and len(cmdline) > 1:
        script = next((a for a in cmdline[1:] if a.endswith(".py")), cmdline[1])
        return f"python {script.rsplit('/', 1)[-1]}"
    return first


def sample_tree(root: psutil.Process) -> tuple[int, int, int, dict[str, int], dict[int, tuple[str, float]]]:
    """One reading over ``root`` and its descendants: PSS, USS and RSS sums, PSS per process,
    and (name, CPU seconds) per pid."""
    pss = uss = rss = 0
    per: dict[str, int] = {}
    cpu: dict[int, tuple[str, float]] = {}
    for proc in _tree(root):
        try:
            info = proc.memory_full_info()
            times = proc.cpu_times()
            name = _name(proc.cmdline()) or proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # a worker that exited between listing and reading
        pss += info.pss
        uss += info.uss
        rss += info.rss
        short = name[:40]
        per[f"{short} ({proc.pid})"] = info.pss
        cpu[proc.pid] = (short, times.user + times.system)
    return pss, uss, rss, per, cpu


class TreeSampler:
    """``with TreeSampler(pid) as s: ...`` keeps ``s.usage`` up to date every ``interval`` seconds.

    With ``limit_bytes``, a tree whose PSS passes the limit is killed (every process, by pid) and
    ``s.killed`` says so: a benchmark must not take the machine down with it.
    """

    def __init__(self, pid: int, interval: float = 0.25, keep_top: int = 6, limit_bytes: int | None = None):
        self.root = psutil.Process(pid)
        self.interval = interval
        self.keep_top = keep_top
        self.limit_bytes = limit_bytes
        self.killed = False
        self.usage = TreeUsage()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)
        self._t0 = time.perf_counter()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            if self.limit_bytes and self.usage.pss_bytes > self.limit_bytes and not self.killed:
                self.kill_tree()
            self._stop.wait(self.interval)

    def kill_tree(self) -> None:
        self.killed = True
        for proc in reversed(_tree(self.root)):  # children first, the root last
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass

    def sample(self) -> None:
        pss, uss, rss, per, cpu = sample_tree(self.root)
        self.usage.samples += 1
        for pid, (name, seconds) in cpu.items():
            name = "driver" if pid == self.root.pid else name
            self.usage.cpu_by_pid[pid] = seconds
            if name != "ray::IDLE":  # keep what a worker did, not its idle title
                self.usage.name_by_pid[pid] = name
            self.usage.name_by_pid.setdefault(pid, name)
        self.usage.timeline.append((round(time.perf_counter() - self._t0, 2), round(pss / 1e6, 1), round(uss / 1e6, 1)))
        self.usage.uss_bytes = max(self.usage.uss_bytes, uss)
        self.usage.rss_bytes = max(self.usage.rss_bytes, rss)
        if pss > self.usage.pss_bytes:
            self.usage.pss_bytes = pss
            self.usage.processes = len(per)
            self.usage.top = dict(sorted(per.items(), key=lambda kv: -kv[1])[: self.keep_top])

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
