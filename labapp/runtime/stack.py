"""The lab stack in one process: an SQS endpoint, EB-style queues, and one worker instance."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from labapp import settings
from labapp.runtime.endpoint import Endpoint, find_or_start_endpoint
from labapp.runtime.instance import Instance
from labapp.runtime.servers import HttpServer
from labapp.sqs.client import sqs_client
from labapp.sqs.queues import QueuePair, ensure_queues
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.events import DaemonEvent, Listener
from labapp.sqsd.options import LAB_PROFILE, SqsdOptions
from labapp.sqsd.post import Encoding

WORKER_QUEUE = "lab-worker-queue"


class Stack:
    """Endpoint, EB-style queues, the worker app and one daemon, all in this process.

    Parameters: `options` the sqsd options (the lab profile by default); `endpoint_url` the SQS
    endpoint to use or start (LAB_ENDPOINT_URL by default); `queue_name` the worker queue (its
    DLQ is `<name>-dlq`); `worker_port` 0 for any free port; `ledger_path` the worker's ledger
    (in the lab home by default); `wait_time_seconds` the daemon's long poll; `backend` the
    emulator to start when nothing answers; `encoding` "sqsd", or the seed article's "article-form".
    Set `app` before start() to serve another WSGI app in place of the kit's worker.
    """

    queues: QueuePair  # set by start()

    def __init__(
        self,
        options: SqsdOptions = LAB_PROFILE,
        *,
        endpoint_url: str | None = None,
        queue_name: str = WORKER_QUEUE,
        worker_port: int = settings.WORKER_PORT,
        ledger_path: Path | None = None,
        wait_time_seconds: int = 2,
        backend: str = "moto",
        encoding: Encoding = "sqsd",
    ) -> None:
        self.options = options
        self.encoding: Encoding = encoding
        self.endpoint_url = endpoint_url
        self.queue_name = queue_name
        self.worker_port = worker_port
        self.ledger_path = ledger_path or settings.lab_home() / f"{queue_name}-ledger.sqlite"
        self.wait_time_seconds = wait_time_seconds
        self.backend = backend
        self.endpoint: Endpoint | None = None
        self.instance: Instance | None = None
        self.app: Any = None
        self.events: list[DaemonEvent] = []
        self._listeners: list[Listener] = [self.events.append]

    @property
    def worker(self) -> HttpServer | None:
        """The worker app's server, or None when the stack is stopped."""
        return self.instance.server if self.instance is not None else None

    @property
    def daemon(self) -> Daemon | None:
        """The running daemon, or None."""
        return self.instance.daemon if self.instance is not None else None

    def start(self) -> Stack:
        """Start every part, stopping whatever already started if a later part fails."""
        try:
            self.endpoint = find_or_start_endpoint(self.endpoint_url, backend=self.backend)
            self.sqs = sqs_client(self.endpoint.url)
            self.queues = ensure_queues(
                self.sqs, self.queue_name, self.options.MaxRetries, self.options.VisibilityTimeout
            )
            self.prepare()
            self.instance = Instance(
                self.sqs,
                self.queues.url,
                self.options,
                app=self.app,
                ledger_path=self.ledger_path,
                port=self.worker_port,
                wait_time_seconds=self.wait_time_seconds,
                encoding=self.encoding,
            )
            for listener in self._listeners:
                self.instance.subscribe(listener)
            self.instance.start()
        except BaseException:
            self.stop()
            raise
        return self

    def recreate_queues(self) -> None:
        """Make the queues again on an endpoint that lost them (a restarted emulator), and restart the daemon."""
        assert self.endpoint is not None, "start() the stack first"
        self.queues = ensure_queues(
            self.sqs, self.queue_name, self.options.MaxRetries, self.options.VisibilityTimeout
        )
        if self.instance is not None:
            # A daemon still polling the old queue would only ever hear NonExistentQueue.
            self.start_daemon()

    def prepare(self) -> None:
        """Hook between making the queues and starting the worker (a notebook empties them here)."""

    def start_daemon(self, options: SqsdOptions | None = None, encoding: Encoding | None = None) -> Daemon:
        """(Re)start the daemon, optionally with other sqsd options or the article-form encoding."""
        assert self.instance is not None, "start() the stack first"
        self.options = options or self.options
        self.encoding = encoding or self.encoding
        self.instance.queue_url = self.queues.url
        return self.instance.start_daemon(self.options, self.encoding)

    def stop_daemon(self) -> None:
        """Stop the daemon the way SIGTERM would: finish in-flight POSTs, release the rest."""
        if self.instance is not None:
            self.instance.stop_daemon()

    def subscribe(self, listener: Listener) -> None:
        """Call listener for every daemon event, across daemon restarts."""
        self._listeners.append(listener)
        if self.instance is not None:
            self.instance.subscribe(listener)

    def stop(self) -> None:
        """Stop the daemon (draining), then the worker, then the endpoint if this process owns it."""
        if self.instance is not None:
            self.instance.stop()
            self.instance = None
        if self.endpoint is not None:
            self.endpoint.stop()
            self.endpoint = None

    def describe(self) -> dict[str, Any]:
        """Return what a client needs to find this stack."""
        assert self.endpoint and self.worker
        return {
            "pid": os.getpid(),
            "endpoint_url": self.endpoint.url,
            "backend": self.endpoint.backend,
            "owns_endpoint": self.endpoint.emulator is not None,
            "endpoint_pid": self.endpoint.pid,
            "queue": self.queues.name,
            "queue_url": self.queues.url,
            "dlq_url": self.queues.dlq_url,
            "worker_url": self.worker.url,
            "ledger": str(self.ledger_path),
            "started_at": time.time(),
        }
