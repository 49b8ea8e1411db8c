"""How the daemon uses SQS at scale: several receive loops, and deletes and visibility changes in batches."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from labapp.runtime.servers import HttpServer
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import QueuePair, depth, send_messages
from labapp.sqsd.batcher import Entry, change_visibility_batch, delete_batch
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.options import LAB_PROFILE

FAST_RETRY = LAB_PROFILE.replace(ErrorVisibilityTimeout=0, VisibilityTimeout=30)


def job(n: int, status: int = 200) -> str:
    return json.dumps({"n": n, "status": status})


def status_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response(f"{json.loads(body)['status']} Lab", [("Content-Length", "0")])
    return [b""]


class Calls:
    """Count each SQS operation a client makes, and how many receives run at once."""

    def __init__(self, client: SqsClient) -> None:
        self.counts: Counter[str] = Counter()
        self.receiving = self.peak_receiving = 0
        self.lock = threading.Lock()
        client.meta.events.register("before-call.sqs", self._before)
        client.meta.events.register("after-call.sqs", self._after)

    def _before(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.counts[model.name] += 1
            if model.name == "ReceiveMessage":
                self.receiving += 1
                self.peak_receiving = max(self.peak_receiving, self.receiving)

    def _after(self, model: Any, **_: Any) -> None:
        if model.name == "ReceiveMessage":
            with self.lock:
                self.receiving -= 1


def test_deletes_and_visibility_changes_go_ten_per_call(
    emulator: Any, queues: QueuePair, run_daemon_with: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    client = sqs_client(emulator.url)
    calls = Calls(client)
    with HttpServer(status_app, threads=12) as server:
        send_messages(client, queues.url, [job(i, 200 if i % 3 else 500) for i in range(30)])
        running = run_daemon_with(
            client, queues.url, server.url, LAB_PROFILE.replace(ErrorVisibilityTimeout=30)
        )
        wait_for(
            lambda: running.daemon.counts["deleted"] == 20 and running.kinds().count("retry_scheduled") == 10
        )
        running.stop()
    assert calls.counts["DeleteMessage"] == 0
    assert calls.counts["ChangeMessageVisibility"] == 0
    assert 2 <= calls.counts["DeleteMessageBatch"] <= 10
    assert 1 <= calls.counts["ChangeMessageVisibilityBatch"] <= 10
    d = depth(client, queues)
    assert (d.visible, d.in_flight) == (0, 10)


def test_a_partly_refused_batch_retries_the_refused_entries_singly(emulator: Any, queues: QueuePair) -> None:
    client = sqs_client(emulator.url)
    calls = Calls(client)

    def spoil_first_entry(params: dict[str, Any], **_: Any) -> None:
        params["Entries"][0] = {**params["Entries"][0], "ReceiptHandle": "spoiled"}

    client.meta.events.register("provide-client-params.sqs.DeleteMessageBatch", spoil_first_entry)
    client.meta.events.register("provide-client-params.sqs.ChangeMessageVisibilityBatch", spoil_first_entry)
    send_messages(client, queues.url, [job(i) for i in range(6)])
    messages = client.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=6, VisibilityTimeout=60)[
        "Messages"
    ]
    while len(messages) < 6:
        messages += client.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=6, VisibilityTimeout=60)[
            "Messages"
        ]
    outcomes: dict[str, Exception | None] = {}

    def entries(batch: list[dict[str, Any]], visibility: int = 0) -> list[Entry]:
        return [
            Entry(m["MessageId"], m["ReceiptHandle"], queues.url, lambda e: None, visibility) for m in batch
        ]

    for entry, error in change_visibility_batch(client, queues.url, entries(messages[:3])):
        outcomes[entry.message_id] = error
    for entry, error in delete_batch(client, queues.url, entries(messages[3:])):
        outcomes[entry.message_id] = error
    assert outcomes == {m["MessageId"]: None for m in messages}  # every entry made it, none lost
    assert calls.counts["DeleteMessage"] == 1 and calls.counts["ChangeMessageVisibility"] == 1
    d = depth(client, queues)
    assert (d.visible, d.in_flight) == (3, 0)  # three visible again at once, three deleted


def test_a_refused_entry_is_reported_never_dropped(emulator: Any, queues: QueuePair) -> None:
    client = sqs_client(emulator.url)
    send_messages(client, queues.url, [job(1)])
    [message] = client.receive_message(QueueUrl=queues.url, VisibilityTimeout=60)["Messages"]
    good = Entry(message["MessageId"], message["ReceiptHandle"], queues.url, lambda e: None)
    bad = Entry("bogus", "not-a-receipt-handle", queues.url, lambda e: None)
    outcomes = delete_batch(client, queues.url, [bad, good])
    assert [entry.message_id for entry, _ in outcomes] == ["bogus", message["MessageId"]]
    assert outcomes[0][1] is not None and outcomes[1][1] is None


def test_several_receive_loops_share_the_connections(
    emulator: Any, queues: QueuePair, run_daemon_with: Callable[..., Any]
) -> None:
    client = sqs_client(emulator.url)
    calls = Calls(client)
    with HttpServer(status_app, threads=4) as server:
        running = run_daemon_with(client, queues.url, server.url, LAB_PROFILE.replace(HttpConnections=30))
        time.sleep(2.5)  # idle: every loop that has a full batch of slots sits in a long poll
        running.stop()
    assert running.daemon.pollers == 12  # ceil(30 / 2.5), as sqsd runs
    assert calls.peak_receiving == 3  # 30 connections hold three receives of ten, no more


def test_poll_once_makes_exactly_one_receive(emulator: Any, queues: QueuePair) -> None:
    client = sqs_client(emulator.url)
    calls = Calls(client)
    daemon = Daemon(client, FAST_RETRY, queue_url=queues.url, http_url="http://127.0.0.1:9")
    try:
        assert daemon.poll_once(wait_time_seconds=0) == 0
        assert daemon.poll_once(wait_time_seconds=0) == 0
    finally:
        daemon.close()
    assert calls.counts["ReceiveMessage"] == 2


def test_stopping_sends_the_deletes_still_waiting(
    sqs: SqsClient, queues: QueuePair, wait_for: Callable[..., Any]
) -> None:
    with HttpServer(status_app, threads=12) as server:
        send_messages(sqs, queues.url, [job(i) for i in range(7)])
        daemon = Daemon(sqs, FAST_RETRY, queue_url=queues.url, http_url=server.url, wait_time_seconds=1)
        stop = threading.Event()
        thread = threading.Thread(target=daemon.run, args=(stop,))
        thread.start()
        wait_for(lambda: daemon.counts["received"] == 7)
        stop.set()
        thread.join(timeout=10)
        daemon.close()
    assert not thread.is_alive()
    assert daemon.counts["deleted"] == 7
    d = depth(sqs, queues)
    assert (d.visible, d.in_flight) == (0, 0)


def slow_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    time.sleep(0.3)
    start_response("200 OK", [("Content-Length", "0")])
    return [b""]


def test_batches_are_received_ahead_only_while_posts_are_quick(
    sqs: SqsClient, queues: QueuePair, run_daemon: Callable[..., Any]
) -> None:
    connections = 4
    options = LAB_PROFILE.replace(HttpConnections=connections)
    for app, ahead in ((status_app, 2 * connections), (slow_app, 0)):  # two batches of four
        with HttpServer(app, threads=12) as server:
            send_messages(sqs, queues.url, [job(i) for i in range(40)])
            running = run_daemon(queues.url, server.url, options)
            samples: list[tuple[int, int]] = []  # (messages held, POSTs running)
            deadline = time.monotonic() + 30
            while running.daemon.counts["deleted"] < 40 and time.monotonic() < deadline:
                samples.append((running.daemon.held, running.daemon.in_flight))
                time.sleep(0.001)
            running.stop()
        assert max(posting for _, posting in samples) == connections  # reached, never exceeded
        assert max(held for held, _ in samples) <= connections + ahead
        if ahead:
            assert max(held for held, _ in samples) > connections  # the next batch was there in time


def test_messages_received_ahead_are_handed_back_on_stop(
    sqs: SqsClient, queues: QueuePair, wait_for: Callable[..., Any]
) -> None:
    def held_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with lock:
            served.append(1)
            if len(served) > 20:  # the app itself turns slow, so the daemon cannot finish first
                gate.set()
        if gate.is_set():
            # Held until the daemon stops: the batch received ahead has to wait, and no POST ends
            # meanwhile, so the daemon keeps believing POSTs are quick (no timing race).
            released.wait(10)
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    gate, released, lock, served = threading.Event(), threading.Event(), threading.Lock(), []
    with HttpServer(held_app, threads=8) as server:
        daemon = Daemon(
            sqs,
            LAB_PROFILE.replace(HttpConnections=2, VisibilityTimeout=60),
            queue_url=queues.url,
            http_url=server.url,
            wait_time_seconds=1,
        )
        stop = threading.Event()
        thread = threading.Thread(target=daemon.run, args=(stop,))
        send_messages(sqs, queues.url, [job(i) for i in range(40)])
        thread.start()
        try:
            wait_for(gate.is_set, timeout=20)  # 20 quick POSTs first: the daemon receives ahead
            wait_for(lambda: daemon.held > daemon.in_flight == 2, timeout=10)
            stop.set()
            released.set()
            thread.join(timeout=10)
        finally:
            stop.set()
            released.set()
            thread.join(timeout=10)
            daemon.close()
    assert daemon.counts["released"] >= 1
    d = depth(sqs, queues)
    assert d.in_flight == 0  # nothing left invisible: finished, or visible again at once
    assert d.visible == 40 - daemon.counts["deleted"]


def test_a_slow_job_does_not_hold_back_the_next_message(
    sqs: SqsClient, queues: QueuePair, wait_for: Callable[..., Any]
) -> None:
    # sqsd asks for min(free, 10): one free connection is enough to receive the next message.
    slow_started, release = threading.Event(), threading.Event()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if body == b"slow":
            slow_started.set()
            release.wait(10)
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    with HttpServer(app, threads=8) as server:
        daemon = Daemon(
            sqs,
            LAB_PROFILE.replace(HttpConnections=4),
            queue_url=queues.url,
            http_url=server.url,
            wait_time_seconds=1,
        )
        stop = threading.Event()
        thread = threading.Thread(target=daemon.run, args=(stop,))
        thread.start()
        try:
            send_messages(sqs, queues.url, ["slow"])
            assert slow_started.wait(10)
            send_messages(sqs, queues.url, ["quick"])
            # Deleted while the slow one still runs: it did not wait for a whole batch to be free.
            wait_for(lambda: daemon.counts["deleted"] == 1, timeout=5)
        finally:
            release.set()
            stop.set()
            thread.join(timeout=10)
            daemon.close()


def test_a_daemon_closed_mid_long_poll_takes_no_message_from_the_next_one(
    sqs: SqsClient, queues: QueuePair
) -> None:
    # run() returns at once on stop; close() then waits out the long poll, so a message sent after
    # close() is received only by whoever comes next, for the first time.
    first = Daemon(sqs, LAB_PROFILE, queue_url=queues.url, http_url="http://127.0.0.1:9", wait_time_seconds=2)
    stop = threading.Event()
    thread = threading.Thread(target=first.run, args=(stop,))
    thread.start()
    time.sleep(0.5)  # the pollers are inside their long poll
    stop.set()
    thread.join(timeout=10)
    first.close()
    send_messages(sqs, queues.url, ["after the stop"])
    reply = sqs.receive_message(
        QueueUrl=queues.url, WaitTimeSeconds=3, AttributeNames=["ApproximateReceiveCount"]
    )
    [message] = reply.get("Messages", [])
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
