"""Receiving: HttpConnections as slots, and ReceiveMessage with its back-off and queue lookup.

A receive first takes a slot for every message it asks for, and gives back the ones it did not
get, so the messages held (being POSTed, or received and about to be) never exceed
HttpConnections: none waits in memory while its visibility timeout runs. sqsd runs
ceil(HttpConnections / 2.5) receive loops (docs/aws-behaviour.md#sqsd-pollers); so does the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labapp.sqs.client import SqsClient
from labapp.sqs.limits import MAX_BATCH

MAX_BACKOFF_S = 20.0
LOOKUP_EVERY_S = 1.0  # a lost queue is looked up by name this often: one cheap call
TROUBLE_TICK_S = 0.05  # while SQS fails, the pollers that are not probing look again this often
QUEUE_GONE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
#: What sqsd asks for on every receive (the X-Aws-Sqsd-* headers and RetentionPeriod need them).
SYSTEM_ATTRIBUTES = [
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SentTimestamp",
    "SenderId",
]

Report = Callable[[str, Exception], None]


def poller_count(http_connections: int, sqs: SqsClient) -> int:
    """ceil(HttpConnections / 2.5) receive loops, as sqsd runs, within the client's connection pool.

    Two of the client's connections are left for the deletes and the visibility changes, so a
    long poll never makes them wait for a connection.
    """
    pool = int(getattr(getattr(sqs, "meta", None), "config", None).max_pool_connections or 10)  # type: ignore[union-attr]
    return max(1, min(math.ceil(http_connections / 2.5), pool - 2))


class Slots:
    """HttpConnections as a count of messages the daemon may hold at once.

    `capacity` is HttpConnections; `batch` is how many must be free before a poller receives
    while POSTs are quick (ten, or all of them when there are fewer), so receives ask for full
    batches; with a slower app one free connection is enough, as in sqsd, which asks for
    min(free, 10): a slow job must not hold back the next message (docs/aws-behaviour.md#sqsd-pollers).
    `ahead` says
    how many more may be held beyond `capacity`, received while every connection is busy so
    that the next batch is there when a POST ends (the daemon allows two batches while POSTs
    are quick, none otherwise: a message never waits long while its visibility timeout runs).
    """

    def __init__(self, capacity: int, batch: int, ahead: Callable[[], int] = lambda: 0) -> None:
        self.capacity = capacity
        self.batch = min(batch, capacity)
        self.ahead = ahead
        self._held = 0
        self._changed = threading.Condition()

    @property
    def free(self) -> int:
        """Connections neither POSTing nor reserved by a receive under way."""
        return self.capacity - self._held

    def _room(self) -> int:
        return self.capacity + self.ahead() - self._held

    def _need(self) -> int:
        return self.batch if self.ahead() > 0 else 1

    def take(self, want: int, stop: threading.Event | None = None) -> int:
        """Take up to `want` slots; with `stop`, first wait until enough are free (0 once stopped)."""
        with self._changed:
            if stop is not None:
                while self._room() < self._need() and not stop.is_set():
                    # Woken by give(); the timeout only rechecks `ahead`, which changes with time.
                    self._changed.wait(0.5)
                if stop.is_set():
                    return 0
            count = max(0, min(want, self._room() if stop is not None else self.free))
            self._held += count
            if count and self._room() >= self._need():
                self._changed.notify()  # enough left for the next poller too
            return count

    def give(self, count: int = 1) -> None:
        """Give back slots: a message finished, or a receive got fewer than it asked for."""
        if count <= 0:
            return
        with self._changed:
            self._held -= count
            # Not only on crossing the line: `ahead` may have grown since the last give().
            if self._room() >= self._need():
                self._changed.notify()

    def wake(self) -> None:
        """Wake every waiting poller (the daemon is stopping)."""
        with self._changed:
            self._changed.notify_all()


class Receiver:
    """ReceiveMessage on one queue, with a back-off after errors and a lookup by name when the queue is gone.

    `sqs` is the client, `queue_url` the queue, `visibility_timeout` what each receive asks for,
    `report` is told of each error that counts, and `log` gets the lines about a lost queue.
    While receives fail, one poller at a time tries again after the back-off (0.5 s, doubling,
    at most 20 s); the others wait for its verdict, so an outage counts one error per attempt.
    """

    def __init__(
        self, sqs: SqsClient, queue_url: str, visibility_timeout: int, report: Report, log: logging.Logger
    ) -> None:
        self.sqs = sqs
        self.url = queue_url
        self.name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.visibility_timeout = visibility_timeout
        self.report = report
        self.log = log
        self.errors = 0
        self.gone = False
        self._retry_at = 0.0
        self._last_error_at = -math.inf
        self._lock = threading.Lock()
        self._probe = threading.Lock()

    def backoff_delay(self) -> float:
        """Seconds to wait after the current run of errors (0.5 s doubling, capped)."""
        if self.errors == 0:
            return 0.0
        return float(min(MAX_BACKOFF_S, 0.5 * 2 ** min(self.errors - 1, 16)))

    @contextlib.contextmanager
    def turn(self, stop: threading.Event) -> Iterator[bool]:
        """Wait until a poller may receive: at once normally; in trouble, after the back-off, one at a time."""
        probing = False
        while not stop.is_set():
            with self._lock:
                delay = self._retry_at - time.monotonic()
                troubled = bool(self.errors or self.gone)
            if delay > 0:
                stop.wait(min(delay, MAX_BACKOFF_S))
            elif not troubled:
                break
            elif self._probe.acquire(blocking=False):
                probing = True
                break
            else:
                stop.wait(TROUBLE_TICK_S)
        try:
            yield not stop.is_set()
        finally:
            if probing:
                self._probe.release()

    def receive(self, want: int, wait_time_seconds: int) -> list[dict[str, Any]]:
        """Receive up to `want` messages; [] after an error, which is reported or counted."""
        started = time.monotonic()
        if self.gone and not self._look_up():
            return []
        try:
            reply = self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=want,
                WaitTimeSeconds=wait_time_seconds,
                VisibilityTimeout=self.visibility_timeout,
                AttributeNames=SYSTEM_ATTRIBUTES,
                MessageSystemAttributeNames=SYSTEM_ATTRIBUTES,
                MessageAttributeNames=["All"],
            )
        except ClientError as exc:
            if _error_codes(exc) & QUEUE_GONE:
                self._lost(exc, started)
            else:
                self._failed(exc, started)
            return []
        except BotoCoreError as exc:
            self._failed(exc, started)
            return []
        if self.errors:
            with self._lock:
                self.errors = 0
                self._retry_at = 0.0
        messages: list[dict[str, Any]] = reply.get("Messages", [])
        return messages

    def _failed(self, exc: Exception, started: float) -> None:
        with self._lock:
            # Receives that were already under way when the first one failed fail too: one error.
            counted = started >= self._last_error_at
            if counted:
                self.errors += 1
                self._last_error_at = time.monotonic()
                self._retry_at = self._last_error_at + self.backoff_delay()
        if counted:
            self.report("receive", exc)

    def _lost(self, exc: Exception, started: float) -> None:
        with self._lock:
            first = not self.gone
            self.gone = True
            self._retry_at = time.monotonic() + LOOKUP_EVERY_S
        if first:
            self.log.warning(
                "queue: %s is gone (%s); looking it up by name every %g s",
                self.name,
                _summary(exc),
                LOOKUP_EVERY_S,
            )
            self.report("receive", exc)

    def _look_up(self) -> bool:
        try:
            url = str(self.sqs.get_queue_url(QueueName=self.name)["QueueUrl"])
        except ClientError as exc:
            if not _error_codes(exc) & QUEUE_GONE:
                self._failed(exc, time.monotonic())
            with self._lock:
                self._retry_at = max(self._retry_at, time.monotonic() + LOOKUP_EVERY_S)
            return False
        except BotoCoreError as exc:
            self._failed(exc, time.monotonic())
            return False
        with self._lock:
            self.url, self.gone, self.errors, self._retry_at = url, False, 0, 0.0
        self.log.info("queue: %s is back at %s", self.name, url)
        return True


def _error_codes(exc: ClientError) -> set[str]:
    error = exc.response.get("Error", {})
    return {str(error.get("Code", "")), str(error.get("QueryErrorCode", ""))}


def _summary(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


def batch_size(http_connections: int) -> int:
    """How many slots a poller waits for before it receives: a full batch of ten, or all there are."""
    return min(MAX_BATCH, http_connections)


def join_all(threads: list[threading.Thread], timeout: float) -> None:
    """Join every thread, all of them within `timeout` seconds in total."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
