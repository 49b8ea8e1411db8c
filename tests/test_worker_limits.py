"""The worker's limits: bodies up to SQS's largest message, a bounded inspector, bounded numbers.

Before, waitress read bodies up to 1 GiB and the inspector kept 200 of them; a 5,000-digit
number stopped json.loads with a ValueError (a 500); an amount of 10**30 was charged.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from labapp.runtime.ports import free_port
from labapp.runtime.servers import HttpServer
from labapp.settings import HOST
from labapp.sqs.limits import MAX_MESSAGE_BYTES
from labapp.worker import state as worker_state
from labapp.worker.app import create_app
from labapp.worker.inspector import INSPECT_MAX_BYTES, Inspector, RecordedRequest
from labapp.worker.limits import BODY_TOO_LARGE, MAX_BODY_BYTES, short
from labapp.worker.scenarios import MAX_AMOUNT, MAX_CSV_ROWS, MAX_SIZES


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"LEDGER_PATH": str(tmp_path / "ledger.sqlite")})
    yield app
    worker_state.of(app).ledger.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def padded_order(size: int, order_id: str = "pad") -> bytes:
    """Return an order whose JSON body is exactly size bytes."""
    empty = json.dumps({"type": "order", "order_id": order_id, "amount": 1, "pad": ""}).encode()
    return json.dumps(
        {"type": "order", "order_id": order_id, "amount": 1, "pad": "x" * (size - len(empty))}
    ).encode()


# -- 6. the body limit and the inspector's budget -------------------------------------------------------------
def test_the_body_limit_is_sqs_largest_message() -> None:
    assert MAX_BODY_BYTES == MAX_MESSAGE_BYTES  # 262,144 until labapp/sqs/limits.py says 1 MiB


def test_the_app_refuses_a_body_over_the_limit_with_a_413(app: Flask, client: FlaskClient) -> None:
    assert client.post("/", data=padded_order(MAX_BODY_BYTES)).status_code == 200
    reply = client.post("/", data=padded_order(MAX_BODY_BYTES + 1, "over"))
    assert reply.status_code == 413
    assert reply.json == {"error": BODY_TOO_LARGE}
    recorded = worker_state.of(app).inspector.last()
    assert [(r.status, len(r.body)) for r in recorded] == [(200, MAX_BODY_BYTES), (413, 0)]  # not kept
    assert not worker_state.of(app).ledger.applied("order:over")


def _raw_exchange(server: HttpServer, head: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(head)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_waitress_refuses_a_larger_body_before_reading_it(worker: HttpServer) -> None:
    reply = _raw_exchange(
        worker, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (40 * 1024 * 1024)
    )
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body) == {"error": BODY_TOO_LARGE}
    exact = requests.post(worker.url + "/", data=padded_order(MAX_BODY_BYTES), timeout=10)
    assert exact.status_code == 200


def test_waitress_refuses_a_chunked_body_over_the_limit(worker: HttpServer) -> None:
    # One chunk one byte over the limit, sent whole: waitress has read it all when it refuses, so
    # it closes cleanly instead of resetting a connection with bytes still unread.
    size = MAX_BODY_BYTES + 1
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % size
    reply = _raw_exchange(worker, head + b"x" * size)
    assert reply.startswith(b"HTTP/1.1 413")
    assert worker_state.of(worker.app).inspector.last() == []


def test_the_inspector_keeps_at_most_its_byte_budget(app: Flask, client: FlaskClient) -> None:
    for i in range(3 * INSPECT_MAX_BYTES // MAX_BODY_BYTES):
        assert client.post("/", data=padded_order(MAX_BODY_BYTES, f"o-{i}")).status_code == 200
    inspector = worker_state.of(app).inspector
    kept = inspector.last()
    assert inspector.bytes_kept <= INSPECT_MAX_BYTES
    assert inspector.bytes_kept > INSPECT_MAX_BYTES - 2 * MAX_BODY_BYTES
    assert json.loads(kept[-1].body)["order_id"] == f"o-{3 * INSPECT_MAX_BYTES // MAX_BODY_BYTES - 1}"
    assert client.delete("/_lab/requests").status_code == 200
    assert inspector.bytes_kept == 0


def test_the_inspector_always_keeps_the_newest_request() -> None:
    inspector = Inspector(keep=5, max_bytes=10)
    for i in range(3):
        inspector.record(
            RecordedRequest(0.0, "POST", "/", "POST / HTTP/1.1", [], b"x" * 100 + bytes([i]), "")
        )
    assert [r.body[-1] for r in inspector.last()] == [2]
    assert inspector.last(0) == []


MEMORY_SCRIPT = """
import sys
from labapp.runtime.servers import HttpServer
from labapp.worker.app import create_app
app = create_app({"LEDGER_PATH": sys.argv[1]})
server = HttpServer(app, port=int(sys.argv[2]), crash="exit").start()
print("ready", flush=True)
sys.stdin.read()
server.stop()
"""


def test_big_bodies_do_not_grow_the_worker(tmp_path: Path) -> None:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "m.sqlite"), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        url = f"http://{HOST}:{port}/"
        requests.post(url, data=b"{}", timeout=10)
        rss = psutil.Process(child.pid).memory_info
        before = rss().rss
        for _ in range(4):  # what grew the worker from 60 to 219 MB
            # waitress answers 413 and closes while the client is still sending.
            with contextlib.suppress(requests.ConnectionError):
                requests.post(url, data=b"x" * (40 * 1024 * 1024), timeout=30)
        after_big = rss().rss - before
        for i in range(3 * INSPECT_MAX_BYTES // MAX_BODY_BYTES):  # three times the inspector's budget
            requests.post(url, data=padded_order(MAX_BODY_BYTES, f"m-{i}"), timeout=10)
        after_many = rss().rss - before
        print(f"worker RSS grew {after_big / 2**20:.1f} MiB, then {after_many / 2**20:.1f} MiB")
        slack = 24 * 2**20  # allocator, thread stacks and waitress buffers
        assert after_big < slack
        assert after_many < INSPECT_MAX_BYTES + slack
    finally:
        child.communicate(input="", timeout=30)


# -- 7. numbers in scenario payloads -----------------------------------------------------------------------------
ORDER = {"type": "order", "order_id": "n-1", "amount": 1}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b'{"type": "order", "order_id": "x", "amount": 1, "work_ms": ' + b"9" * 5000 + b"}",
            "5,000 characters",
        ),
        (b'{"type": "order", "order_id": "x", "amount": ' + b"1" * 4301 + b"}", "4,301 characters"),
        (b'{"type": "order", "order_id": "x", "amount": 1.' + b"5" * 100 + b"}", "characters"),
        (b'{"type": "order", "order_id": ' + b"7" * 5000 + b', "amount": 1}', "characters"),
        (b'{"type": "order", "order_id": "x", "amount": 1e400}', "'amount' must be a number from 0"),
        (b'{"type": "order", "order_id": "x", "amount": -Infinity}', "'amount'"),
        (json.dumps({**ORDER, "amount": MAX_AMOUNT + 1}).encode(), f"{MAX_AMOUNT:,}"),
        (json.dumps({**ORDER, "amount": 1e9}).encode(), "'amount'"),
        (json.dumps({**ORDER, "work_ms": 10**30}).encode(), "work_ms"),
        (json.dumps({**ORDER, "work_ms": 1.5}).encode(), "work_ms"),
        (json.dumps({**ORDER, "order_id": "x" * 300}).encode(), "longer than 256"),
        (b'{"type": "order", "order_id": "\\ud800", "amount": 1}', "lone surrogate"),
        (
            json.dumps({"type": "thumbnail", "image_id": "i", "sizes": [64] * (MAX_SIZES + 1)}).encode(),
            f"1 to {MAX_SIZES}",
        ),
        (json.dumps({"type": "thumbnail", "image_id": "i", "sizes": [True, 64]}).encode(), "'sizes'"),
        (
            json.dumps(
                {"type": "csv_import", "import_id": "c", "csv": "a\n" + "1\n" * (MAX_CSV_ROWS + 1)}
            ).encode(),
            f"at most {MAX_CSV_ROWS:,}",
        ),
        (json.dumps({"type": "x" * 100_000}).encode(), "got 'xxxx"),
        (json.dumps({"type": [[[[[[[["deep"]]]]]]]]}).encode(), "got [[["),
    ],
)
def test_bad_numbers_and_sizes_are_a_400_with_a_short_reason(
    app: Flask, client: FlaskClient, body: bytes, reason: str
) -> None:
    reply = client.post("/", data=body)
    assert reply.status_code == 400, reply.get_data(as_text=True)[:300]
    assert reason in reply.json["error"]
    assert len(reply.json["error"]) <= 160
    assert worker_state.of(app).ledger.summary()["deliveries"] == 0


def test_short_never_fails_and_never_runs_long() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    huge = 10**5000
    for value in (deep, huge, "x" * 10**6, {"k" * 1000: 1}, b"\xff" * 1000):
        assert len(short(value)) <= 60


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"latency_ms": 100000000000}', "latency_ms"),
        (b'{"latency_ms": ' + b"9" * 5000 + b"}", "characters"),
        (json.dumps({"error_rate": "x" * 100_000}).encode(), "error_rate"),
        (json.dumps({"k" * 100_000: 1}).encode(), "unknown failure setting"),
        (b"{not json", "not valid JSON"),
        (b"[1]", "JSON object"),
    ],
)
def test_failure_settings_are_bounded_and_quoted_short(
    client: FlaskClient, payload: bytes, reason: str
) -> None:
    reply = client.put("/_lab/failures", data=payload, content_type="application/json")
    assert reply.status_code == 400
    assert reason in reply.json["error"]
    assert len(reply.json["error"]) <= 200
    started = time.monotonic()
    assert client.post("/", json=ORDER).status_code == 200  # and the worker still answers at once
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("n", ["0", "-5", "abc", "9" * 5000])
def test_odd_request_counts_are_not_a_server_error(client: FlaskClient, n: str) -> None:
    client.post("/", data=b"x")
    reply = client.get(f"/_lab/requests?n={n}")
    assert reply.status_code == 200
    assert isinstance(reply.json, list)
