"""The one object a notebook needs: `lab = labapp.start("02")`, then send, watch and stop."""

from __future__ import annotations

import atexit
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from labapp.config import LAB_PROFILE, SqsdOptions
from labapp.errors import LabError
from labapp.failures import Failures
from labapp.inspector import RecordedRequest
from labapp.ledger import Ledger
from labapp.post import ARTICLE_FORM_WARNING, Encoding
from labapp.queues import Depth, depth, peek, purge, redrive, send_messages
from labapp.stack import Stack, lab_home

# Short long-polls so stopping a notebook's daemon takes a moment; real sqsd waits up to 20 s
# per receive, which changes only how many ReceiveMessage calls an idle daemon makes.
NOTEBOOK_WAIT_TIME_S = 1


class Lab(Stack):
    """One notebook's own queues, worker and daemon, on the shared (or a freshly started) endpoint."""

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

    def start(self) -> Lab:
        """Find or start the endpoint, make fresh queues and a worker, and start the daemon."""
        super().start()
        atexit.register(self.stop)
        return self

    def prepare(self) -> None:
        """Start each run from empty queues and an empty ledger, so a notebook can run twice."""
        purge(self.sqs, self.queues.url)
        purge(self.sqs, self.queues.dlq_url)
        ledger = Ledger(self.ledger_path)
        ledger.clear()
        ledger.close()

    def stop(self) -> None:
        """Stop everything this notebook started; safe to call twice."""
        super().stop()
        atexit.unregister(self.stop)

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
        """Turn every injected failure off, and restart the worker on its port if it crashed."""
        assert self.worker is not None
        self.worker.app.extensions["lab.failures"].reset()
        if self.worker.crashed.is_set():
            # As a process supervisor would: the same app, ledger and port, listening again.
            self.worker.stop()
            self.worker.start()

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
