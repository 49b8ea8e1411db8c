"""The one object a notebook needs: `lab = labapp.start("02")`, then send, watch and stop."""

from __future__ import annotations

import atexit
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from labapp.config import LAB_PROFILE, SqsdOptions
from labapp.daemon import Daemon, DaemonEvent
from labapp.errors import LabError
from labapp.failures import Failures
from labapp.httpserver import HttpServer
from labapp.inspector import RecordedRequest
from labapp.post import ARTICLE_FORM_WARNING, Encoding
from labapp.queues import Depth, QueuePair, depth, peek, purge, redrive, send_messages, sqs_client
from labapp.stack import Endpoint, find_or_start_endpoint, lab_home
from labapp.worker import create_app

# Short long-polls so stopping a notebook's daemon takes a moment; real sqsd waits up to 20 s
# per receive, which changes only how many ReceiveMessage calls an idle daemon makes.
NOTEBOOK_WAIT_TIME_S = 1


class Lab:
    """One notebook's own queues, worker and daemon, on the shared (or a freshly started) endpoint."""

    def __init__(self, name: str, options: SqsdOptions = LAB_PROFILE, encoding: Encoding = "sqsd") -> None:
        self.name = name
        self.options = options
        self.encoding: Encoding = encoding
        self.endpoint: Endpoint | None = None
        self.queues: QueuePair
        self.worker: HttpServer | None = None
        self.daemon: Daemon | None = None
        self.events: list[DaemonEvent] = []
        self._stop_daemon = threading.Event()
        self._daemon_thread: threading.Thread | None = None
        self._listeners: list[Callable[[DaemonEvent], None]] = []

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> Lab:
        """Find or start the endpoint, make fresh queues and a worker, and start the daemon."""
        try:
            self.endpoint = find_or_start_endpoint()
            self.sqs = sqs_client(self.endpoint.url)
            from labapp.queues import ensure_queues

            self.queues = ensure_queues(
                self.sqs, f"lab-{self.name}", self.options.MaxRetries, self.options.VisibilityTimeout
            )
            purge(self.sqs, self.queues.url)
            purge(self.sqs, self.queues.dlq_url)
            app = create_app({"LEDGER_PATH": str(lab_home() / f"lab-{self.name}-ledger.sqlite")})
            app.extensions["lab.ledger"].clear()
            self.worker = HttpServer(app, threads=max(16, self.options.HttpConnections)).start()
            self.start_daemon()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def start_daemon(self, options: SqsdOptions | None = None, encoding: Encoding | None = None) -> Daemon:
        """(Re)start the daemon, optionally with other sqsd options or the article-form encoding."""
        self.stop_daemon()
        self.options = options or self.options
        self.encoding = encoding or self.encoding
        assert self.worker is not None
        self.daemon = Daemon(
            self.sqs,
            self.options,
            queue_url=self.queues.url,
            http_url=self.worker.url,
            encoding=self.encoding,
            wait_time_seconds=NOTEBOOK_WAIT_TIME_S,
        )
        self.daemon.subscribe(self.events.append)
        for listener in self._listeners:
            self.daemon.subscribe(listener)
        self.worker.app.extensions["lab.daemon"] = self.daemon
        self._stop_daemon = threading.Event()
        self._daemon_thread = threading.Thread(target=self.daemon.run, args=(self._stop_daemon,), name="sqsd")
        self._daemon_thread.start()
        return self.daemon

    def stop_daemon(self) -> None:
        """Stop the daemon the way SIGTERM would: finish in-flight POSTs, release the rest."""
        self._stop_daemon.set()
        if self._daemon_thread is not None:
            self._daemon_thread.join()
            self._daemon_thread = None
        if self.daemon is not None:
            self.daemon.close()
            self.daemon = None

    def stop(self) -> None:
        """Stop everything this notebook started; safe to call twice."""
        self.stop_daemon()
        if self.worker is not None:
            self.worker.stop()
            self.worker.app.extensions["lab.ledger"].close()
            self.worker = None
        if self.endpoint is not None:
            self.endpoint.stop()
            self.endpoint = None
        atexit.unregister(self.stop)

    def subscribe(self, listener: Callable[[DaemonEvent], None]) -> None:
        """Call listener for every daemon event, across daemon restarts."""
        self._listeners.append(listener)
        if self.daemon is not None:
            self.daemon.subscribe(listener)

    # -- doing things -------------------------------------------------------------------------
    def send(
        self,
        body: str | Mapping[str, Any] | Iterable[Mapping[str, Any]],
        count: int = 1,
        attributes: Mapping[str, str | int | float | bytes] | None = None,
        delay_seconds: int = 0,
    ) -> list[str]:
        """Send a message (a dict is sent as JSON) `count` times, or a list of dicts; return the ids."""
        if isinstance(body, (str, Mapping)):
            text = body if isinstance(body, str) else json.dumps(body)
            bodies = [text] * count
        else:
            bodies = [json.dumps(item) for item in body]
        return send_messages(self.sqs, self.queues.url, bodies, attributes, delay_seconds)

    def depth(self) -> Depth:
        """Return visible, in-flight, delayed and dead-letter counts."""
        return depth(self.sqs, self.queues)

    def wait_until_idle(self, timeout: float = 30) -> Depth:
        """Wait until nothing is visible, in flight or being POSTed; return the final depth."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.depth()
            busy = self.daemon is not None and self.daemon.in_flight > 0
            if now.visible == 0 and now.in_flight == 0 and now.delayed == 0 and not busy:
                return now
            if time.monotonic() > deadline:
                raise LabError(f"The queue did not drain in {timeout:.0f}s: {now}.")
            time.sleep(0.1)

    def requests(self, n: int | None = None) -> list[RecordedRequest]:
        """Return the last n requests the worker received, exactly as they arrived."""
        assert self.worker is not None
        return list(self.worker.app.extensions["lab.inspector"].last(n))

    def inject(self, **settings: Any) -> Failures:
        """Change the worker's injected failures live, e.g. inject(error_rate=1.0, status=503)."""
        assert self.worker is not None
        return self.worker.app.extensions["lab.failures"].update(**settings)

    def heal(self) -> None:
        """Turn every injected failure off."""
        assert self.worker is not None
        self.worker.app.extensions["lab.failures"].reset()

    @property
    def ledger(self) -> Any:
        assert self.worker is not None
        return self.worker.app.extensions["lab.ledger"]

    def dead_letters(self, max_messages: int = 10) -> list[dict[str, Any]]:
        """Peek at messages in the DLQ without taking them."""
        return peek(self.sqs, self.queues.dlq_url, max_messages)

    def redrive(self) -> tuple[str, int]:
        """Move DLQ messages back to the worker queue; say how it was done."""
        return redrive(self.sqs, self.queues)

    def __repr__(self) -> str:
        if self.endpoint is None or self.worker is None:
            return f"<Lab {self.name}: stopped>"
        note = f" ({ARTICLE_FORM_WARNING})" if self.encoding == "article-form" else ""
        return (
            f"<Lab {self.name}: {self.endpoint.backend} SQS at {self.endpoint.url}, queue {self.queues.name} "
            f"+ DLQ, worker {self.worker.url}, daemon {self.encoding}{note}>"
        )


def start(name: str, options: SqsdOptions = LAB_PROFILE, encoding: Encoding = "sqsd") -> Lab:
    """Start (or find) the lab for one notebook and print one line about what runs."""
    lab = Lab(name, options, encoding).start()
    print(f"Lab ready: {lab!r}")
    return lab
