"""A mini sqsd: receive from SQS, POST to the worker, delete on 200, retry the rest.

The loop follows the documentation step by step (docs/aws-behaviour.md#post-body, #retention-drop,
#status-200-deletes, #status-other-retried): receive with long polling, drop messages older than
RetentionPeriod, POST each one (at most HttpConnections at once), delete on 200 or set
ErrorVisibilityTimeout. Receiving, the wire, the workers and the batched calls are in poller,
transport, workers and batcher.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from labapp.errors import ConfigError, MessageError
from labapp.sqs.client import SqsClient
from labapp.sqs.limits import MAX_BATCH, check_wait_time
from labapp.sqsd.batcher import Batcher, Entry, change_visibility_batch, delete_batch, send_now
from labapp.sqsd.events import DaemonEvent, EventKind, Listener
from labapp.sqsd.log import LEVELS, describe
from labapp.sqsd.options import SqsdOptions
from labapp.sqsd.poller import Receiver, Slots, batch_size, join_all, poller_count
from labapp.sqsd.post import ENCODINGS, Encoding, build_post
from labapp.sqsd.transport import Failure, Pool, Target
from labapp.sqsd.workers import Workers

log = logging.getLogger("labapp.daemon")

COUNTERS = ("received", "deleted", "failed", "dropped", "released", "sqs_errors", "abandoned", "reposted")
#: How often a message is POSTed again at once when the app closes the connection without answering.
MAX_REPOSTS = 3
#: How long run() waits for its pollers after stop; one inside a 20 s long poll is not waited for.
STOP_GRACE_S = 0.5
#: Batches received beyond HttpConnections while POSTs are quick (workers.QUICK_S), so the next
#: ones are there when a POST ends; none with a slower app, so none waits long while invisible.
AHEAD_BATCHES = 2


class Daemon:
    """Poll one queue and POST each message to one HTTP application.

    `sqs` is the SQS client and `options` the sqsd options; `queue_url` overrides WorkerQueueURL;
    `http_url` is where the application listens (on AWS always http://localhost:80, here any
    http:// URL, with an optional base path); `clock` the time source for events and
    RetentionPeriod; `encoding` "sqsd", or the seed article's "article-form"; `accept_any_2xx`
    deletes on any 2xx (AWS: only 200); `wait_time_seconds` the long poll of each receive;
    `secret` signs each POST for a worker that checks it.
    """

    def __init__(
        self,
        sqs: SqsClient,
        options: SqsdOptions,
        *,
        queue_url: str | None = None,
        http_url: str = "http://127.0.0.1:80",
        clock: Callable[[], float] = time.time,
        encoding: Encoding = "sqsd",
        accept_any_2xx: bool = False,
        wait_time_seconds: int = 20,
        secret: str | None = None,
    ) -> None:
        queue_url = queue_url or options.WorkerQueueURL
        if not queue_url:
            raise ConfigError("WorkerQueueURL is not set; pass --queue-url or set it in the config file.")
        if encoding not in ENCODINGS:
            raise ConfigError(f"encoding must be 'sqsd' or 'article-form'; got {encoding!r}.")
        check_wait_time(wait_time_seconds)
        self.target = Target.parse(http_url)
        self.sqs = sqs
        self.options = options
        self.queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.http_url = http_url.rstrip("/")
        self.clock = clock
        self.encoding = encoding
        # AWS deletes only on 200; accepting any 2xx is an opt-in for apps that answer 204.
        self.accept_any_2xx = accept_any_2xx
        self.wait_time_seconds = wait_time_seconds
        self.secret = secret
        self.state = "idle"
        self.log = log.getChild(self.queue_name)
        self.pollers = poller_count(options.HttpConnections, sqs)
        self.counts = dict.fromkeys(COUNTERS, 0)  # updated from many threads, under `_lock`
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._stopping = threading.Event()
        self._pollers: list[threading.Thread] = []  # the last run()'s receive loops
        batch = batch_size(options.HttpConnections)
        self._slots = Slots(
            options.HttpConnections, batch, lambda: AHEAD_BATCHES * batch if self._workers.quick else 0
        )
        self._receiver = Receiver(sqs, queue_url, options.VisibilityTimeout, self._sqs_error, self.log)
        self._http = Pool(
            self.target, options.HttpConnections, options.ConnectTimeout, options.InactivityTimeout, self.log
        )
        self._workers = Workers(options.HttpConnections, self._process)
        self._deletes = Batcher(sqs, delete_batch, "deletes")
        self._visibility = Batcher(sqs, change_visibility_batch, "visibility")

    def __repr__(self) -> str:
        return (
            f"<Daemon {self.queue_name} -> {self.http_url}{self.options.HttpPath}: {self.state}, "
            f"{self.in_flight} in flight, HttpConnections={self.options.HttpConnections}>"
        )

    @property
    def queue_url(self) -> str:
        """The queue's URL; it changes when a lost queue is found again under its name."""
        return self._receiver.url

    # -- events -------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call listener for every event from now on; return a function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, kind: EventKind, level: int | None = None, **fields: Any) -> None:
        level = LEVELS[kind] if level is None else level
        logged = self.log.isEnabledFor(level)
        if not logged and not self._listeners:
            return  # nobody listens: no event object, no line
        event = DaemonEvent(kind=kind, time=self.clock(), **fields)
        if logged and (line := describe(event)):
            self.log.log(level, "%s", line)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken widget must not stop message processing
                self.log.exception("sqsd: listener %r failed on %s", listener, kind)

    def _count(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.counts[name] += by

    def _entry(
        self, message: dict[str, Any], done: Callable[[Exception | None], None], visibility: int = 0
    ) -> Entry:
        return Entry(message["MessageId"], message["ReceiptHandle"], self.queue_url, done, visibility)

    # -- capacity -----------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """How many messages are being POSTed (or dropped) now; never more than HttpConnections."""
        return self._workers.running

    @property
    def held(self) -> int:
        """Received messages not finished yet: being POSTed, or received ahead and waiting."""
        return self._workers.held

    @property
    def free_connections(self) -> int:
        """HttpConnections not held by a POST or by a receive under way."""
        return self._slots.free

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no POST runs and every delete and visibility change is sent; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._workers.wait_idle(timeout):
            return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._deletes.flush(left) and self._visibility.flush(left)

    # -- one step -----------------------------------------------------------------------------
    def _receive(self, want: int, wait_time_seconds: int) -> list[dict[str, Any]]:
        messages = self._receiver.receive(want, wait_time_seconds)
        if messages:
            self._count("received", len(messages))
            for message in messages:
                self._emit(
                    EventKind.RECEIVED, message_id=message["MessageId"], receive_count=_receive_count(message)
                )
        return messages

    def poll_once(self, wait_time_seconds: int | None = None) -> int:
        """Receive one batch (no more than the free connections) and start a POST for each message."""
        wait = self.wait_time_seconds if wait_time_seconds is None else wait_time_seconds
        taken = self._slots.take(MAX_BATCH)
        if not taken:
            return 0
        messages = self._receive(taken, wait)
        self._slots.give(taken - len(messages))
        for message in messages:
            self._workers.submit(message)
        return len(messages)

    def _process(self, message: dict[str, Any], handed_at: float) -> None:
        try:
            waited = time.monotonic() - handed_at
            if self._stopping.is_set():
                self.release([message])  # received ahead, still waiting: not started after stop
            elif self.options.VisibilityTimeout and waited >= self.options.VisibilityTimeout:
                # Received ahead and kept waiting by a sudden slow app: SQS shows it again
                # already, so the next receive delivers it (at least once, not twice at once).
                self.log.info(
                    "late: %s waited %.1f s; left to the next receive", message["MessageId"], waited
                )
            elif self._older_than_retention(message):
                self._drop(message)
            else:
                self._deliver(message)
        except Exception:  # one bad message must never kill a pool thread silently
            self.log.exception("sqsd: unexpected error on message %s", message.get("MessageId"))
        finally:
            self._slots.give(1)

    def _older_than_retention(self, message: dict[str, Any]) -> bool:
        first_ms = int(message.get("Attributes", {}).get("ApproximateFirstReceiveTimestamp", 0))
        return first_ms > 0 and self.clock() - first_ms / 1000 > self.options.RetentionPeriod

    def _drop(self, message: dict[str, Any]) -> None:
        # docs/aws-behaviour.md#retention-drop: deleted without a POST.
        age = self.clock() - int(message["Attributes"]["ApproximateFirstReceiveTimestamp"]) / 1000
        began, fields = (
            time.monotonic(),
            {"message_id": message["MessageId"], "receive_count": _receive_count(message)},
        )

        def dropped(error: Exception | None) -> None:
            if error is not None:
                return self._sqs_error("delete", error, message["MessageId"])
            self._count("dropped")
            detail = f"was first received {age:.0f} seconds ago. deleting"
            self._emit(
                EventKind.DROPPED_BY_RETENTION, detail=detail, elapsed=time.monotonic() - began, **fields
            )

        self._deletes.add(self._entry(message, dropped))

    def _deliver(self, message: dict[str, Any]) -> None:
        message_id, count = message["MessageId"], _receive_count(message)
        try:
            post = build_post(message, self.queue_name, self.options, self.encoding, self.secret)
        except MessageError as exc:
            self._count("failed")
            self.log.warning("bad-path: %s (%d) %s; not POSTed, to be retried", message_id, count, exc)
            self._retry_later(message, None, str(exc))
            return
        for attempt in range(MAX_REPOSTS + 1):
            self._emit(
                EventKind.POSTED,
                message_id=message_id,
                receive_count=count,
                post=post,
                url=self.target.url(post.path),
            )
            reply = self._http.post(post)
            level = logging.DEBUG if reply.status == 200 else logging.INFO
            self._emit(
                EventKind.RESPONSE,
                level,
                message_id=message_id,
                receive_count=count,
                status=reply.status,
                elapsed=reply.elapsed,
                detail=reply.text(),
            )
            # sqsd POSTs again at once, uncounted, when the app closes the connection without
            # answering: usually a kept-alive socket the app had just dropped. sqsd does it
            # forever; a bound turns an app that crashes on one message into a failure (and so,
            # after MaxRetries, the DLQ) instead of a hot loop of re-POSTs.
            if reply.failure is not Failure.CLOSED or attempt == MAX_REPOSTS:
                break
            self._count("reposted")
        if reply.status == 200 or (
            self.accept_any_2xx and reply.status is not None and 200 <= reply.status < 300
        ):
            self._deletes.add(
                self._entry(message, functools.partial(self._deleted, message_id, reply.elapsed))
            )
            return
        self._count("failed")
        if reply.failure is Failure.INACTIVITY:
            self._count("abandoned")
        self._retry_later(message, reply.status, reply.text())

    def _deleted(self, message_id: str, elapsed: float, error: Exception | None) -> None:
        if error is not None:
            # The message stays in the queue and comes back: a duplicate, never a loss.
            self._sqs_error("delete", error, message_id)
            return
        self._count("deleted")
        self._emit(EventKind.DELETED, message_id=message_id, elapsed=elapsed)

    def _retry_later(self, message: dict[str, Any], status: int | None, detail: str) -> None:
        message_id, count = message["MessageId"], _receive_count(message)
        delay = self.options.ErrorVisibilityTimeout

        def scheduled(error: Exception | None) -> None:
            if error is not None:
                # Without the change the message still returns, after VisibilityTimeout instead.
                self._sqs_error("change_message_visibility", error, message_id)
            self._emit(
                EventKind.RETRY_SCHEDULED,
                message_id=message_id,
                receive_count=count,
                status=status,
                detail=f"retry in {delay}s ({detail or status})",
            )

        self._visibility.add(self._entry(message, scheduled, delay))

    def release(self, messages: list[dict[str, Any]]) -> None:
        """Make received but unstarted messages visible again at once (used when stopping)."""
        entries = [self._entry(m, functools.partial(self._released, m["MessageId"])) for m in messages]
        send_now(self.sqs, change_visibility_batch, entries)

    def _released(self, message_id: str, error: Exception | None) -> None:
        if error is not None:
            self._sqs_error("release", error, message_id)
            return
        self._count("released")
        self._emit(EventKind.RELEASED, message_id=message_id)

    def _sqs_error(self, action: str, exc: Exception, message_id: str | None = None) -> None:
        if action == "receive" and self._stopping.is_set():
            return  # a long poll left behind at stop whose endpoint has gone since: nothing to do
        self._count("sqs_errors")
        summary = str(exc).splitlines()[0][:200]
        self._emit(EventKind.SQS_ERROR, message_id=message_id, detail=f"{action}: {summary}")

    def backoff_delay(self) -> float:
        """Seconds to wait after the current run of failed receives (0.5 s doubling, capped)."""
        return self._receiver.backoff_delay()

    # -- the loop -----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Poll until stop is set, then let in-flight POSTs finish and send the pending deletes."""
        self.state = "running"
        self._stopping.clear()
        # sqsd writes "start: polling <url>"; `labapp daemon`'s callers wait for this wording.
        self.log.info(
            "sqsd: polling %s, posting to %s", self.queue_name, self.target.url(self.options.HttpPath)
        )
        pollers = [
            threading.Thread(target=self._poll, args=(stop,), name=f"sqsd-poll-{i}", daemon=True)
            for i in range(self.pollers)
        ]
        for poller in pollers:
            poller.start()
        self._pollers = pollers
        while not stop.wait(1.0):
            pass
        self.state = "draining"
        self._stopping.set()
        self._slots.wake()
        # A poller inside a long poll may take 20 s to come back: it is not waited for, and hands
        # back whatever that receive still brings (see _poll).
        join_all(pollers, STOP_GRACE_S)
        grace = self.options.ConnectTimeout + self.options.InactivityTimeout + 1
        if not self.wait_idle(timeout=grace):
            self.log.warning("drain: %d POSTs still running after %ss", self.in_flight, grace)
        self.log.info("stop: stopping the daemon %s", self.counts)
        self.state = "stopped"

    def _poll(self, stop: threading.Event) -> None:
        """One receive loop: take a full batch of free slots, receive, start a POST for each message."""
        while not stop.is_set():
            messages: list[dict[str, Any]] = []
            taken = 0
            with self._receiver.turn(stop) as go:
                if not go:
                    break
                taken = self._slots.take(MAX_BATCH, stop)
                if taken:
                    messages = self._receive(taken, self.wait_time_seconds)
            if stop.is_set():
                self._slots.give(taken)
                # Received after stop: handed back at once (visibility 0) rather than POSTed.
                # Should the process end before this receive returns, SQS shows them again
                # after VisibilityTimeout instead: delivered later, at least once, never lost.
                if messages:
                    self.release(messages)
                break
            self._slots.give(taken - len(messages))
            for message in messages:
                self._workers.submit(message)

    def close(self, wait_for_receives: bool = True) -> None:
        """Finish the POSTs, send the pending deletes and visibility changes, close the connections.

        `wait_for_receives` first waits out a long poll run() left running (a receive counts toward
        maxReceiveCount, so the next daemon must be the only one receiving); the CLI exits at once.
        """
        if wait_for_receives:
            join_all(self._pollers, self.wait_time_seconds + self.options.ConnectTimeout)
        self._workers.close()
        self._deletes.close()
        self._visibility.close()
        self._http.close()


def _receive_count(message: dict[str, Any]) -> int:
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
