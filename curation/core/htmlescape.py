"""Values written into the HTML pages (the run report, the curator's label page), escaped for where they land.

Paths, file names, captions and categories come from users and datasets: any of them may hold ``<``, quotes or
``</script>``. In element text and in quoted attribute values :func:`text` / :func:`attr` escape ``& < > " '``;
inside ``<script>`` a value goes in as JSON with ``<``, ``>``, ``&`` and the two JavaScript line separators
written as ``\\u`` escapes (:func:`script_json`), so no value can end the script element or start a comment.
"""

from __future__ import annotations

import html
import json
from typing import Any

_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def text(value: Any) -> str:
    """``value`` as element text."""
    return html.escape(str(value), quote=True)


def attr(value: Any) -> str:
    """``value`` inside a double- or single-quoted attribute."""
    return html.escape(str(value), quote=True)


def script_json(value: Any) -> str:
    """``value`` as a JavaScript literal inside ``<script>``: JSON that cannot close the element."""
    out = json.dumps(value)
    for ch, esc in _SCRIPT_UNSAFE.items():
        out = out.replace(ch, esc)
    return out
