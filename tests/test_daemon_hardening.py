"""The daemon against hostile messages, wrong URLs, hung apps, long polls and lost queues."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labapp.runtime.servers import HttpServer
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import QueuePair, depth, send_messages
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.events import DaemonEvent
from labapp.sqsd.options import LAB_PROFILE

FAST_RETRY = LAB_PROFILE.replace(ErrorVisibilityTimeout=0, VisibilityTimeout=30)


def order(order_id: str) -> str:
    return json.dumps({"type": "order", "order_id": order_id, "amount": 5})


def of_kind(running: Any, kind: str, message_id: str | None = None) -> list[DaemonEvent]:
    return [e for e in list(running.events) if e.kind == kind and message_id in (None, e.message_id)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CountingApp:
    """A WSGI app that answers 200 and counts what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.paths.append(environ.get("PATH_INFO", ""))
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]


@pytest.fixture
def counting_app() -> Iterator[tuple[CountingApp, HttpServer]]:
    app = CountingApp()
    with HttpServer(app, threads=4) as server:
        yield app, server


class SilentServer:
    """A TCP server that reads requests and never answers; it counts the connections left open."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.open = self.peak = self.accepted = 0
        self.closed_after: list[float] = []  # seconds from the request to the client's close
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.open += 1
                self.peak = max(self.peak, self.open)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        began = None
        try:
            while conn.recv(65536):
                began = began or time.monotonic()
        except OSError:
            pass
        with self.lock:
            self.open -= 1
            if began is not None:
                self.closed_after.append(time.monotonic() - began)
        conn.close()

    def stop(self) -> None:
        self._stopped = True
        self.sock.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


# -- 1. a message cannot choose another server -------------------------------------------------------
def task_message(path: str) -> dict[str, Any]:
    attributes = {
        "beanstalk.sqsd.path": path,
        "beanstalk.sqsd.task_name": "report",
        "beanstalk.sqsd.scheduled_time": "2026-12-02 01:00:00 UTC",
    }
    return {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}


def test_a_task_path_cannot_send_the_post_to_another_server(
    sqs: SqsClient,
    queues: QueuePair,
    counting_app: tuple[CountingApp, HttpServer],
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="labapp.daemon")
    app, server = counting_app
    thief = CountingApp()
    thief_server = HttpServer(thief, threads=2).start()
    try:
        hostile = [
            f"@127.0.0.1:{thief_server.port}/stolen",
            f"//127.0.0.1:{thief_server.port}/stolen",
            f"/\\127.0.0.1:{thief_server.port}/stolen",
            "/../../etc/passwd",
        ]
        ids = [
            sqs.send_message(QueueUrl=queues.url, MessageBody="x", MessageAttributes=task_message(path))[
                "MessageId"
            ]
            for path in hostile
        ]
        good = sqs.send_message(
            QueueUrl=queues.url, MessageBody="x", MessageAttributes=task_message("/tasks/report")
        )["MessageId"]
        running = run_daemon(queues.url, server.url, FAST_RETRY)
        wait_for(lambda: depth(sqs, queues).dead_letter == len(hostile), timeout=20)
        wait_for(lambda: of_kind(running, "deleted", good))
    finally:
        thief_server.stop()
    assert thief.paths == []
    assert app.paths == ["/tasks/report"]  # only the good task reached the app
    for message_id in ids:
        assert not of_kind(running, "posted", message_id)
        retries = of_kind(running, "retry_scheduled", message_id)
        assert len(retries) == 3 and all("path" in e.detail for e in retries)
    refused = [r.getMessage() for r in caplog.records if "bad-path" in r.getMessage()]
    assert len(refused) == 3 * len(hostile)
    assert all("not POSTed" in line for line in refused)


# -- 2. every outcome is logged ------------------------------------------------------------------------
STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (?P<line>.*)$")


def test_failed_posts_are_logged_in_the_sqsd_format(
    sqs: SqsClient,
    queues: QueuePair,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="labapp.daemon")

    def status_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("503 Busy", [("Content-Length", "0")])
        return [b""]

    with HttpServer(status_app, threads=4) as server:
        message_id = sqs.send_message(QueueUrl=queues.url, MessageBody=order("log-1"))["MessageId"]
        running = run_daemon(queues.url, server.url, FAST_RETRY)
        wait_for(lambda: len(of_kind(running, "retry_scheduled", message_id)) >= 2)
        running.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert f"message: sent to %[{server.url}/]" in lines
    errors = [line for line in lines if line.startswith("http-err:")]
    assert errors[:2] and re.fullmatch(rf"http-err: {message_id} \(1\) 503 - \d+\.\d{{3}}", errors[0])
    assert errors[1].startswith(f"http-err: {message_id} (2) 503 - ")


def test_refused_connections_warn_once_and_say_when_the_app_answers(
    sqs: SqsClient,
    queues: QueuePair,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="labapp.daemon")
    port = closed_port()
    ids = send_messages(sqs, queues.url, [order(f"refused-{i}") for i in range(4)])
    options = FAST_RETRY.replace(ErrorVisibilityTimeout=1)
    running = run_daemon(queues.url, f"http://127.0.0.1:{port}", options)
    wait_for(lambda: len(of_kind(running, "retry_scheduled")) >= 6)
    socket_errors = [r.getMessage() for r in caplog.records if r.getMessage().startswith("socket-err:")]
    assert len(socket_errors) >= 6
    assert all(
        re.fullmatch(r"socket-err: \S+ \(\d+\) .*ECONNREFUSED.* - \d+\.\d{3}", s) for s in socket_errors
    )
    with HttpServer(CountingApp(), port=port, threads=4):
        wait_for(lambda: len(of_kind(running, "deleted")) == len(ids), timeout=15)
        running.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    unreachable = [w for w in warnings if "nothing listens" in w]
    assert len(unreachable) == 1, warnings
    assert f"http://127.0.0.1:{port}/" in unreachable[0] and "--http-url" in unreachable[0]
    recovered = [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
    assert len(recovered) == 1


def test_attach_file_writes_the_sqsd_log_and_shares_the_notebook_format(
    sqs: SqsClient,
    queues: QueuePair,
    counting_app: tuple[CountingApp, HttpServer],
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    from labapp.settings import lab_home
    from labapp.sqsd import log as sqsd_log

    assert sqsd_log.default_log_path() == lab_home() / "logs" / "aws-sqsd" / "default.log"
    _, server = counting_app
    path = tmp_path / "logs" / "aws-sqsd" / "default.log"
    daemon = Daemon(sqs, FAST_RETRY, queue_url=queues.url, http_url=server.url)
    seen: list[DaemonEvent] = []
    daemon.subscribe(seen.append)
    handler = sqsd_log.attach_file(daemon, path)
    try:
        message_id = sqs.send_message(QueueUrl=queues.url, MessageBody=order("file-1"))["MessageId"]
        while not daemon.poll_once(wait_time_seconds=1):
            pass
        assert daemon.wait_idle(timeout=10)
    finally:
        daemon.close()
        daemon.log.removeHandler(handler)
        handler.close()
    file_lines = [STAMPED.fullmatch(line) for line in path.read_text().splitlines()]
    assert all(file_lines), path.read_text()
    bodies = [m.group("line") for m in file_lines if m]
    assert f"message: sent to %[{server.url}/]" in bodies
    # The notebooks' log file formats the same events with the same function.
    notebook = [sqsd_log.sqsd_line(e) for e in seen]
    notebook_bodies = [STAMPED.fullmatch(line).group("line") for line in notebook if line]  # type: ignore[union-attr]
    assert f"message: sent to %[{server.url}/]" in notebook_bodies
    assert any(message_id in line for line in notebook_bodies)


# -- 3. a POST given up on is closed, and counted -------------------------------------------------------
def test_a_post_given_up_on_is_closed_and_counted_as_abandoned(
    sqs: SqsClient,
    queues: QueuePair,
    silent_server: SilentServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    connections = 3
    send_messages(sqs, queues.url, [order(f"hung-{i}") for i in range(12)])
    options = FAST_RETRY.replace(HttpConnections=connections, InactivityTimeout=1)
    running = run_daemon(queues.url, silent_server.url, options)
    wait_for(lambda: running.daemon.counts["abandoned"] >= 9, timeout=20)
    running.stop()
    assert silent_server.peak <= connections  # never more requests open at the app than HttpConnections
    assert silent_server.peak == connections
    # Each given-up request's connection was closed (the app saw the disconnect), never reused.
    wait_for(lambda: silent_server.open == 0, timeout=5)
    assert silent_server.accepted == len(silent_server.closed_after) >= 9
    assert all(0.9 <= took < 2.5 for took in silent_server.closed_after), silent_server.closed_after
    assert running.daemon.counts["abandoned"] == running.daemon.counts["failed"]


# -- 4. stopping during a 20 s long poll ------------------------------------------------------------------
def test_stop_returns_within_a_second_during_a_long_poll_and_loses_nothing(
    emulator: Any, queues: QueuePair, counting_app: tuple[CountingApp, HttpServer]
) -> None:
    _, server = counting_app
    client = sqs_client(emulator.url, read_timeout=40)
    polling = threading.Event()
    client.meta.events.register("before-send.sqs.ReceiveMessage", lambda **_: polling.set())
    daemon = Daemon(
        client, LAB_PROFILE.replace(VisibilityTimeout=60), queue_url=queues.url, http_url=server.url
    )
    released: list[DaemonEvent] = []
    daemon.subscribe(lambda e: released.append(e) if e.kind == "released" else None)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,))
    thread.start()
    try:
        assert polling.wait(10)
        time.sleep(0.3)  # well inside the 20 s long poll
        stop.set()
        began = time.monotonic()
        thread.join(timeout=5)
        took = time.monotonic() - began
        assert not thread.is_alive()
        assert took < 1.5, took
        # A message that the cut-short long poll picks up later is handed back at once.
        message_id = client.send_message(QueueUrl=queues.url, MessageBody=order("late-1"))["MessageId"]
        deadline = time.monotonic() + 10
        got: list[str] = []
        while not got and time.monotonic() < deadline:
            reply = client.receive_message(QueueUrl=queues.url, WaitTimeSeconds=1, VisibilityTimeout=30)
            got = [m["MessageId"] for m in reply.get("Messages", [])]
        assert got == [message_id]  # not lost, and not hidden for VisibilityTimeout (60 s)
    finally:
        stop.set()
        thread.join(timeout=30)
        daemon.close()


# -- 5. a queue that disappears and comes back -------------------------------------------------------------
def test_a_deleted_queue_is_looked_up_again_by_name(
    sqs: SqsClient,
    queues: QueuePair,
    counting_app: tuple[CountingApp, HttpServer],
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="labapp.daemon")
    _, server = counting_app
    running = run_daemon(queues.url, server.url, FAST_RETRY)
    wait_for(lambda: running.daemon.state == "running")
    sqs.delete_queue(QueueUrl=queues.url)
    wait_for(lambda: any("gone" in r.getMessage() for r in caplog.records), timeout=10)
    time.sleep(3)  # several attempts while the queue is missing
    url = sqs.create_queue(QueueName=queues.name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    message_id = sqs.send_message(QueueUrl=url, MessageBody=order("back-1"))["MessageId"]
    wait_for(lambda: of_kind(running, "deleted", message_id), timeout=15)
    running.stop()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("labapp.daemon")]
    gone = [m for m in messages if "gone" in m]
    back = [m for m in messages if "is back" in m]
    assert len(gone) == 1, messages
    assert len(back) == 1, messages
    assert queues.name in gone[0] and url in back[0]
    assert running.daemon.queue_url == url
    assert len(of_kind(running, "sqs_error")) == 1
