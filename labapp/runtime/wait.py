"""The one way the lab waits: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from labapp.errors import WaitTimeout

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.05,
    *,
    stop: threading.Event | None = None,
) -> T:
    """Poll condition until it returns something truthy and return that; raise WaitTimeout naming `what`.

    A condition may raise to end the wait early (a child that exited, say); `stop` ends it too,
    returning the last (falsy) result.
    """
    deadline = time.monotonic() + timeout
    pause = stop.wait if stop is not None else time.sleep
    while True:
        result = condition()
        if result or (stop is not None and stop.is_set()):
            return result
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        pause(interval)


def stop_on_signals() -> threading.Event:
    """Return an Event that SIGTERM or SIGINT sets; only a command-line main may call this.

    Signal handlers can only be installed from the main thread, so a notebook or a library never
    calls it: they pass an Event of their own.
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
