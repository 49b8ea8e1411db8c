"""The POST workers: HttpConnections threads, each taking the next received message in turn.

One thread per HttpConnection means never more POSTs at once than HttpConnections, whatever
the pollers hand over; a message handed over while every worker is busy waits its turn, in the
order it was received.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

Message = dict[str, Any]
Handle = Callable[[Message, float], None]  # the message and when it was handed over (monotonic)

#: Messages handled in less than this on average (a running mean) make the workers `quick`.
QUICK_S = 0.1


class Workers:
    """`size` threads that run `handle` on each message submitted; `name` labels the threads."""

    def __init__(self, size: int, handle: Handle, name: str = "sqsd-post") -> None:
        self.size = size
        self.handle = handle
        self.name = name
        self.running = 0  # messages being handled now (at most `size`)
        self.held = 0  # submitted and not yet finished, waiting or running
        self.mean_s: float | None = None  # how long handling a message takes, a running mean
        self._queue: queue.SimpleQueue[tuple[Message, float] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._changed = threading.Condition()

    def submit(self, message: Message) -> None:
        """Hand one message over; it is handled as soon as a worker is free."""
        with self._changed:
            self.held += 1
            if not self._threads:  # started on first use: a daemon only built, never run, costs no thread
                self._threads = [
                    threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
                    for i in range(self.size)
                ]
                for thread in self._threads:
                    thread.start()
        self._queue.put((message, time.monotonic()))

    @property
    def quick(self) -> bool:
        """True once messages are known to be handled in less than QUICK_S on average."""
        return self.mean_s is not None and self.mean_s < QUICK_S

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every message handed over is finished; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.held == 0, timeout=timeout)

    def close(self) -> None:
        """Let the workers finish what they hold, then end their threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            with self._changed:
                self.running += 1
            began = time.monotonic()
            try:
                self.handle(*item)
            finally:
                took, mean = time.monotonic() - began, self.mean_s
                self.mean_s = took if mean is None else mean + (took - mean) * 0.2
                with self._changed:
                    self.running -= 1
                    self.held -= 1
                    if self.held == 0:
                        self._changed.notify_all()
