"""Serve a folder over HTTP from a thread (the standard library's server), recording each request's path.

For the loader's HTTP test and the loader benchmark: shards read through webdataset's ``http://`` URLs, the
way a trainer reads them from an object store's HTTP endpoint or a web server in front of the OUT folder.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Served:
    base: str  # http://127.0.0.1:PORT
    requests: list[str] = field(default_factory=list)  # "GET /name.tar 200", in arrival order

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@contextmanager
def serve(folder: Path, hide: tuple[str, ...] = ()) -> Iterator[Served]:
    """``folder`` on http://127.0.0.1:PORT until the block ends; names ending in one of ``hide`` answer 404."""
    served = Served("")

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            if hide and self.path.endswith(hide):
                self.send_error(404)
            else:
                super().do_GET()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            served.requests.append(f"{self.command} {self.path} {code}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="http-shards", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
