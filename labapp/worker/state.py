"""What the worker app keeps between requests, in one typed object: `state.of(app)` reaches it.

flaskr's `get_db()` is the one way to its database; here `of(app)` (or `current()` inside a
request) is the one way to the ledger, the failure switch, the inspector and the counters.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, Protocol

from flask import Flask, current_app

from labapp.signature import SeenNonces
from labapp.worker.failures import FailureSwitch
from labapp.worker.inspector import Inspector
from labapp.worker.ledger import Ledger

EXTENSION = "labapp"


class Concurrency:
    """Count requests in progress and the highest count seen (to check HttpConnections)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.peak = 0

    def enter(self) -> None:
        """Count one more request in progress."""
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        """Count one request finished."""
        with self._lock:
            self.now -= 1

    def reset(self) -> None:
        """Start the peak again from the requests in progress now."""
        with self._lock:
            self.peak = self.now

    def snapshot(self) -> dict[str, int]:
        """Return the requests in progress now and the peak."""
        return {"now": self.now, "peak": self.peak}


class DaemonStatus(Protocol):
    """What the health route shows of a daemon attached to this worker (the worker never imports sqsd)."""

    state: str
    counts: dict[str, int]

    @property
    def in_flight(self) -> int: ...


@dataclasses.dataclass
class WorkerState:
    """The worker's ledger, failure switch, request inspector, counters, crash hook and used nonces."""

    ledger: Ledger
    failures: FailureSwitch
    inspector: Inspector
    concurrency: Concurrency
    # A worker running as its own process dies for real; HttpServer replaces this with closing the
    # server when the app runs inside a notebook kernel or a test process.
    crash: Callable[[], None]
    daemon: DaemonStatus | None = None
    # The kit's own message view while a learner's handler answers instead (course.handlers).
    kit_handler: Callable[..., Any] | None = None
    # Kept across reset(): forgetting them would let a captured control call work again.
    nonces: SeenNonces = dataclasses.field(default_factory=SeenNonces)

    def reset(self) -> None:
        """Turn failures off and forget the ledger, the recorded requests and the peak."""
        self.failures.reset()
        self.ledger.clear()
        self.inspector.clear()
        self.concurrency.reset()


def of(app: Flask) -> WorkerState:
    """Return the state of a worker app made by `create_app`."""
    state: WorkerState = app.extensions[EXTENSION]
    return state


def current() -> WorkerState:
    """Return the state of the app serving the current request."""
    return of(current_app)
