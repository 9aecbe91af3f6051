"""Looking through an exception for the one that explains it: Ray wraps what a task raised (as ``cause``, a
``__cause__`` or, across processes, only as text), so a caller that wants "was this a full disk / a spent
error budget" walks the whole chain once."""

from __future__ import annotations

from collections.abc import Iterator


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it (``__cause__``, ``__context__``, Ray's ``cause``), each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
