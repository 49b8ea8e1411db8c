"""The one object a notebook uses: its own queues, worker and daemon, and the verbs to drive them."""

from __future__ import annotations

import atexit
import collections
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from labapp import settings
from labapp.errors import LabError, WaitTimeout
from labapp.runtime.stack import Stack
from labapp.runtime.wait import wait_until
from labapp.settings import lab_home
from labapp.sqs.client import sqs_client
from labapp.sqs.queues import Depth, depth, ensure_queues, peek, purge, send_messages
from labapp.sqs.redrive import redrive
from labapp.sqsd.events import DaemonEvent
from labapp.sqsd.log import sqsd_line
from labapp.sqsd.options import LAB_PROFILE, SqsdOptions
from labapp.sqsd.post import ARTICLE_FORM_WARNING, Encoding
from labapp.worker import state as worker_state
from labapp.worker.failures import Failures
from labapp.worker.inspector import RecordedRequest
from labapp.worker.ledger import Ledger

# Short long-polls so stopping a notebook's daemon takes a moment; real sqsd waits up to 20 s
# per receive, which changes only how many ReceiveMessage calls an idle daemon makes.
NOTEBOOK_WAIT_TIME_S = 1

#: The lab each notebook started with `course.start(name)`, so a second start stops the first.
RUNNING: dict[str, Lab] = {}

log = logging.getLogger("labapp.course")

Owned = TypeVar("Owned")


class LogBook(logging.Handler):
    """Keep the last log lines of the worker, the daemon and your own handlers for `logs()`."""

    def __init__(self, capacity: int = 2000) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=capacity)
        self.paused = False

    def emit(self, record: logging.LogRecord) -> None:
        """Keep one formatted line, unless a check is running."""
        if self.paused:
            return
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        self.lines.append(f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}")


class Lab(Stack):
    """One notebook's own queues (`lab-NAME` and its DLQ), worker and daemon, on the shared endpoint.

    It also keeps a log book of the worker's, the daemon's and your own log lines, an sqsd-style
    log file, and when each message was sent (for the age of the oldest), and cleans all of it up
    on stop().
    """

    def __init__(self, name: str, options: SqsdOptions = LAB_PROFILE, encoding: Encoding = "sqsd") -> None:
        super().__init__(
            options,
            queue_name=f"lab-{name}",
            worker_port=0,
            ledger_path=lab_home() / f"lab-{name}-ledger.sqlite",
            wait_time_seconds=NOTEBOOK_WAIT_TIME_S,
            encoding=encoding,
        )
        self.name = name
        self.profile = options
        self.logbook = LogBook()
        self.sqsd_log_path = lab_home() / "logs" / f"lab-{name}" / "aws-sqsd" / "default.log"
        self.sent_at: dict[str, float] = {}
        self.mystery: str | None = None
        self._root_level: int | None = None
        self._owned: list[Any] = []

    # -- starting and stopping ------------------------------------------------------------------
    def start(self) -> Lab:
        """Find or start the endpoint, make fresh queues and a worker, start the daemon, keep the logs."""
        root = logging.getLogger()
        self._root_level = root.level
        root.setLevel(logging.INFO)
        root.addHandler(self.logbook)
        self.sqsd_log_path.parent.mkdir(parents=True, exist_ok=True)
        self.sqsd_log_path.write_text("")
        self.subscribe(self._write_sqsd_line)
        try:
            super().start()
        except BaseException:
            self._release_logging()
            raise
        atexit.register(self.stop)
        return self

    def prepare(self) -> None:
        """Start each run from empty queues and an empty ledger, so a notebook can run twice."""
        purge(self.sqs, self.queues.url)
        purge(self.sqs, self.queues.dlq_url)
        ledger = Ledger(self.ledger_path)
        ledger.clear()
        ledger.close()

    def _delete_queues(self) -> None:
        sqs = sqs_client(self.endpoint.url if self.endpoint else settings.endpoint_url())
        for name in (f"lab-{self.name}", f"lab-{self.name}-dlq"):
            with contextlib.suppress(ClientError):
                sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def fresh_queues(self) -> None:
        """Replace both queues with new, empty ones (a purge is allowed only once a minute)."""
        running = self.daemon is not None
        self.stop_daemon()
        self._delete_queues()
        self.queues = ensure_queues(
            self.sqs, f"lab-{self.name}", self.profile.MaxRetries, self.profile.VisibilityTimeout
        )
        self.options = self.profile
        if running:
            self.start_daemon()

    def own(self, thing: Owned) -> Owned:
        """Close `thing` when the lab stops (a widget made for it, or a server it needs); return it.

        Widgets join the lab they are given by calling this themselves; the notebook only ever
        calls `lab.stop()`. Anything with `close()` (or else `stop()`) can be owned.
        """
        if not any(owned is thing for owned in self._owned):
            self._owned.append(thing)
        return thing

    def _close_owned(self) -> None:
        owned, self._owned = self._owned, []
        # Newest first: a widget may use a helper made before it, never the other way round.
        for thing in reversed(owned):
            closer = getattr(thing, "close", None) or getattr(thing, "stop", None)
            if not callable(closer):
                continue
            try:
                closer()
            except Exception:  # one broken widget must not keep the daemon and worker running
                log.exception("course: closing %r failed; stopping the rest of the lab anyway", thing)

    def stop(self) -> None:
        """Close what the lab owns, stop the daemon and worker, delete the queues, give logging back; safe twice."""
        # First, while the lab still runs: a live widget's last refresh must not meet a stopped lab.
        self._close_owned()
        self.stop_daemon()
        if self.endpoint is not None:
            with contextlib.suppress(LabError, ClientError, BotoCoreError):
                self._delete_queues()  # the next start of this notebook begins with new queues
        super().stop()
        self._release_logging()
        atexit.unregister(self.stop)

    def _release_logging(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.logbook)
        if self._root_level is not None:
            root.setLevel(self._root_level)
            self._root_level = None

    def _write_sqsd_line(self, event: DaemonEvent) -> None:
        line = sqsd_line(event, self.queues.name if hasattr(self, "queues") else "")
        if line:
            with self.sqsd_log_path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    # -- doing things -------------------------------------------------------------------------
    def send(
        self,
        body: str | Mapping[str, Any] | Iterable[str | Mapping[str, Any]],
        count: int = 1,
        attributes: Mapping[str, str | int | float | bytes] | None = None,
        delay_seconds: int = 0,
    ) -> list[str]:
        """Send a message (a dict as JSON, text as it is) `count` times, or a list of them; return the ids.

        The lab remembers when each one left, for the age of the oldest message (course.metrics).
        """
        if isinstance(body, (str, Mapping)):
            text = body if isinstance(body, str) else json.dumps(body)
            bodies = [text] * count
        else:
            bodies = [item if isinstance(item, str) else json.dumps(item) for item in body]
        ids = send_messages(self.sqs, self.queues.url, bodies, attributes, delay_seconds)
        self.sent_at.update(dict.fromkeys(ids, time.time()))
        return ids

    def depth(self) -> Depth:
        """Return visible, in-flight, delayed and dead-letter counts."""
        return depth(self.sqs, self.queues)

    def wait_until_idle(self, timeout: float = 30) -> Depth:
        """Wait until nothing is visible, in flight or being POSTed; return the final depth."""
        last: list[Depth] = []

        def idle() -> bool:
            now = self.depth()
            last[:] = [now]
            busy = self.daemon is not None and self.daemon.in_flight > 0
            return now.visible == 0 and now.in_flight == 0 and now.delayed == 0 and not busy

        try:
            wait_until(idle, timeout, "the queue to drain", interval=0.1)
        except WaitTimeout:
            raise LabError(f"The queue did not drain in {timeout:.0f}s: {last[0]}.") from None
        return last[0]

    @property
    def state(self) -> worker_state.WorkerState:
        """The worker's ledger, failure switch, recorded requests and counters."""
        assert self.worker is not None, "the lab is stopped; start it again"
        return worker_state.of(self.worker.app)

    def requests(self, n: int | None = None) -> list[RecordedRequest]:
        """Return the last n requests the worker received, exactly as they arrived."""
        return list(self.state.inspector.last(n))

    def inject(self, **settings: Any) -> Failures:
        """Change the worker's injected failures live, e.g. inject(error_rate=1.0, status=503)."""
        return self.state.failures.update(**settings)

    def heal(self) -> None:
        """Turn every injected failure off, and restart the worker on its port if it crashed."""
        self.state.failures.reset()
        assert self.worker is not None
        if self.worker.crashed.is_set():
            # As a process supervisor would: the same app, ledger and port, listening again.
            self.worker.stop()
            self.worker.start()

    @property
    def ledger(self) -> Ledger:
        """The worker's idempotency ledger."""
        return self.state.ledger

    def dead_letters(self, max_messages: int = 10) -> list[dict[str, Any]]:
        """Look at the DLQ's oldest messages without receiving them (no receive count changes)."""
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
