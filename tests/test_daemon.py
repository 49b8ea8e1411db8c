"""The mini sqsd against the real endpoint and real HTTP servers: every outcome of docs/aws-behaviour.md §3."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labapp.errors import ConfigError
from labapp.runtime.emulator import Emulator
from labapp.runtime.servers import HttpServer
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import QueuePair, depth, ensure_queues, send_messages
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.events import DaemonEvent
from labapp.sqsd.options import LAB_PROFILE, SqsdOptions
from labapp.worker import state as worker_state
from labapp.worker.inspector import RecordedRequest

# Fast retries: a failed message is visible again at once, so a retry takes one receive.
FAST_RETRY = LAB_PROFILE.replace(ErrorVisibilityTimeout=0, VisibilityTimeout=30)


def order(order_id: str) -> str:
    return json.dumps({"type": "order", "order_id": order_id, "amount": 5})


def requests_for(worker: HttpServer, message_id: str) -> list[RecordedRequest]:
    return [
        r for r in worker_state.of(worker.app).inspector.last() if r.header("X-Aws-Sqsd-Msgid") == message_id
    ]


def events(running: Any, kind: str, message_id: str | None = None) -> list[DaemonEvent]:
    return [
        e
        for e in list(running.events)
        if e.kind == kind and (message_id is None or e.message_id == message_id)
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StatusApp:
    """A WSGI app that answers each message with the status its JSON body asks for."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []  # (message id, receive count)
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self.lock:
            self.seen.append(
                (
                    environ.get("HTTP_X_AWS_SQSD_MSGID", ""),
                    int(environ.get("HTTP_X_AWS_SQSD_RECEIVE_COUNT", 0)),
                )
            )
        start_response(f"{json.loads(body)['status']} Lab", [("Content-Length", "0")])
        return [b""]

    def counts(self, message_id: str) -> list[int]:
        with self.lock:
            return [count for mid, count in self.seen if mid == message_id]


@pytest.fixture
def status_app() -> Iterator[tuple[StatusApp, HttpServer]]:
    app = StatusApp()
    with HttpServer(app, threads=8) as server:
        yield app, server


# -- docs/aws-behaviour.md §3: what the application answers --------------------------------------------------
RETRIED = [201, 202, 204, 301, 302, 304, 307, 400, 401, 404, 409, 429, 500, 502, 503]


def test_200_deletes_and_every_other_status_is_retried(
    sqs: SqsClient,
    queues: QueuePair,
    status_app: tuple[StatusApp, HttpServer],
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    app, server = status_app
    ids = {
        status: sqs.send_message(QueueUrl=queues.url, MessageBody=json.dumps({"status": status}))["MessageId"]
        for status in [200, *RETRIED]
    }
    running = run_daemon(queues.url, server.url, FAST_RETRY)
    # Every non-200 comes back and is POSTed again with a higher receive count.
    wait_for(lambda: all(app.counts(ids[s])[:2] == [1, 2] for s in RETRIED), timeout=15)
    wait_for(lambda: events(running, "deleted", ids[200]))
    running.stop()

    assert app.counts(ids[200]) == [1]
    assert [e.message_id for e in events(running, "deleted")] == [ids[200]]
    for status in RETRIED:
        retries = events(running, "retry_scheduled", ids[status])
        assert retries, status
        assert {e.status for e in retries} == {status}
        assert "retry in 0s" in retries[0].detail


def test_accept_any_2xx_is_an_opt_in(
    sqs: SqsClient,
    queues: QueuePair,
    status_app: tuple[StatusApp, HttpServer],
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    app, server = status_app
    ids = {
        s: sqs.send_message(QueueUrl=queues.url, MessageBody=json.dumps({"status": s}))["MessageId"]
        for s in (202, 204, 500)
    }
    running = run_daemon(queues.url, server.url, FAST_RETRY, accept_any_2xx=True)
    wait_for(lambda: len(events(running, "deleted")) == 2)
    wait_for(lambda: app.counts(ids[500])[:2] == [1, 2])
    assert app.counts(ids[202]) == [1]
    assert app.counts(ids[204]) == [1]
    assert not events(running, "deleted", ids[500])


def test_retry_waits_error_visibility_timeout_not_visibility_timeout(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    worker_state.of(worker.app).failures.update(error_rate=1.0, status=503)
    message_id = sqs.send_message(QueueUrl=queues.url, MessageBody=order("evt-1"))["MessageId"]
    options = LAB_PROFILE.replace(ErrorVisibilityTimeout=1, VisibilityTimeout=60)
    run_daemon(queues.url, worker.url, options)
    first, second = wait_for(
        lambda: requests_for(worker, message_id)[:2] if len(requests_for(worker, message_id)) >= 2 else None
    )
    gap = second.at - first.at
    assert 1.0 <= gap < 5.0, gap  # came back after ErrorVisibilityTimeout (1 s), long before 60 s
    assert [first.header("X-Aws-Sqsd-Receive-Count"), second.header("X-Aws-Sqsd-Receive-Count")] == ["1", "2"]
    assert first.status == second.status == 503
    # First-Received-At is the first receive, also on the retry.
    assert first.header("X-Aws-Sqsd-First-Received-At") == second.header("X-Aws-Sqsd-First-Received-At")


def test_worker_slower_than_inactivity_timeout_fails_and_is_retried(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    failures = worker_state.of(worker.app).failures
    failures.update(latency_ms=1500)
    message_id = sqs.send_message(QueueUrl=queues.url, MessageBody=order("slow-1"))["MessageId"]
    # ErrorVisibilityTimeout=1 leaves a second to heal the worker before the retry arrives.
    options = LAB_PROFILE.replace(InactivityTimeout=1, ErrorVisibilityTimeout=1, VisibilityTimeout=30)
    running = run_daemon(queues.url, worker.url, options)
    [timed_out] = wait_for(lambda: events(running, "response", message_id))
    failures.reset()
    assert timed_out.status is None
    assert "no answer within InactivityTimeout" in timed_out.detail
    assert 0.9 <= (timed_out.elapsed or 0) < 3
    wait_for(lambda: events(running, "deleted", message_id), timeout=10)
    assert [e.receive_count for e in events(running, "posted", message_id)] == [1, 2]
    # The slow first attempt still finished on the worker: a duplicate delivery, applied once.
    ledger = worker_state.of(worker.app).ledger
    wait_for(lambda: ledger.deliveries().get("order:slow-1") == 2)
    assert ledger.applications() == {"order:slow-1": 1}


def test_connection_refused_is_retried(
    sqs: SqsClient, queues: QueuePair, run_daemon: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    message_id = sqs.send_message(QueueUrl=queues.url, MessageBody=order("refused-1"))["MessageId"]
    running = run_daemon(queues.url, f"http://127.0.0.1:{closed_port()}", FAST_RETRY)
    retries = wait_for(
        lambda: (
            events(running, "retry_scheduled", message_id)[:2]
            if len(events(running, "retry_scheduled", message_id)) >= 2
            else None
        )
    )
    assert [e.receive_count for e in retries] == [1, 2]
    assert all(e.status is None and "ECONNREFUSED" in e.detail for e in retries)
    assert not events(running, "deleted")


def test_connect_timeout_is_honoured(
    sqs: SqsClient, queues: QueuePair, run_daemon: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    # A socket that listens but never accepts, with its backlog already full: SYNs go unanswered.
    listener = socket.socket()
    fillers = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        message_id = sqs.send_message(QueueUrl=queues.url, MessageBody=order("ct-1"))["MessageId"]
        options = FAST_RETRY.replace(ConnectTimeout=1, InactivityTimeout=30)
        running = run_daemon(queues.url, f"http://127.0.0.1:{port}", options)
        [response] = wait_for(lambda: events(running, "response", message_id)[:1], timeout=10)
        assert response.status is None
        assert "ConnectTimeout" in response.detail
        assert 0.9 <= (response.elapsed or 0) < 3  # ConnectTimeout (1 s), not InactivityTimeout (30 s)
        wait_for(lambda: events(running, "retry_scheduled", message_id))
        running.stop()
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def test_message_older_than_retention_is_deleted_unposted(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    message_id = sqs.send_message(QueueUrl=queues.url, MessageBody=order("old-1"))["MessageId"]
    options = LAB_PROFILE.replace(RetentionPeriod=60)
    running = run_daemon(queues.url, worker.url, options, clock=lambda: time.time() + 10_000)
    wait_for(lambda: events(running, "dropped_by_retention", message_id))
    running.stop()
    assert "posted" not in running.kinds()
    assert worker_state.of(worker.app).inspector.last() == []
    assert running.daemon.counts["dropped"] == 1
    d = depth(sqs, queues)
    assert (d.visible, d.in_flight, d.dead_letter) == (0, 0, 0)


def test_message_within_retention_is_posted(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    sqs.send_message(QueueUrl=queues.url, MessageBody=order("young-1"))
    running = run_daemon(
        queues.url, worker.url, LAB_PROFILE.replace(RetentionPeriod=60), clock=lambda: time.time() + 30
    )
    wait_for(lambda: "deleted" in running.kinds())
    assert "dropped_by_retention" not in running.kinds()


# -- docs/aws-behaviour.md §3-§4: dead-letter queue ----------------------------------------------------------
def test_poison_message_goes_to_the_dlq_after_max_retries_and_blocks_nothing(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    assert queues.max_receive_count == LAB_PROFILE.MaxRetries == 3
    poison = sqs.send_message(
        QueueUrl=queues.url,
        MessageBody="this is not JSON",
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "test"}},
    )["MessageId"]
    good = send_messages(sqs, queues.url, [order(f"ok-{i}") for i in range(5)])
    dlq_depth_at_post: list[int] = []

    def note_dlq(event: DaemonEvent) -> None:
        if event.kind == "posted" and event.message_id == poison:
            dlq_depth_at_post.append(depth(sqs, queues).dead_letter)

    running = run_daemon(queues.url, worker.url, FAST_RETRY)
    running.daemon.subscribe(note_dlq)
    wait_for(lambda: depth(sqs, queues).dead_letter == 1, timeout=15)
    ledger = worker_state.of(worker.app).ledger
    wait_for(lambda: ledger.summary()["applied"] == len(good))
    running.stop()

    attempts = requests_for(worker, poison)
    assert [r.header("X-Aws-Sqsd-Receive-Count") for r in attempts] == ["1", "2", "3"]
    assert {r.status for r in attempts} == {400}
    assert dlq_depth_at_post == [0, 0, 0]  # never in the DLQ before its last allowed attempt
    assert all(len(requests_for(worker, mid)) == 1 for mid in good)
    [dead] = sqs.receive_message(
        QueueUrl=queues.dlq_url, MessageAttributeNames=["All"], AttributeNames=["All"], VisibilityTimeout=0
    )["Messages"]
    assert dead["MessageId"] == poison
    assert dead["Body"] == "this is not JSON"
    assert dead["MessageAttributes"]["origin"]["StringValue"] == "test"
    assert depth(sqs, queues).visible == 0


# -- HttpConnections --------------------------------------------------------------------------------------
def test_connection_limit_is_never_exceeded_and_is_reached(
    emulator: Emulator,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon_with: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    client = sqs_client(emulator.url)
    asked: list[tuple[int, int]] = []  # (MaxNumberOfMessages, POSTs running) per receive
    holder: dict[str, Daemon] = {}

    def note(params: dict[str, Any], **_: Any) -> None:
        if "daemon" in holder:
            asked.append((params["MaxNumberOfMessages"], holder["daemon"].in_flight))

    client.meta.events.register("provide-client-params.sqs.ReceiveMessage", note)
    worker_state.of(worker.app).failures.update(latency_ms=300)
    send_messages(client, queues.url, [order(f"c-{i}") for i in range(12)])
    running = run_daemon_with(client, queues.url, worker.url, LAB_PROFILE.replace(HttpConnections=3))
    holder["daemon"] = running.daemon
    in_flight_at_post: list[int] = []
    running.daemon.subscribe(
        lambda e: in_flight_at_post.append(running.daemon.in_flight) if e.kind == "posted" else None
    )
    wait_for(lambda: running.kinds().count("deleted") == 12, timeout=20)

    concurrency = worker_state.of(worker.app).concurrency.snapshot()
    assert concurrency["peak"] == 3  # reached, never exceeded
    assert max(in_flight_at_post) <= 3
    # A receive asks only for what no POST holds: received messages never wait for a connection.
    assert asked and all(want > 0 and want + running <= 3 for want, running in asked)
    assert worker_state.of(worker.app).ledger.summary()["applied"] == 12


def test_counts_stay_exact_under_many_threads(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    send_messages(sqs, queues.url, [order(f"n-{i}") for i in range(40)])
    running = run_daemon(queues.url, worker.url, LAB_PROFILE.replace(HttpConnections=20))
    wait_for(lambda: running.daemon.counts["deleted"] == 40, timeout=20)
    running.stop()
    assert running.daemon.counts["received"] == 40
    assert running.kinds().count("deleted") == 40


def test_counter_increments_are_atomic(sqs: SqsClient, queues: QueuePair) -> None:
    daemon = Daemon(sqs, LAB_PROFILE, queue_url=queues.url)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to expose lost updates
    try:
        threads = [
            threading.Thread(target=lambda: [daemon._count("received") for _ in range(20_000)])
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old)
        daemon.close()
    assert daemon.counts["received"] == 160_000


# -- one step, events and settings --------------------------------------------------------------------------
def test_poll_once_posts_one_batch(
    sqs: SqsClient, queues: QueuePair, worker: HttpServer, wait_for: Callable[..., Any]
) -> None:
    send_messages(sqs, queues.url, [order(f"p-{i}") for i in range(3)])
    daemon = Daemon(sqs, LAB_PROFILE, queue_url=queues.url, http_url=worker.url)
    seen: list[str] = []
    daemon.subscribe(lambda e: seen.append(e.kind))
    daemon.subscribe(lambda e: 1 / 0)  # a broken listener must not stop the daemon
    try:
        received = 0
        deadline = time.monotonic() + 10
        while received < 3 and time.monotonic() < deadline:
            received += daemon.poll_once(wait_time_seconds=1)
        assert received == 3
        assert daemon.wait_idle(timeout=10)
    finally:
        daemon.close()
    assert seen.count("deleted") == 3
    assert daemon.counts["deleted"] == 3
    assert daemon.in_flight == 0


def test_daemon_settings_are_checked(sqs: SqsClient, queues: QueuePair) -> None:
    with pytest.raises(ConfigError, match="WorkerQueueURL"):
        Daemon(sqs, LAB_PROFILE)
    with pytest.raises(ConfigError, match="encoding"):
        Daemon(sqs, LAB_PROFILE, queue_url=queues.url, encoding="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="wait_time_seconds"):
        Daemon(sqs, LAB_PROFILE, queue_url=queues.url, wait_time_seconds=21)
    daemon = Daemon(sqs, LAB_PROFILE.replace(WorkerQueueURL=queues.url))
    try:
        assert daemon.queue_name == queues.name
        assert daemon.options.HttpConnections == daemon.free_connections
    finally:
        daemon.close()


def test_article_form_encoding_is_refused_by_the_worker_with_a_hint(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    message_id = sqs.send_message(QueueUrl=queues.url, MessageBody=order("form-1"))["MessageId"]
    running = run_daemon(
        queues.url, worker.url, LAB_PROFILE.replace(ErrorVisibilityTimeout=30), encoding="article-form"
    )
    [response] = wait_for(lambda: events(running, "response", message_id))
    assert response.status == 400
    assert "form-encoded" in response.detail


# -- an SQS outage ------------------------------------------------------------------------------------------
def test_endpoint_outage_is_survived(
    queues: QueuePair,
    worker: HttpServer,
    run_daemon_with: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    outage = Emulator(port=0).start()
    try:
        port = outage.port
        client = sqs_client(outage.url)
        pair = ensure_queues(client, f"outage-{uuid.uuid4().hex[:8]}", 3, 30)
        running = run_daemon_with(client, pair.url, worker.url, LAB_PROFILE)
        wait_for(lambda: running.kinds().count("sqs_error") == 0 and running.daemon.state == "running")
        delays: list[float] = []
        running.daemon.subscribe(
            lambda e: delays.append(running.daemon.backoff_delay()) if e.kind == "sqs_error" else None
        )

        outage.stop()
        wait_for(lambda: len(delays) >= 3, timeout=10)  # errors at ~0, 0.5 and 1.5 s
        assert running.thread.is_alive()
        assert delays[:3] == [0.5, 1.0, 2.0]  # the back-off grows

        outage = Emulator(port=port).start()  # same port; moto's state lives on in this process
        send_messages(client, pair.url, [order("after-outage")])
        wait_for(lambda: "deleted" in running.kinds(), timeout=15)
        assert running.daemon.backoff_delay() == 0.0
        assert running.daemon.counts["sqs_errors"] >= 3
        assert all("receive" in e.detail for e in events(running, "sqs_error"))
        running.stop()
    finally:
        outage.stop()


def test_failed_deletes_are_duplicates_later_and_do_not_slow_receiving(
    worker: HttpServer, wait_for: Callable[..., Any]
) -> None:
    with Emulator(port=0) as outage:
        client = sqs_client(outage.url)
        pair = ensure_queues(client, f"deletes-{uuid.uuid4().hex[:8]}", 3, 30)
        send_messages(client, pair.url, [order(f"del-{i}") for i in range(4)])
        daemon = Daemon(client, LAB_PROFILE, queue_url=pair.url, http_url=worker.url)
        errors: list[DaemonEvent] = []
        daemon.subscribe(lambda e: errors.append(e) if e.kind == "sqs_error" else None)
        worker_state.of(worker.app).failures.update(latency_ms=400)
        try:
            received = 0
            while received < 4:
                received += daemon.poll_once(wait_time_seconds=1)
            outage.stop()  # the POSTs succeed, then every delete fails
            assert daemon.wait_idle(timeout=10)
        finally:
            daemon.close()
    assert len(errors) == 4
    assert all(e.detail.startswith("delete:") for e in errors)
    assert daemon.counts["deleted"] == 0
    assert worker_state.of(worker.app).ledger.summary()["applied"] == 4
    assert daemon.backoff_delay() == 0.0  # no receive failed


# -- SIGTERM on the command-line daemon ------------------------------------------------------------------
def test_sigterm_finishes_in_flight_posts_and_loses_nothing(
    emulator: Emulator,
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    n = 10
    inactivity = 5
    worker_state.of(worker.app).failures.update(latency_ms=1000)
    send_messages(sqs, queues.url, [order(f"term-{i}") for i in range(n)])
    command = [
        sys.executable, "-m", "labapp", "daemon",
        "--endpoint-url", emulator.url,
        "--queue-url", queues.url,
        "--http-url", worker.url,
        "--option", "HttpConnections=4",
        "--option", f"InactivityTimeout={inactivity}",
        "--option", "VisibilityTimeout=60",
        "--option", "ErrorVisibilityTimeout=1",
        "--wait-time-seconds", "1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LAB_SHARED_SECRET", None)
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        concurrency = worker_state.of(worker.app).concurrency
        wait_for(lambda: concurrency.snapshot()["now"] >= 2, timeout=20)  # mid-batch
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = process.wait(timeout=inactivity + 10)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log_path.read_text()
    assert code == 0, output
    assert took < inactivity + 3, took
    assert "Traceback" not in output
    assert "stopped cleanly" in output

    # Every POST that reached the worker was answered 200 and applied exactly once.
    ledger = worker_state.of(worker.app).ledger
    recorded = worker_state.of(worker.app).inspector.last()
    assert recorded and {r.status for r in recorded} == {200}
    applied = ledger.applications()
    assert set(ledger.deliveries().values()) == {1}
    assert set(applied.values()) == {1}
    assert 1 <= len(applied) < n

    # Nothing was left invisible, and the rest are still in the queue.
    d = depth(sqs, queues)
    assert d.in_flight == 0
    assert d.visible == n - len(applied)
    remaining: set[str] = set()
    while len(remaining) < n - len(applied):
        reply = sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10, VisibilityTimeout=30)
        remaining |= {json.loads(m["Body"])["order_id"] for m in reply.get("Messages", [])}
    assert remaining | {key.split(":", 1)[1] for key in applied} == {f"term-{i}" for i in range(n)}
    assert not remaining & {key.split(":", 1)[1] for key in applied}


def test_stop_returns_quickly_when_idle(
    queues: QueuePair, worker: HttpServer, run_daemon: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    running = run_daemon(queues.url, worker.url, SqsdOptions(HttpConnections=2))
    wait_for(lambda: running.daemon.state == "running")
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 3
    assert running.daemon.state == "stopped"
