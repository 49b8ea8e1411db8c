"""A mini sqsd: receive from SQS, POST to the worker, delete on 200, retry the rest.

The loop follows the worker-environment documentation step by step (docs/aws-behaviour.md#the-post and #outcomes):
receive with long polling (never more messages than free HTTP connections), drop messages older
than RetentionPeriod, POST each one, then delete on 200 or set ErrorVisibilityTimeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from botocore.exceptions import BotoCoreError, ClientError
from requests.adapters import HTTPAdapter

from labapp.errors import ConfigError
from labapp.sqs.client import SqsClient
from labapp.sqs.limits import MAX_BATCH, MAX_WAIT_TIME_S
from labapp.sqsd.events import DaemonEvent, EventKind, Listener
from labapp.sqsd.options import SqsdOptions
from labapp.sqsd.post import ENCODINGS, Encoding, build_post

log = logging.getLogger("labapp.daemon")

MAX_BACKOFF_S = 20.0
COUNTERS = ("received", "deleted", "failed", "dropped", "released", "sqs_errors")


def http_session(connections: int) -> requests.Session:
    """Return a session with one pooled connection per HttpConnections and no default headers."""
    session = requests.Session()
    session.headers.clear()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections, pool_block=True, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Daemon:
    """Poll one queue and POST each message to one HTTP application.

    `sqs` is the SQS client and `options` the sqsd options; `queue_url` overrides WorkerQueueURL;
    `http_url` is where the application listens (on AWS always http://localhost:80); `session`
    the HTTP session (one pooled connection per HttpConnections by default); `clock` the time
    source for events and RetentionPeriod; `encoding` "sqsd", or the seed article's
    "article-form"; `accept_any_2xx` deletes on any 2xx (AWS: only 200); `wait_time_seconds`
    the long poll of each receive; `secret` signs each POST for a worker that checks it.
    """

    def __init__(
        self,
        sqs: SqsClient,
        options: SqsdOptions,
        *,
        queue_url: str | None = None,
        http_url: str = "http://127.0.0.1:80",
        session: requests.Session | None = None,
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
        if isinstance(wait_time_seconds, bool) or not 0 <= wait_time_seconds <= MAX_WAIT_TIME_S:
            raise ConfigError(
                f"wait_time_seconds must be from 0 to {MAX_WAIT_TIME_S} (SQS's long-poll limit); "
                f"got {wait_time_seconds!r}."
            )
        self.sqs = sqs
        self.options = options
        self.queue_url = queue_url
        self.queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.http_url = http_url.rstrip("/")
        self.session = session or http_session(options.HttpConnections)
        self.clock = clock
        self.encoding = encoding
        # AWS deletes only on 200; accepting any 2xx is an opt-in for apps that answer 204.
        self.accept_any_2xx = accept_any_2xx
        self.wait_time_seconds = wait_time_seconds
        self.secret = secret
        self.state = "idle"
        # Pool threads and the polling thread all update these; `_lock` keeps every += whole.
        self.counts = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._busy = 0
        self._busy_changed = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=options.HttpConnections, thread_name_prefix="sqsd-post")
        self._errors_in_a_row = 0

    def __repr__(self) -> str:
        return (
            f"<Daemon {self.queue_name} -> {self.http_url}{self.options.HttpPath}: {self.state}, "
            f"{self.in_flight} in flight, HttpConnections={self.options.HttpConnections}>"
        )

    # -- events -------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call listener for every event from now on; return a function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, kind: EventKind, **fields: Any) -> None:
        event = DaemonEvent(kind=kind, time=self.clock(), **fields)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken widget must not stop message processing
                log.exception("sqsd: listener %r failed on %s", listener, kind)

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    # -- capacity -----------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """How many POSTs are running now."""
        return self._busy

    @property
    def free_connections(self) -> int:
        return self.options.HttpConnections - self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no POST is running; return False on timeout."""
        with self._busy_changed:
            return self._busy_changed.wait_for(lambda: self._busy == 0, timeout=timeout)

    def _wait_for_free_connection(self, stop: threading.Event) -> bool:
        with self._busy_changed:
            while self.free_connections <= 0 and not stop.is_set():
                self._busy_changed.wait(timeout=0.1)
        return not stop.is_set()

    # -- one step -----------------------------------------------------------------------------
    def receive(self, wait_time_seconds: int | None = None) -> list[dict[str, Any]]:
        """Receive at most as many messages as there are free connections, up to ten."""
        want = min(MAX_BATCH, self.free_connections)
        if want <= 0:
            return []
        wait = self.wait_time_seconds if wait_time_seconds is None else wait_time_seconds
        reply = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=want,
            WaitTimeSeconds=wait,
            VisibilityTimeout=self.options.VisibilityTimeout,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = reply.get("Messages", [])
        for message in messages:
            self._count("received")
            self._emit(
                EventKind.RECEIVED, message_id=message["MessageId"], receive_count=_receive_count(message)
            )
        return messages

    def poll_once(self, wait_time_seconds: int | None = None) -> int:
        """Receive one batch and start a POST for each message; return how many were received."""
        try:
            messages = self.receive(wait_time_seconds)
        except (BotoCoreError, ClientError) as exc:
            self._sqs_error("receive", exc)
            return 0
        self._receive_succeeded()
        for message in messages:
            self._start(message)
        return len(messages)

    def _start(self, message: dict[str, Any]) -> None:
        with self._busy_changed:
            self._busy += 1
        self._pool.submit(self._process, message)

    def _process(self, message: dict[str, Any]) -> None:
        try:
            if self._older_than_retention(message):
                self._drop(message)
            else:
                self._deliver(message)
        except Exception:  # one bad message must never kill a pool thread silently
            log.exception("sqsd: unexpected error on message %s", message.get("MessageId"))
        finally:
            with self._busy_changed:
                self._busy -= 1
                self._busy_changed.notify_all()

    def _older_than_retention(self, message: dict[str, Any]) -> bool:
        first_ms = int(message.get("Attributes", {}).get("ApproximateFirstReceiveTimestamp", 0))
        return first_ms > 0 and self.clock() - first_ms / 1000 > self.options.RetentionPeriod

    def _drop(self, message: dict[str, Any]) -> None:
        if self._delete(message):
            self._count("dropped")
            self._emit(
                EventKind.DROPPED_BY_RETENTION,
                message_id=message["MessageId"],
                receive_count=_receive_count(message),
            )

    def _deliver(self, message: dict[str, Any]) -> None:
        message_id = message["MessageId"]
        post = build_post(message, self.queue_name, self.options, self.encoding, self.secret)
        self._emit(EventKind.POSTED, message_id=message_id, receive_count=_receive_count(message), post=post)
        started = time.monotonic()
        try:
            response = self.session.post(
                self.http_url + post.path,
                data=post.body,
                headers=_wire_headers(post.headers),
                timeout=(self.options.ConnectTimeout, self.options.InactivityTimeout),
                allow_redirects=False,
            )
            status: int | None = response.status_code
            detail = response.text[:200]
            response.close()
        except requests.Timeout as exc:
            status, detail = None, f"timeout: {type(exc).__name__}"
        except requests.ConnectionError as exc:
            status, detail = None, f"connection error: {type(exc).__name__}"
        except (requests.RequestException, ValueError) as exc:
            # e.g. an attribute value with a line break cannot be a header: fail and retry like AWS.
            status, detail = None, f"request error: {type(exc).__name__}: {str(exc)[:150]}"
        elapsed = time.monotonic() - started
        self._emit(EventKind.RESPONSE, message_id=message_id, status=status, elapsed=elapsed, detail=detail)
        if status == 200 or (self.accept_any_2xx and status is not None and 200 <= status < 300):
            if self._delete(message):
                self._count("deleted")
                self._emit(EventKind.DELETED, message_id=message_id, elapsed=elapsed)
        else:
            self._count("failed")
            self._retry_later(message, status, detail)

    def _delete(self, message: dict[str, Any]) -> bool:
        try:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            return True
        except (BotoCoreError, ClientError) as exc:
            # The message stays in the queue and comes back: a duplicate, never a loss.
            self._sqs_error("delete", exc, message["MessageId"])
            return False

    def _retry_later(self, message: dict[str, Any], status: int | None, detail: str) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=self.options.ErrorVisibilityTimeout,
            )
        except (BotoCoreError, ClientError) as exc:
            # Without the change the message still returns, after VisibilityTimeout instead.
            self._sqs_error("change_message_visibility", exc, message["MessageId"])
        self._emit(
            EventKind.RETRY_SCHEDULED,
            message_id=message["MessageId"],
            receive_count=_receive_count(message),
            status=status,
            detail=f"retry in {self.options.ErrorVisibilityTimeout}s ({detail or status})",
        )

    def release(self, messages: list[dict[str, Any]]) -> None:
        """Make received but unstarted messages visible again at once (used when stopping)."""
        for message in messages:
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
                self._count("released")
                self._emit(EventKind.RELEASED, message_id=message["MessageId"])
            except (BotoCoreError, ClientError) as exc:
                self._sqs_error("release", exc, message["MessageId"])

    def _sqs_error(self, action: str, exc: Exception, message_id: str | None = None) -> None:
        with self._lock:
            self.counts["sqs_errors"] += 1
            # Only failed receives slow the polling down; a failed delete or visibility change
            # just means a duplicate later, and must not push the next receive out.
            if action == "receive":
                self._errors_in_a_row += 1
        summary = str(exc).splitlines()[0][:200]
        log.warning("sqsd: %s failed: %s", action, summary)
        self._emit(EventKind.SQS_ERROR, message_id=message_id, detail=f"{action}: {summary}")

    def _receive_succeeded(self) -> None:
        with self._lock:
            self._errors_in_a_row = 0

    def backoff_delay(self) -> float:
        """Seconds to wait after the current run of SQS errors (0.5 s doubling, capped)."""
        errors = self._errors_in_a_row
        if errors == 0:
            return 0.0
        return float(min(MAX_BACKOFF_S, 0.5 * 2 ** min(errors - 1, 16)))

    # -- the loop -----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Poll until stop is set, then let in-flight POSTs finish and release what was not started."""
        self.state = "running"
        log.info("sqsd: polling %s, posting to %s%s", self.queue_name, self.http_url, self.options.HttpPath)
        while not stop.is_set():
            if not self._wait_for_free_connection(stop):
                break
            try:
                messages = self.receive()
            except (BotoCoreError, ClientError) as exc:
                self._sqs_error("receive", exc)
                stop.wait(self.backoff_delay())
                continue
            self._receive_succeeded()
            if stop.is_set():
                # Received while we were asked to stop: hand them back instead of starting them.
                self.release(messages)
                break
            for message in messages:
                self._start(message)
        self.state = "draining"
        grace = self.options.ConnectTimeout + self.options.InactivityTimeout + 1
        if not self.wait_idle(timeout=grace):
            log.warning("sqsd: %d POSTs still running after %ss", self._busy, grace)
        self.state = "stopped"

    def close(self) -> None:
        """Release the worker threads and HTTP connections."""
        self._pool.shutdown(wait=True)
        self.session.close()


def _wire_headers(headers: dict[str, str]) -> dict[str, str | bytes]:
    # http.client encodes header values as Latin-1 and fails beyond it; an attribute such as
    # "café ☕" is legal in SQS, so every non-ASCII value goes out as its UTF-8 bytes.
    return {name: value if value.isascii() else value.encode("utf-8") for name, value in headers.items()}


def _receive_count(message: dict[str, Any]) -> int:
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
