"""`python -m labapp.bench.noop PORT`: an app that answers 200 at once, to measure the daemon alone."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from labapp.runtime.servers import HttpServer
from labapp.runtime.wait import stop_on_signals


def noop_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer 200 at once: the worker for measuring the daemon alone."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


if __name__ == "__main__":
    stop = stop_on_signals()
    with HttpServer(noop_app, port=int(sys.argv[1])):
        stop.wait()
