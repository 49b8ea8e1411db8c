"""The POST sqsd makes (docs/aws-behaviour.md §1): headers, formats and the body, as seen on the wire."""

from __future__ import annotations

import calendar
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from labapp.runtime.emulator import Emulator
from labapp.runtime.servers import HttpServer
from labapp.signature import SIGNATURE_HEADER, BadSignature, check_message
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import QueuePair, send_messages
from labapp.sqsd.events import DaemonEvent
from labapp.sqsd.options import LAB_PROFILE
from labapp.sqsd.post import USER_AGENT, build_post, header_value, iso_utc
from labapp.worker import state as worker_state
from labapp.worker.inspector import RecordedRequest

ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
SQS_MAX_MESSAGE_BYTES = 262_144


def order(order_id: str, **extra: Any) -> str:
    return json.dumps({"type": "order", "order_id": order_id, "amount": 1, **extra}, ensure_ascii=False)


def recorded(worker: HttpServer) -> list[RecordedRequest]:
    return list(worker_state.of(worker.app).inspector.last())


def for_message(worker: HttpServer, message_id: str) -> list[RecordedRequest]:
    return [r for r in recorded(worker) if r.header("X-Aws-Sqsd-Msgid") == message_id]


def raw_request(request: RecordedRequest) -> bytes:
    """The request as it came off the socket: request line, headers in order, blank line, body."""
    head = "\r\n".join([request.request_line, *(f"{k}: {v}" for k, v in request.headers)])
    return head.encode("latin-1") + b"\r\n\r\n" + request.body


@pytest.fixture
def receipts(emulator: Emulator) -> Iterator[tuple[SqsClient, list[str]]]:
    """A client of its own that notes every receipt handle SQS gives out (botocore's event hook)."""
    client = sqs_client(emulator.url)
    handles: list[str] = []

    def note(parsed: dict[str, Any], **_: Any) -> None:
        handles.extend(m["ReceiptHandle"] for m in parsed.get("Messages", []))

    client.meta.events.register("after-call.sqs.ReceiveMessage", note)
    yield client, handles


# -- build_post without the network ----------------------------------------------------------------
MESSAGE = {
    "MessageId": "0b7c4a1e-0000-4000-8000-000000000001",
    "ReceiptHandle": "SECRET-RECEIPT-HANDLE",
    "Body": '{"type": "order"}',
    "Attributes": {
        "ApproximateReceiveCount": "3",
        "ApproximateFirstReceiveTimestamp": "1573692420000",
        "SentTimestamp": "1573692419000",
        "SenderId": "AIDAEXAMPLE",
    },
    "MessageAttributes": {
        "customer": {"DataType": "String", "StringValue": "42"},
        "weight": {"DataType": "Number", "StringValue": "1.5"},
        "kind": {"DataType": "String.custom", "StringValue": "gift"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    },
}


def test_iso_utc_is_the_sqsd_format() -> None:
    assert iso_utc("1573692420000") == "2019-11-14T00:47:00Z"
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert ISO_8601.match(iso_utc(time.time() * 1000))


def test_build_post_headers() -> None:
    post = build_post(MESSAGE, "my-queue", LAB_PROFILE)
    assert post.path == "/"
    assert post.request_line() == "POST / HTTP/1.1"
    assert post.body == b'{"type": "order"}'
    assert post.headers == {
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json",
        "X-Aws-Sqsd-Msgid": MESSAGE["MessageId"],
        "X-Aws-Sqsd-Receive-Count": "3",
        "X-Aws-Sqsd-Queue": "my-queue",
        "X-Aws-Sqsd-First-Received-At": "2019-11-14T00:47:00Z",
        "X-Aws-Sqsd-Sent-At": "2019-11-14T00:46:59Z",
        "X-Aws-Sqsd-Sender-Id": "AIDAEXAMPLE",
        "X-Aws-Sqsd-Path": "",
        "X-Aws-Sqsd-Attr-customer": "42",
        "X-Aws-Sqsd-Attr-kind": "gift",
        "X-Aws-Sqsd-Attr-weight": "1.5",
    }
    assert "SECRET" not in repr(post)


def test_header_value_folding() -> None:
    assert header_value("plain") == "plain"
    assert header_value("two\nlines") == "two lines"
    assert header_value("\x00nul\x1fus\x7f") == "nul us"
    assert header_value(" \tpadded\t ") == "padded"
    assert header_value("in\tside") == "in\tside"
    assert header_value("\xa0nbsp café ☕") == "\xa0nbsp café ☕"
    assert header_value("") == ""


def test_build_post_periodic_task() -> None:
    message = {
        **MESSAGE,
        "Body": "elasticbeanstalk scheduled job",
        "MessageAttributes": {
            "beanstalk.sqsd.path": {"DataType": "String", "StringValue": "/tasks/report"},
            "beanstalk.sqsd.task_name": {"DataType": "String", "StringValue": "nightly-report"},
            "beanstalk.sqsd.scheduled_time": {"DataType": "String", "StringValue": "2024-01-01T03:00:00Z"},
        },
    }
    post = build_post(message, "q", LAB_PROFILE)
    assert (post.path, post.body) == ("/tasks/report", b"")
    assert post.headers["X-Aws-Sqsd-Path"] == "/tasks/report"
    assert post.headers["X-Aws-Sqsd-Taskname"] == "nightly-report"
    assert post.headers["X-Aws-Sqsd-Scheduled-At"] == "2024-01-01T03:00:00Z"
    assert not [h for h in post.headers if h.startswith("X-Aws-Sqsd-Attr-")]


def test_article_form_is_only_an_opt_in_and_never_carries_the_receipt_handle() -> None:
    post = build_post(MESSAGE, "q", LAB_PROFILE, encoding="article-form")
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert post.body.startswith(b"SQSMessageBody=")
    assert b"SECRET" not in post.body
    assert build_post(MESSAGE, "q", LAB_PROFILE).body == MESSAGE["Body"].encode()


def test_signature_covers_message_id_and_body() -> None:
    post = build_post(MESSAGE, "q", LAB_PROFILE, secret="s3cret")
    check_message("s3cret", MESSAGE["MessageId"], post.body, post.headers)
    with pytest.raises(BadSignature):
        check_message("s3cret", "other-id", post.body, post.headers)
    assert SIGNATURE_HEADER not in build_post(MESSAGE, "q", LAB_PROFILE).headers


# -- the real POST, captured by the worker ----------------------------------------------------------
def test_every_header_on_the_wire(
    queues: QueuePair,
    worker: HttpServer,
    run_daemon_with: Callable[..., Any],
    receipts: tuple[SqsClient, list[str]],
    wait_for: Callable[..., Any],
) -> None:
    client, handles = receipts
    sent_at = time.time()
    reply = client.send_message(
        QueueUrl=queues.url,
        MessageBody=order("hdr-1"),
        MessageAttributes={
            "customer": {"DataType": "String", "StringValue": "42"},
            "weight": {"DataType": "Number", "StringValue": "1.5"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
        },
    )
    message_id = reply["MessageId"]
    running = run_daemon_with(client, queues.url, worker.url)
    wait_for(lambda: "deleted" in running.kinds())

    [request] = for_message(worker, message_id)
    headers = dict(request.headers)
    assert request.request_line == "POST / HTTP/1.1"
    assert re.fullmatch(r"aws-sqsd/\d+(\.\d+)+", headers["User-Agent"])
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Aws-Sqsd-Msgid"] == message_id
    assert headers["X-Aws-Sqsd-Queue"] == queues.name
    assert "/" not in headers["X-Aws-Sqsd-Queue"]  # the NAME, not the URL
    assert headers["X-Aws-Sqsd-Receive-Count"] == "1"
    assert headers["X-Aws-Sqsd-Path"] == ""
    assert headers["X-Aws-Sqsd-Sender-Id"]
    for name in ("X-Aws-Sqsd-First-Received-At", "X-Aws-Sqsd-Sent-At"):
        assert ISO_8601.match(headers[name]), headers[name]
        moment = calendar.timegm(time.strptime(headers[name], "%Y-%m-%dT%H:%M:%SZ"))
        assert sent_at - 2 <= moment <= time.time() + 1
    assert headers["X-Aws-Sqsd-Attr-customer"] == "42"
    assert headers["X-Aws-Sqsd-Attr-weight"] == "1.5"
    assert not [name for name in headers if "blob" in name.lower()]  # Binary is not passed

    # The receipt handle appears nowhere in the request, under any name.
    assert handles
    raw = raw_request(request)
    for handle in handles:
        assert handle.encode() not in raw
    assert b"receipt" not in raw.lower()
    assert request.status == 200


def test_headers_keep_their_order_on_the_wire(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    send_messages(sqs, queues.url, [order("o-1")])
    running = run_daemon(queues.url, worker.url)
    wait_for(lambda: "deleted" in running.kinds())
    [posted] = [e for e in running.events if e.kind == "posted"]
    [request] = recorded(worker)
    sent = [name for name, _ in request.headers if name in posted.post.headers]
    assert sent == list(posted.post.headers)


def _large_body() -> tuple[str, dict[str, Any]]:
    attributes = {"note": {"DataType": "String", "StringValue": "n" * 100}}
    attribute_bytes = len("note") + len("String") + 100
    head = order("big-1", pad="")[:-2]  # ... "pad": "   then fill, then close the string and object
    room = SQS_MAX_MESSAGE_BYTES - attribute_bytes - len(head.encode()) - 2
    body = head + "é" * (room // 2) + "x" * (room % 2) + '"}'
    assert len(body.encode()) + attribute_bytes == SQS_MAX_MESSAGE_BYTES
    return body, attributes


def test_body_is_passed_byte_for_byte(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    bodies = {
        "ascii": order("b-ascii", note="plain text ~!@#$%^&*()"),
        "utf8": order("b-utf8", note="café, Grüße, Ελληνικά, 日本語"),
        "emoji": order("b-emoji", note="🚀📦✅ 👩🏽‍💻"),
        # CR, LF and tab between JSON tokens: the body must not be normalised on the way.
        "controls": order("b-ctrl").replace(", ", ",\r\n\t"),
        "form-looking": order("b-form", note="a=1&b=%20"),
    }
    large, attributes = _large_body()
    ids = {
        name: sqs.send_message(QueueUrl=queues.url, MessageBody=body)["MessageId"]
        for name, body in bodies.items()
    }
    ids["large"] = sqs.send_message(QueueUrl=queues.url, MessageBody=large, MessageAttributes=attributes)[
        "MessageId"
    ]
    bodies["large"] = large
    running = run_daemon(queues.url, worker.url)
    wait_for(lambda: running.kinds().count("deleted") == len(bodies), timeout=15)
    for name, body in bodies.items():
        [request] = for_message(worker, ids[name])
        assert request.body == body.encode("utf-8"), name
        assert request.header("Content-Length") == str(len(body.encode("utf-8")))
        assert request.status == 200, name
    assert len(for_message(worker, ids["large"])[0].body) > 250_000


def test_http_path_and_form_mime_type_are_labels_only(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    body = order("path-1", note="a b&c=d")
    options = LAB_PROFILE.replace(HttpPath="/jobs/incoming", MimeType="application/x-www-form-urlencoded")
    sqs.send_message(QueueUrl=queues.url, MessageBody=body)
    running = run_daemon(queues.url, worker.url, options)
    wait_for(lambda: "deleted" in running.kinds())
    [request] = recorded(worker)
    assert request.request_line == "POST /jobs/incoming HTTP/1.1"
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert request.body == body.encode()  # NOT form-encoded: no SQSMessageBody=, no %20
    assert request.header("X-Aws-Sqsd-Path") == ""


def test_non_ascii_attribute_values_arrive_as_utf8(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    # The last two end in bytes 0xA0 and 0x85: Unicode whitespace if the header were read carelessly.
    values = {"mixed": "café ☕ 🚀", "nbsp": "ends in a no-break space\xa0", "nel": "ends in NEL\x85"}
    sqs.send_message(
        QueueUrl=queues.url,
        MessageBody=order("attr-utf8"),
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in values.items()},
    )
    running = run_daemon(queues.url, worker.url)
    wait_for(lambda: "deleted" in running.kinds())
    [request] = recorded(worker)
    for name, value in values.items():
        wire = request.header(f"X-Aws-Sqsd-Attr-{name}")
        assert wire is not None
        assert wire.encode("latin-1").decode("utf-8") == value


def test_attribute_values_http_cannot_carry_are_folded_not_lost(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    values = {"lf": "two\nlines", "crlf": " x\r\nX-Forged: 1 ", "del": "del\x7fchar", "tab": "a\tb"}
    sqs.send_message(
        QueueUrl=queues.url,
        MessageBody=order("attr-fold"),
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in values.items()},
    )
    running = run_daemon(queues.url, worker.url)
    wait_for(lambda: "deleted" in running.kinds())
    [request] = recorded(worker)
    assert request.header("X-Aws-Sqsd-Attr-lf") == "two lines"
    assert request.header("X-Aws-Sqsd-Attr-crlf") == "x  X-Forged: 1"
    assert request.header("X-Forged") is None  # no header injection
    assert request.header("X-Aws-Sqsd-Attr-del") == "del char"
    assert request.header("X-Aws-Sqsd-Attr-tab") == "a\tb"


def test_signature_end_to_end(
    tmp_path: Any,
    sqs: SqsClient,
    queues: QueuePair,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    from labapp.worker.app import create_app

    app = create_app({"LEDGER_PATH": str(tmp_path / "l.sqlite"), "SHARED_SECRET": "s3cret"})
    with HttpServer(app) as server:
        good = sqs.send_message(QueueUrl=queues.url, MessageBody=order("sig-ok"))["MessageId"]
        running = run_daemon(queues.url, server.url, secret="s3cret")
        wait_for(lambda: [e for e in running.events if e.kind == "deleted" and e.message_id == good])
        running.stop()

        unsigned = run_daemon(queues.url, server.url, LAB_PROFILE.replace(ErrorVisibilityTimeout=30))
        sqs.send_message(QueueUrl=queues.url, MessageBody=order("sig-missing"))
        events: list[DaemonEvent] = wait_for(
            lambda: [e for e in unsigned.events if e.kind == "response" and e.status is not None]
        )
        assert events[0].status == 401
        assert worker_state.of(app).ledger.applied("order:sig-ok")
        assert not worker_state.of(app).ledger.applied("order:sig-missing")
    worker_state.of(app).ledger.close()


# -- wire details that follow sqsd 2.0 ----------------------------------------------------------------
def task_attributes(**values: str) -> dict[str, Any]:
    names = {"path": "beanstalk.sqsd.path", "name": "beanstalk.sqsd.task_name"}
    names["scheduled"] = "beanstalk.sqsd.scheduled_time"
    return {names[k]: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def test_only_sqsd_headers_go_on_the_wire(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    sqs.send_message(QueueUrl=queues.url, MessageBody=order("lean-1"))
    running = run_daemon(queues.url, worker.url)
    wait_for(lambda: "deleted" in running.kinds())
    [posted] = [e for e in running.events if e.kind == "posted"]
    [request] = recorded(worker)
    # em-http sends the message's headers, then Host and Content-Length: no Accept,
    # Accept-Encoding or Connection on a kept-alive request.
    assert [name for name, _ in request.headers] == [*posted.post.headers, "Host", "Content-Length"]
    assert request.header("Host") == f"127.0.0.1:{worker.port}"
    assert posted.url == f"{worker.url}/"


def test_a_task_is_known_by_its_scheduled_time_which_arrives_as_iso_utc(
    sqs: SqsClient,
    queues: QueuePair,
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    task = sqs.send_message(
        QueueUrl=queues.url,
        MessageBody="elasticbeanstalk scheduled job",
        MessageAttributes=task_attributes(
            path="/tasks/report", name="report", scheduled="2026-12-02 01:00:00 UTC"
        ),
    )["MessageId"]
    # A task name alone does not make a periodic task: this one is an ordinary message.
    named = sqs.send_message(
        QueueUrl=queues.url,
        MessageBody=order("named-1"),
        MessageAttributes=task_attributes(path="/x", name="n"),
    )["MessageId"]
    running = run_daemon(queues.url, worker.url)
    wait_for(lambda: running.kinds().count("deleted") == 2)
    [periodic] = for_message(worker, task)
    assert periodic.request_line == "POST /tasks/report HTTP/1.1"
    assert periodic.header("X-Aws-Sqsd-Scheduled-At") == "2026-12-02T01:00:00Z"
    assert periodic.header("X-Aws-Sqsd-Taskname") == "report"
    assert periodic.header("Connection") == "close"  # em-http sends a task without keep-alive
    assert periodic.body == b""
    [ordinary] = for_message(worker, named)
    assert ordinary.request_line == "POST / HTTP/1.1"
    assert ordinary.body == order("named-1").encode()
    assert ordinary.header("X-Aws-Sqsd-Taskname") is None
    assert ordinary.header("X-Aws-Sqsd-Path") == "/x"


class ClosingServer:
    """Reads each request; closes the connection without a reply for the first `closes` of them, then answers 200."""

    def __init__(self, closes: int) -> None:
        self.closes = closes
        self.requests: list[tuple[str, str]] = []  # (message id, receive count)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while head := _read_head(reader):
                reader.read(int(head.get("content-length", "0")))
                with self.lock:
                    self.requests.append(
                        (head.get("x-aws-sqsd-msgid", ""), head.get("x-aws-sqsd-receive-count", ""))
                    )
                    close = self.closes > 0
                    self.closes -= 1
                if close:
                    break
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        finally:
            reader.close()
            conn.close()

    def stop(self) -> None:
        self.sock.close()


def _read_head(reader: Any) -> dict[str, str]:
    if not reader.readline():
        return {}
    head = {}
    while (line := reader.readline().decode("latin-1").strip()) != "":
        name, _, value = line.partition(":")
        head[name.strip().lower()] = value.strip()
    return head


@pytest.mark.parametrize("closes", [2, 10])
def test_a_connection_closed_before_any_answer_is_posted_again_at_once(
    sqs: SqsClient,
    queues: QueuePair,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
    closes: int,
) -> None:
    server = ClosingServer(closes)
    try:
        message_id = sqs.send_message(QueueUrl=queues.url, MessageBody=order("eof-1"))["MessageId"]
        running = run_daemon(queues.url, server.url, LAB_PROFILE.replace(ErrorVisibilityTimeout=0))
        wait_for(lambda: "deleted" in running.kinds(), timeout=15)
        running.stop()
    finally:
        server.stop()
    counts = running.daemon.counts
    if closes == 2:
        # Closed twice, then answered: three POSTs of the same receive, no failure, no retry.
        assert server.requests == [(message_id, "1")] * 3
        assert (counts["reposted"], counts["failed"]) == (2, 0)
    else:
        # Re-POSTed three times at once, then a failure: the next receive tries again.
        assert server.requests[:4] == [(message_id, "1")] * 4
        assert server.requests[4] == (message_id, "2")
        assert counts["failed"] >= 1
        [first] = [e for e in running.events if e.kind == "retry_scheduled"][:1]
        assert "conn-closed" in first.detail
