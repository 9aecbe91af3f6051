"""The run's progress: one small actor tallies what the stage actors and the sink report, the driver reads it.

Stage actors send one message per stage batch and the sink one per shard (:mod:`curation.core.metrics`),
without waiting for an answer; the driver polls :meth:`Tally.snapshot` for its progress lines and keeps the
final one in ``run.json``. The tally also grants the places of the reject sample (:mod:`curation.core.rejects`),
so the bound holds for the whole run whatever the number of actors.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray


def _stage() -> dict[str, Any]:
    return {"inputs": 0, "accepted": 0, "rejected": {}, "batches": 0, "busy_s": 0.0, "first": None, "last": None}


class Tally:
    """Per-stage and sink totals of one run segment (a Ray actor: ``ray.remote(Tally)``)."""

    def __init__(self, stages: list[str], units: int):
        self.units = units
        self.started = time.time()
        self.stages = {s: _stage() for s in stages}
        self.sink: dict[str, Any] = {"shards": 0, "rows": 0, "accepted": 0, "bytes": 0, "first": None, "last": None}
        self.granted: Counter[str] = Counter()

    def add_batch(
        self, stage: str, inputs: int, accepted: int, rejected: dict[str, int], started: float, seconds: float
    ) -> None:
        s = self.stages.setdefault(stage, _stage())
        s["inputs"] += inputs
        s["accepted"] += accepted
        for reason, n in rejected.items():
            s["rejected"][reason] = s["rejected"].get(reason, 0) + n
        s["batches"] += 1
        s["busy_s"] += seconds
        s["first"] = started if s["first"] is None else min(s["first"], started)
        s["last"] = max(s["last"] or 0.0, started + seconds)

    def add_shard(self, accepted: int, rows: int, nbytes: int, at: float) -> None:
        k = self.sink
        k["shards"] += 1
        k["rows"] += rows
        k["accepted"] += accepted
        k["bytes"] += nbytes
        k["first"] = at if k["first"] is None else k["first"]
        k["last"] = at

    def claim(self, stage: str, reason: str, n: int, limit: int) -> int:
        """How many of ``n`` rejects of ``stage/reason`` may keep thumbnails (``limit`` per run)."""
        key = f"{stage}/{reason}"
        granted = max(0, min(n, limit - self.granted[key]))
        self.granted[key] += granted
        return granted

    def snapshot(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "started": self.started,
            "now": time.time(),
            "stages": self.stages,
            "sink": self.sink,
        }


@dataclass
class StageProgress:
    """One stage's line: its inputs so far and expected, what it passed on and rejected, its rate and ETA."""

    stage: str
    inputs: int
    expected: float | None
    accepted: int
    rejected: dict[str, int]
    rate: float | None  # inputs per second of wall time since the stage's first batch
    eta_s: float | None
    busy_s: float
    #: ``eta_s`` is only a lower bound: the stage has no batch of its own yet, it cannot end before its feeder
    eta_floor: bool = False

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def estimate(snap: dict[str, Any]) -> list[StageProgress]:
    """Each stage's progress with an ETA from the known number of source units: a stage expects what the stage
    before it will pass on (its pass rate so far times what it expects), at its own rate so far; it cannot end
    before the stage that feeds it. From the first completed batch on there is an ETA: a stage that has not
    finished a batch yet gets its feeder's as a lower bound (``eta_floor``); one that expects nothing, 0."""
    now = snap["now"]
    expected: float | None = float(snap["units"])
    upstream_eta: float | None = 0.0
    upstream_floor = False
    out = []
    for name, s in snap["stages"].items():
        rate = s["inputs"] / max(now - s["first"], 1e-6) if s["first"] is not None and s["inputs"] else None
        eta, floor = None, upstream_floor
        if expected is not None and expected <= s["inputs"] and upstream_eta == 0.0 and not upstream_floor:
            eta = 0.0  # all in (or nothing to do)
        elif expected is not None and rate:
            eta = None if upstream_eta is None else max(upstream_eta, max(expected - s["inputs"], 0.0) / rate)
        elif upstream_eta is not None and any(st["inputs"] for st in snap["stages"].values()):
            eta, floor = upstream_eta, True
        out.append(
            StageProgress(
                name, s["inputs"], expected, s["accepted"], s["rejected"], rate, eta, s["busy_s"], eta_floor=floor
            )
        )
        upstream_eta, upstream_floor = eta, floor
        if expected != 0:  # nothing for a stage: nothing for the stages after it either
            expected = expected * s["accepted"] / s["inputs"] if expected is not None and s["inputs"] else None
    return out


def start_tally(stages: list[str], units: int) -> Any:
    """The run's tally actor (no CPU of its own: it only adds numbers), on the driver's node: the node that
    lives as long as the run, so losing a worker node does not lose the run's progress."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    # Ray's overloads of remote() leave out NodeAffinitySchedulingStrategy, which it takes
    return ray.remote(num_cpus=0, scheduling_strategy=here)(Tally).remote(stages, units)  # type: ignore[call-overload]


class Poller:
    """Calls ``on_snapshot`` with the tally's snapshot every ``interval`` seconds, in a thread of the driver."""

    def __init__(self, tally: Any, on_snapshot: Callable[[dict[str, Any]], None], interval: float = 1.0):
        self.tally, self.on_snapshot, self.interval = tally, on_snapshot, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="curation-progress", daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(self.interval):
            self.on_snapshot(ray.get(self.tally.snapshot.remote()))

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


def complete(snap: dict[str, Any], ingested: int) -> bool:
    """Whether every message of a finished run is in: ingest saw every unit, each stage every row the stage
    before it passed on, and the sink every row."""
    stages = list(snap["stages"].values())
    return (
        bool(stages)
        and stages[0]["inputs"] == snap["units"]
        and snap["sink"]["rows"] == ingested
        and all(b["inputs"] == a["accepted"] for a, b in zip(stages, stages[1:], strict=False))
    )


def final_snapshot(tally: Any, ingested: int, timeout: float = 10.0) -> dict[str, Any]:
    """The tally once every message of the run has arrived: the actors send without waiting, so the last
    ones may still be on their way when the dataset ends (after ``timeout``, what has arrived)."""
    deadline = time.monotonic() + timeout
    while True:
        snap = ray.get(tally.snapshot.remote())
        if complete(snap, ingested) or time.monotonic() > deadline:
            return snap
        time.sleep(0.1)
