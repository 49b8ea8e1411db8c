"""The Flask worker: idempotent scenarios, 400s with reasons, failure injection, inspector and guards."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from labapp.errors import ConfigError
from labapp.runtime.servers import HttpServer
from labapp.signature import SIGNATURE_HEADER, message_headers
from labapp.worker import state as worker_state
from labapp.worker.app import create_app
from labapp.worker.failures import Failures, FailureSwitch
from labapp.worker.ledger import Ledger


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"LEDGER_PATH": str(tmp_path / "ledger.sqlite"), "FAILURE_SEED": 7})
    yield app
    worker_state.of(app).ledger.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, body: Any, message_id: str = "m-1", **headers: str) -> Any:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/", data=data, headers={"X-Aws-Sqsd-Msgid": message_id, **headers})


# -- the three scenarios, idempotent through the ledger -----------------------------------------------
@pytest.mark.parametrize(
    ("body", "business_ids"),
    [
        ({"type": "order", "order_id": "A-1", "amount": 12.5}, ["order:A-1"]),
        (
            {"type": "thumbnail", "image_id": "img-9", "sizes": [64, 256]},
            ["thumbnail:img-9:64", "thumbnail:img-9:256"],
        ),
        ({"type": "thumbnail", "image_id": "img-1"}, ["thumbnail:img-1:128"]),
        (
            {"type": "csv_import", "import_id": "imp-1", "csv": "sku,qty\na,1\n\nb,2\n"},
            ["import:imp-1:2", "import:imp-1:3"],
        ),
    ],
)
def test_scenario_applies_once(
    app: Flask, client: FlaskClient, body: dict[str, Any], business_ids: list[str]
) -> None:
    first = post(client, body, "m-1")
    assert first.status_code == 200
    assert first.json == {"result": "applied", "business_ids": business_ids, "applied": len(business_ids)}
    second = post(client, body, "m-2", **{"X-Aws-Sqsd-Receive-Count": "2"})
    assert second.status_code == 200  # a duplicate is still a success: the message must be deleted
    assert second.json["result"] == "duplicate"
    assert second.json["applied"] == 0
    ledger: Ledger = worker_state.of(app).ledger
    assert ledger.applications() == dict.fromkeys(business_ids, 1)
    assert ledger.deliveries() == dict.fromkeys(business_ids, 2)
    assert ledger.summary() == {
        "applied": len(business_ids),
        "deliveries": 2 * len(business_ids),
        "duplicates": len(business_ids),
    }


def test_work_ms_takes_time(client: FlaskClient) -> None:
    started = time.monotonic()
    assert post(client, {"type": "order", "order_id": "w", "amount": 1, "work_ms": 150}).status_code == 200
    assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"", "body is empty"),
        (b"   ", "body is empty"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"order"', "must be a JSON object"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"SQSMessageBody=%7B%7D&SQSMMessageId=1", "form-encoded"),
        (b"[" * 100_000, "nested too deeply"),
        ({"order_id": "x"}, "field 'type' must be one of order, thumbnail, csv_import"),
        ({"type": "refund"}, "got 'refund'"),
        ({"type": "order", "amount": 1}, "'order_id' is missing"),
        ({"type": "order", "order_id": " ", "amount": 1}, "'order_id' is missing"),
        ({"type": "order", "order_id": {"a": 1}, "amount": 1}, "'order_id' is missing"),
        ({"type": "order", "order_id": "x"}, "'amount' must be a number"),
        ({"type": "order", "order_id": "x", "amount": -1}, "'amount' must be a number"),
        ({"type": "order", "order_id": "x", "amount": True}, "'amount' must be a number"),
        (b'{"type": "order", "order_id": "x", "amount": NaN}', "'amount' must be a number"),
        ({"type": "order", "order_id": "x", "amount": 1, "work_ms": -5}, "work_ms"),
        ({"type": "order", "order_id": "x", "amount": 1, "work_ms": "5"}, "work_ms"),
        ({"type": "thumbnail"}, "'image_id' is missing"),
        ({"type": "thumbnail", "image_id": "i", "sizes": []}, "'sizes'"),
        ({"type": "thumbnail", "image_id": "i", "sizes": [4]}, "'sizes'"),
        ({"type": "thumbnail", "image_id": "i", "sizes": "128"}, "'sizes'"),
        ({"type": "csv_import", "import_id": "c"}, "'csv' must hold"),
        ({"type": "csv_import", "import_id": "c", "csv": "a,b\n"}, "no rows"),
        ({"type": "csv_import", "import_id": "c", "csv": "a,b\n1,2\n\n3\n"}, "CSV line 4 has 1 fields"),
        ({"type": "csv_import", "import_id": "c", "csv": "a\n" + "x" * 200_000}, "cannot be read"),
    ],
)
def test_bad_input_is_400_with_one_line_reason(
    app: Flask, client: FlaskClient, body: Any, reason: str
) -> None:
    response = post(client, body)
    assert response.status_code == 400
    error = response.json["error"]
    assert reason in error
    assert "\n" not in error
    assert worker_state.of(app).ledger.summary()["deliveries"] == 0


@pytest.mark.parametrize("count", ["many", "9" * 5000, "²"])
def test_odd_receive_count_header_is_not_a_server_error(client: FlaskClient, count: str) -> None:
    response = post(
        client, {"type": "order", "order_id": "rc", "amount": 1}, **{"X-Aws-Sqsd-Receive-Count": count}
    )
    assert response.status_code == 200


def test_periodic_task_route(app: Flask, client: FlaskClient) -> None:
    headers = {"X-Aws-Sqsd-Taskname": "report", "X-Aws-Sqsd-Scheduled-At": "2024-01-01T03:00:00Z"}
    assert client.post("/tasks/report", headers=headers).json["result"] == "applied"
    assert client.post("/tasks/report", headers=headers).json["result"] == "duplicate"
    assert client.post("/tasks/report").status_code == 400


# -- guards -------------------------------------------------------------------------------------------
def test_non_loopback_requests_are_refused(tmp_path: Path, client: FlaskClient) -> None:
    remote = {"REMOTE_ADDR": "10.0.0.5"}
    body = json.dumps({"type": "order", "order_id": "r", "amount": 1})
    assert client.post("/", data=body, environ_base=remote).status_code == 403
    assert client.get("/_lab/health", environ_base=remote).status_code == 403
    assert client.post("/", data=body, environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    open_app = create_app({"LEDGER_PATH": str(tmp_path / "open.sqlite"), "ALLOW_REMOTE": True})
    assert open_app.test_client().post("/", data=body, environ_base=remote).status_code == 200
    worker_state.of(open_app).ledger.close()


def test_shared_secret_signature(tmp_path: Path) -> None:
    app = create_app({"LEDGER_PATH": str(tmp_path / "s.sqlite"), "SHARED_SECRET": "s3cret"})
    client = app.test_client()
    body = json.dumps({"type": "order", "order_id": "sig", "amount": 1}).encode()

    def signed(secret: str, message_id: str, sent_id: str = "m-1") -> dict[str, str]:
        return {"X-Aws-Sqsd-Msgid": sent_id, **message_headers(secret, message_id, body)}

    assert client.post("/", data=body, headers=signed("s3cret", "m-1")).status_code == 200
    missing = client.post("/", data=body, headers={"X-Aws-Sqsd-Msgid": "m-1"})
    assert missing.status_code == 401
    assert SIGNATURE_HEADER in missing.json["error"]
    assert client.post("/", data=body, headers=signed("other", "m-1")).status_code == 401
    other_id = client.post("/", data=body, headers=signed("s3cret", "m-1", sent_id="m-2"))
    assert other_id.status_code == 401
    assert SIGNATURE_HEADER in other_id.json["error"]
    assert client.post("/", data=body + b" ", headers=signed("s3cret", "m-1")).status_code == 401
    assert client.get("/_lab/health").status_code == 200  # health needs no signature
    assert worker_state.of(app).ledger.summary()["deliveries"] == 1
    worker_state.of(app).ledger.close()


# -- failure injection -----------------------------------------------------------------------------------
def test_failures_validate_and_name_the_field() -> None:
    for bad, field in [
        ({"error_rate": 2}, "error_rate"),
        ({"error_rate": "half"}, "error_rate"),
        ({"status": 42}, "status"),
        ({"status": True}, "status"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": 1.5}, "latency_ms"),
        ({"hang": "yes"}, "hang"),
        ({"crash": 1}, "crash"),
        ({"explode": True}, "explode"),
    ]:
        with pytest.raises(ConfigError, match=field):
            Failures.from_json(bad)
    with pytest.raises(ConfigError, match="JSON object"):
        Failures.from_json([1])


def test_error_rate_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    def pattern(seed: int) -> list[int]:
        app = create_app({"LEDGER_PATH": str(tmp_path / f"{seed}.sqlite"), "FAILURE_SEED": seed})
        worker_state.of(app).failures.update(error_rate=0.5, status=503)
        client = app.test_client()
        codes = [
            post(client, {"type": "order", "order_id": f"e-{i}", "amount": 1}).status_code for i in range(30)
        ]
        worker_state.of(app).ledger.close()
        return codes

    first = pattern(7)
    assert first == pattern(7)
    assert set(first) == {200, 503}
    assert first != pattern(8)


def test_status_and_latency_injection_and_control_api(app: Flask, client: FlaskClient) -> None:
    assert client.put("/_lab/failures", json={"error_rate": 1, "status": 429}).status_code == 200
    response = post(client, {"type": "order", "order_id": "f", "amount": 1})
    assert response.status_code == 429
    assert "injected failure 429" in response.json["error"]
    assert worker_state.of(app).ledger.summary()["deliveries"] == 0  # failed before any work

    assert client.put("/_lab/failures", json={"error_rate": 0, "latency_ms": 200}).json["latency_ms"] == 200
    started = time.monotonic()
    assert post(client, {"type": "order", "order_id": "f", "amount": 1}).status_code == 200
    assert time.monotonic() - started >= 0.2

    bad = client.put("/_lab/failures", json={"status": 9})
    assert bad.status_code == 400
    assert "status" in bad.json["error"]
    assert client.put("/_lab/failures", json=[1]).status_code == 400
    health = client.get("/_lab/health").json
    assert health["ok"] is True
    assert health["failures"]["latency_ms"] == 200
    assert client.post("/_lab/reset").json == {"reset": True}
    assert client.get("/_lab/failures").json == Failures().__dict__
    assert client.get("/_lab/ledger").json["summary"]["applied"] == 0


def test_switch_turns_hang_off() -> None:
    switch = FailureSwitch(seed=1)
    assert switch.unhung.is_set()
    switch.update(hang=True)
    assert not switch.unhung.is_set()
    switch.reset()
    assert switch.unhung.is_set()
    assert switch.current == Failures()


def _post_in_thread(url: str, body: dict[str, Any], result: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        try:
            result["response"] = requests.post(url, data=json.dumps(body), timeout=10)
        except requests.RequestException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_hang_is_released_by_turning_it_off(worker: HttpServer, wait_for: Callable[..., Any]) -> None:
    failures = worker_state.of(worker.app).failures
    failures.update(hang=True)
    result: dict[str, Any] = {}
    thread = _post_in_thread(worker.url + "/", {"type": "order", "order_id": "h", "amount": 1}, result)
    concurrency = worker_state.of(worker.app).concurrency
    wait_for(lambda: concurrency.snapshot()["now"] == 1)
    thread.join(timeout=0.2)
    assert thread.is_alive()  # still hanging
    failures.update(hang=False)
    thread.join(timeout=5)
    assert result["response"].status_code == 200
    assert concurrency.snapshot() == {"now": 0, "peak": 1}


def test_stopping_the_server_releases_a_hang(tmp_path: Path, wait_for: Callable[..., Any]) -> None:
    app = create_app({"LEDGER_PATH": str(tmp_path / "h.sqlite")})
    server = HttpServer(app).start()
    worker_state.of(app).failures.update(hang=True)
    result: dict[str, Any] = {}
    thread = _post_in_thread(server.url + "/", {"type": "order", "order_id": "h", "amount": 1}, result)
    wait_for(lambda: worker_state.of(app).concurrency.snapshot()["now"] == 1)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    thread.join(timeout=5)
    assert not thread.is_alive()
    worker_state.of(app).ledger.close()


def test_crash_in_process_closes_the_server_not_pytest(worker: HttpServer) -> None:
    worker_state.of(worker.app).failures.update(crash=True)
    body = json.dumps({"type": "order", "order_id": "c", "amount": 1})
    with pytest.raises(requests.ConnectionError):
        requests.post(worker.url + "/", data=body, timeout=5)  # the connection drops, no answer
    assert worker.crashed.is_set()
    assert not worker.running
    with pytest.raises(requests.ConnectionError):
        requests.post(worker.url + "/", data=body, timeout=5)  # and later connections are refused
    assert worker_state.of(worker.app).ledger.summary()["deliveries"] == 0


CRASH_SCRIPT = """
import json, sys, requests
from labapp.runtime import HttpServer
from labapp.worker import create_app, of
app = create_app({"LEDGER_PATH": sys.argv[1]})
of(app).failures.update(crash=True)
body = json.dumps({"type": "order", "order_id": "c", "amount": 1})
if sys.argv[2] == "app":
    app.test_client().post("/", data=body)
else:
    server = HttpServer(app, crash="exit").start()
    try:
        requests.post(server.url + "/", data=body, timeout=5)
    except requests.RequestException:
        pass
print("survived")
"""


@pytest.mark.parametrize("how", ["app", "server"])
def test_crash_in_a_worker_process_really_exits(tmp_path: Path, how: str) -> None:
    # What `labapp worker` runs: the app's own crash, or HttpServer(crash="exit"), ends the process.
    done = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path / "c.sqlite"), how],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 70, done.stderr
    assert "survived" not in done.stdout


# -- the inspector -------------------------------------------------------------------------------------
def test_inspector_keeps_the_raw_request(worker: HttpServer) -> None:
    body = b'{"type": "order", "order_id": "raw", "amount": 1}'
    head = (
        b"POST /raw/path?x=1 HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"x-zeta: last-alphabetically-first-on-wire\r\n"
        b"X-Aws-Sqsd-Msgid: raw-1\r\n"
        b"content-type: application/json\r\n"
        b"X-Alpha:  spaced  \r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n\r\n"
    )
    with socket.create_connection((worker.host, worker.port), timeout=5) as sock:
        sock.sendall(head + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    [recorded] = worker_state.of(worker.app).inspector.last()
    assert recorded.request_line == "POST /raw/path?x=1 HTTP/1.1"
    assert [name for name, _ in recorded.headers] == [
        "Host",
        "x-zeta",
        "X-Aws-Sqsd-Msgid",
        "content-type",
        "X-Alpha",
        "Content-Length",
        "Connection",
    ]
    assert recorded.header("x-alpha") == "spaced"
    assert recorded.body == body
    assert recorded.status == 200
    assert recorded.remote_addr == "127.0.0.1"
    data = recorded.as_dict()
    assert data["body_text"] == body.decode()
    assert data["request_line"] == recorded.request_line


def test_inspector_records_binary_bodies_and_skips_controls(app: Flask, client: FlaskClient) -> None:
    inspector = worker_state.of(app).inspector
    seen: list[Any] = []
    unsubscribe = inspector.subscribe(seen.append)
    client.post("/", data=b"\xff\x00raw")
    client.get("/_lab/health")
    [recorded] = inspector.last()
    assert recorded.body == b"\xff\x00raw"
    assert recorded.status == 400
    assert recorded.as_dict()["body_text"] is None
    assert recorded.as_dict()["body_base64"] == "/wByYXc="
    assert seen == [recorded]
    unsubscribe()
    listed = client.get("/_lab/requests?n=5").json
    assert [item["body_base64"] for item in listed] == ["/wByYXc="]
    assert client.delete("/_lab/requests").json == {"cleared": True}
    assert inspector.last() == []


def test_inspector_keeps_only_the_last_n(tmp_path: Path) -> None:
    app = create_app({"LEDGER_PATH": str(tmp_path / "k.sqlite"), "INSPECT_KEEP": 3})
    client = app.test_client()
    for i in range(5):
        client.post("/", data=f"body-{i}")
    assert [r.body for r in worker_state.of(app).inspector.last()] == [b"body-2", b"body-3", b"body-4"]
    assert [r.body for r in worker_state.of(app).inspector.last(1)] == [b"body-4"]
    worker_state.of(app).ledger.close()


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    assert ledger.apply("order:1", "order", "m-1")
    ledger.close()
    again = Ledger(path)
    assert not again.apply("order:1", "order", "m-2", receive_count=2)
    assert again.applied("order:1")
    assert again.deliveries() == {"order:1": 2}
    again.clear()
    assert again.summary() == {"applied": 0, "deliveries": 0, "duplicates": 0}
    again.close()


def test_concurrent_duplicates_apply_once(worker: HttpServer) -> None:
    body = json.dumps({"type": "order", "order_id": "race", "amount": 1})
    results: list[int] = []

    def send() -> None:
        results.append(requests.post(worker.url + "/", data=body, timeout=10).status_code)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 12
    ledger = worker_state.of(worker.app).ledger
    assert ledger.applications() == {"order:race": 1}
    assert ledger.deliveries() == {"order:race": 12}
