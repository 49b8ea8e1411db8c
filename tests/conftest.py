"""Shared fixtures: the real embedded SQS endpoint and real HTTP servers on loopback."""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from labapp import settings
from labapp.runtime.emulator import Emulator
from labapp.runtime.servers import HttpServer
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import QueuePair, ensure_queues
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.options import LAB_PROFILE, SqsdOptions
from labapp.worker import state as worker_state
from labapp.worker.app import create_app

# Tests never touch a learner's ~/.worker-tier-lab: state, ledgers and logs go to a private folder.
os.environ["LAB_HOME"] = tempfile.mkdtemp(prefix="labapp-test-home-")


BACKEND = os.environ.get("LAB_BACKEND", "moto")


@pytest.fixture(scope="session")
def emulator() -> Iterator[Any]:
    """The SQS endpoint for the session: moto in-process, or LocalStack when LAB_BACKEND=localstack."""
    if BACKEND == "localstack":
        from labapp.runtime.endpoint import identify
        from labapp.runtime.localstack import LocalStack

        given = os.environ.get(settings.ENDPOINT_ENV)
        if given and identify(given) == "localstack":  # tools/with_localstack.py started one
            yield SimpleNamespace(url=given)
            return

        with Emulator(port=0) as probe:  # borrow a free port number
            port = probe.port
        with LocalStack(port=port) as localstack:
            yield localstack
        return
    with Emulator(port=0) as emu:
        yield emu


@pytest.fixture(scope="session")
def sqs(emulator: Emulator) -> SqsClient:
    return sqs_client(emulator.url)


@pytest.fixture
def queues(sqs: SqsClient) -> QueuePair:
    """A fresh worker queue + DLQ (MaxRetries of the lab profile) for one test."""
    return ensure_queues(
        sqs, f"t-{uuid.uuid4().hex[:10]}", LAB_PROFILE.MaxRetries, LAB_PROFILE.VisibilityTimeout
    )


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[HttpServer]:
    """The real Flask worker app served by waitress on a free loopback port."""
    app = create_app({"LEDGER_PATH": str(tmp_path / "ledger.sqlite"), "FAILURE_SEED": 7})
    with HttpServer(app, threads=24) as server:
        yield server
    worker_state.of(app).ledger.close()


class RunningDaemon:
    """A daemon running on a thread; stop() joins it."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=daemon.run, args=(self.stop_event,), name="test-daemon")
        self.events: list[Any] = []
        daemon.subscribe(self.events.append)

    def start(self) -> RunningDaemon:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=60)
        self.daemon.close()

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]


@pytest.fixture
def run_daemon(sqs: SqsClient) -> Iterator[Callable[..., RunningDaemon]]:
    """Start a daemon against a queue and an HTTP URL; every one started is stopped in teardown."""
    started: list[RunningDaemon] = []

    def start(
        queue_url: str, http_url: str, options: SqsdOptions = LAB_PROFILE, **kwargs: Any
    ) -> RunningDaemon:
        kwargs.setdefault("wait_time_seconds", 1)
        running = RunningDaemon(Daemon(sqs, options, queue_url=queue_url, http_url=http_url, **kwargs))
        started.append(running)
        return running.start()

    yield start
    for running in started:
        running.stop()


def _wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll predicate until it returns something truthy and return that; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """`wait_for(predicate, timeout=10)`: poll with a deadline instead of sleeping a fixed time."""
    return _wait_for


@pytest.fixture
def run_daemon_with() -> Iterator[Callable[..., RunningDaemon]]:
    """Like run_daemon, but with an SQS client of the test's choosing (another endpoint, hooks)."""
    started: list[RunningDaemon] = []

    def start(
        client: SqsClient, queue_url: str, http_url: str, options: SqsdOptions = LAB_PROFILE, **kwargs: Any
    ) -> RunningDaemon:
        kwargs.setdefault("wait_time_seconds", 1)
        running = RunningDaemon(Daemon(client, options, queue_url=queue_url, http_url=http_url, **kwargs))
        started.append(running)
        return running.start()

    yield start
    for running in started:
        running.stop()
