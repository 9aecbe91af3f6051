"""How much failing stage code a run tolerates before it stops being a success.

A reject for bad *input* (an empty mask, an unreadable image) is the pipeline working. An exception in a
stage's own code is a ``stage_error`` reject: one such row is tolerated (a corrupt sample must not kill a
48K-row run), but a model that breaks on every row must not end in "0 accepted, exit 0". Two checks share
the rule ``errors > run.max_error_fraction × rows`` once a stage has seen ``run.error_budget_min_rows`` rows:

- :class:`ErrorBudget`, in each stage actor, on the rows that actor has seen: it raises
  :class:`ErrorBudgetExceeded`, which fails the Ray Data job at once instead of burning the cluster;
- :func:`budget_verdict`, on the driver at the end, over every row of the run segment (what a single actor
  cannot see), and also fails a run that accepted nothing at all.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from curation.core.errors import exception_chain
from curation.core.reasons import Reason

#: characters of an error message kept for grouping and the final line
MESSAGE_CHARS = 160


class ErrorBudgetExceeded(RuntimeError):
    """A stage's code failed on more rows than the run's error budget allows; the message is the verdict."""


def _message(detail: str | None) -> str:
    return " ".join((detail or "").split())[:MESSAGE_CHARS] or "(no message)"


def _verdict(stage: str, errors: Counter[str], rows: int, max_fraction: float) -> str:
    message, count = errors.most_common(1)[0]
    return (
        f"stage {stage} raised on {sum(errors.values())} of {rows} rows (run.max_error_fraction {max_fraction:g}); "
        f"most common error ({count}x): {message}"
    )


class ErrorBudget:
    """One stage's running count of rows and ``stage_error`` rejects in one actor."""

    def __init__(self, stage: str, max_fraction: float, min_rows: int):
        self.stage, self.max_fraction, self.min_rows = stage, max_fraction, min_rows
        self.rows = 0
        self.errors: Counter[str] = Counter()

    def add(self, inputs: int, rows: Iterable[Mapping[str, Any]]) -> None:
        """Count a batch (``inputs`` rows went in, ``rows`` came out); raise once the budget is spent."""
        self.rows += inputs
        for row in rows:
            if row.get("reject_stage") == self.stage and row.get("reject_reason") == Reason.STAGE_ERROR.value:
                self.errors[_message(row.get("reject_detail"))] += 1
        if self.rows >= self.min_rows and sum(self.errors.values()) > self.max_fraction * self.rows:
            raise ErrorBudgetExceeded(_verdict(self.stage, self.errors, self.rows, self.max_fraction))


def budget_verdict(
    rows: Sequence[Mapping[str, Any]], stages: Sequence[str], max_fraction: float, min_rows: int, accepted_in_out: int
) -> str | None:
    """Why a finished run segment failed, or None. ``rows`` are its index rows (``status``, ``reject_stage``,
    ``reject_reason``, ``reject_detail``; every segment of the output folder), ``stages`` the DAG's stage
    names in data order, ``accepted_in_out`` the samples the output folder holds in all."""
    if not rows:
        return None
    order = {name: i for i, name in enumerate(stages)}
    raised: list[str] = []
    for i, stage in enumerate(stages):
        reached = [r for r in rows if r.get("reject_stage") is None or order.get(r["reject_stage"], -1) >= i]
        errors = Counter(
            _message(r.get("reject_detail"))
            for r in reached
            if r.get("reject_stage") == stage and r.get("reject_reason") == Reason.STAGE_ERROR.value
        )
        if not errors:
            continue
        n = sum(errors.values())
        if (len(reached) >= min_rows and n > max_fraction * len(reached)) or (
            accepted_in_out == 0 and n > len(rows) / 2
        ):
            return _verdict(stage, errors, len(reached), max_fraction)
        raised.append(f"stage {stage} raised on {n}")
    if accepted_in_out == 0:
        by_reason = Counter(f"{r.get('reject_stage')}/{r.get('reject_reason')}" for r in rows)
        reason, count = by_reason.most_common(1)[0]
        also = f" ({'; '.join(raised)})" if raised else ""
        return f"the run accepted nothing: all {len(rows)} rows were rejected, most as {reason} ({count}x){also}"
    return None


_REMOTE = re.compile(rf"{ErrorBudgetExceeded.__name__}: (.+)")


def find_budget_error(exc: BaseException) -> ErrorBudgetExceeded | None:
    """The :class:`ErrorBudgetExceeded` an actor raised, from the exception Ray Data wraps it in: an object in
    the chain when Ray kept one, else the remote traceback's text (a remote cause arrives as text only)."""
    for e in exception_chain(exc):
        if isinstance(e, ErrorBudgetExceeded):
            cause = getattr(e, "cause", None)  # Ray's RayTaskError subclass keeps the original as .cause
            return cause if isinstance(cause, ErrorBudgetExceeded) else e
        found = _REMOTE.search(str(e))
        if found:
            return ErrorBudgetExceeded(found.group(1).strip())
    return None
