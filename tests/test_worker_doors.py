"""The worker's doors: which requests are messages, which are control calls, and who may sign them.

Each test here was a hole: a path that only looked like /_lab skipped the signature, the control
routes took anyone's call, a message could reach /_lab/reset, a forged header gave a 500, a
captured request worked forever, and the compose file's public secret was accepted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from labapp import settings, signature
from labapp.errors import ConfigError
from labapp.sqs.client import SqsClient
from labapp.sqs.queues import QueuePair
from labapp.sqsd.options import LAB_PROFILE
from labapp.worker import state as worker_state
from labapp.worker.app import create_app

SECRET = "a" * 16 + "b" * 16  # 32 characters, the shortest the lab accepts
BIG_ORDER = json.dumps({"type": "order", "order_id": "big-1", "amount": 1_000}).encode()


@pytest.fixture
def signed_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"LEDGER_PATH": str(tmp_path / "ledger.sqlite"), "SHARED_SECRET": SECRET})
    yield app
    worker_state.of(app).ledger.close()


@pytest.fixture
def open_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"LEDGER_PATH": str(tmp_path / "ledger.sqlite")})
    yield app
    worker_state.of(app).ledger.close()


def control(client: FlaskClient, method: str, path: str, body: bytes = b"", **extra: str) -> Any:
    headers = {**signature.control_headers(SECRET, method, path, body), **extra}
    return client.open(path, method=method, data=body, headers=headers)


# -- 1. the guard follows Flask's routing, not the path's spelling -----------------------------------
@pytest.mark.parametrize("path", ["/_labx", "/_lab", "/_lab/", "/_lab/x", "/_lab/health/x", "/_lab/../_lab"])
def test_a_path_that_only_looks_like_a_control_route_needs_a_message_signature(
    signed_app: Flask, path: str
) -> None:
    client = signed_app.test_client()
    reply = client.post(path, data=BIG_ORDER, headers={"X-Aws-Sqsd-Msgid": "m-1"})
    assert reply.status_code == 401, reply.json
    assert signature.SIGNATURE_HEADER in reply.json["error"]
    current = worker_state.of(signed_app)
    assert current.ledger.summary()["deliveries"] == 0
    [recorded] = current.inspector.last()  # and the inspector saw it
    assert recorded.status == 401
    assert recorded.body == BIG_ORDER


def test_a_signed_message_on_such_a_path_is_an_ordinary_message(signed_app: Flask) -> None:
    headers = {"X-Aws-Sqsd-Msgid": "m-1", **signature.message_headers(SECRET, "m-1", BIG_ORDER)}
    reply = signed_app.test_client().post("/_labx", data=BIG_ORDER, headers=headers)
    assert reply.status_code == 200
    assert reply.json["result"] == "applied"


def test_the_inspector_records_every_request_but_control_calls(open_app: Flask) -> None:
    client = open_app.test_client()
    client.post("/_labx", data=b"x")
    client.get("/_lab/health")
    client.get("/_lab/nothing-here")  # no such control route: 405 from the message route
    client.put("/_lab/failures", json={"latency_ms": 0})
    assert [(r.path, r.status) for r in worker_state.of(open_app).inspector.last()] == [
        ("/_labx", 400),
        ("/_lab/nothing-here", 405),
    ]


# -- 2. control calls are signed when a secret is set --------------------------------------------------
CONTROL_CALLS = [
    ("PUT", "/_lab/failures", json.dumps({"crash": True}).encode()),
    ("PUT", "/_lab/failures", json.dumps({"error_rate": 1}).encode()),
    ("GET", "/_lab/failures", b""),
    ("POST", "/_lab/reset", b""),
    ("GET", "/_lab/requests", b""),
    ("DELETE", "/_lab/requests", b""),
    ("GET", "/_lab/ledger", b""),
    ("DELETE", "/_lab/ledger", b""),
]


@pytest.mark.parametrize(("method", "path", "body"), CONTROL_CALLS)
def test_control_routes_refuse_unsigned_calls_when_a_secret_is_set(
    signed_app: Flask, method: str, path: str, body: bytes
) -> None:
    client = signed_app.test_client()
    reply = client.open(path, method=method, data=body, content_type="application/json")
    assert reply.status_code == 401
    assert signature.SIGNATURE_HEADER in reply.json["error"]
    assert worker_state.of(signed_app).failures.current.crash is False
    assert control(client, method, path, body, **{"Content-Type": "application/json"}).status_code == 200


def test_health_stays_open_and_shows_nothing_secret(signed_app: Flask) -> None:
    reply = signed_app.test_client().get("/_lab/health")
    assert reply.status_code == 200
    assert SECRET not in reply.get_data(as_text=True)
    assert set(reply.json) == {"ok", "daemon", "ledger", "failures", "concurrency"}


def test_a_control_signature_covers_method_path_body_and_is_used_once(signed_app: Flask) -> None:
    client = signed_app.test_client()
    body = json.dumps({"latency_ms": 5}).encode()
    headers = signature.control_headers(SECRET, "PUT", "/_lab/failures", body)
    other_body = client.put("/_lab/failures", data=json.dumps({"crash": True}), headers=headers)
    assert other_body.status_code == 401
    assert client.delete("/_lab/ledger", headers=headers).status_code == 401  # other method and path
    assert client.put("/_lab/failures", data=body, headers=headers).status_code == 200
    again = client.put("/_lab/failures", data=body, headers=headers)
    assert again.status_code == 401
    assert "already used" in again.json["error"]
    query = signature.control_headers(SECRET, "GET", "/_lab/requests?n=1")
    assert client.get("/_lab/requests?n=1", headers=query).status_code == 200
    query = signature.control_headers(SECRET, "GET", "/_lab/requests?n=1")
    assert client.get("/_lab/requests?n=500", headers=query).status_code == 401  # the query is signed


def test_a_message_signature_never_passes_as_a_control_signature(signed_app: Flask) -> None:
    client = signed_app.test_client()
    forged = {**signature.message_headers(SECRET, "m-1", b""), signature.NONCE_HEADER: "n-1"}
    reply = client.post("/_lab/reset", headers=forged)
    assert reply.status_code == 401
    assert signature.SIGNATURE_HEADER in reply.json["error"]


# -- 3. what the daemon POSTs never reaches a control route ---------------------------------------------
@pytest.mark.parametrize("header", ["X-Aws-Sqsd-Msgid", "X-Aws-Sqsd-Taskname", "x-aws-sqsd-queue"])
def test_a_daemon_post_to_a_control_route_is_refused_and_recorded(open_app: Flask, header: str) -> None:
    client = open_app.test_client()
    order = {"type": "order", "order_id": "twice", "amount": 5}
    assert client.post("/", json=order, headers={"X-Aws-Sqsd-Msgid": "m-1"}).status_code == 200
    reply = client.post("/_lab/reset", headers={header: "m-2"})
    assert reply.status_code == 403
    assert "/_lab/reset" in reply.json["error"]
    assert client.post("/", json=order, headers={"X-Aws-Sqsd-Msgid": "m-3"}).json["result"] == "duplicate"
    current = worker_state.of(open_app)
    assert current.ledger.applications() == {"order:twice": 1}
    assert [(r.path, r.status) for r in current.inspector.last()] == [
        ("/", 200),
        ("/_lab/reset", 403),
        ("/", 200),
    ]


def test_the_guard_follows_the_route_flask_chose_for_odd_spellings(open_app: Flask) -> None:
    # Werkzeug routes //_lab/reset to the reset view, so it is a control route, daemon or not.
    client = open_app.test_client()
    daemon = {"X-Aws-Sqsd-Msgid": "m-1"}
    reply = client.post("/", headers=daemon, environ_overrides={"PATH_INFO": "//_lab/reset"})
    assert reply.status_code == 403
    # /_lab//reset is not: it reaches the message view, which reads it as a (bad) message.
    reply = client.post("/", headers=daemon, environ_overrides={"PATH_INFO": "/_lab//reset"})
    assert reply.status_code == 400
    assert "body is empty" in reply.json["error"]


def test_a_task_message_aimed_at_reset_does_not_wipe_the_ledger(
    sqs: SqsClient,
    queues: QueuePair,
    worker: Any,
    run_daemon: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    # The real daemon, the real worker: a message whose beanstalk.sqsd.path is /_lab/reset.
    ledger = worker_state.of(worker.app).ledger
    ledger.apply("order:kept", "order", "m-0")
    task = {
        "beanstalk.sqsd.task_name": {"DataType": "String", "StringValue": "reset"},
        "beanstalk.sqsd.path": {"DataType": "String", "StringValue": "/_lab/reset"},
        "beanstalk.sqsd.scheduled_time": {"DataType": "String", "StringValue": "2024-01-01 00:00:00 UTC"},
    }
    sqs.send_message(
        QueueUrl=queues.url, MessageBody="elasticbeanstalk scheduled job", MessageAttributes=task
    )
    running = run_daemon(queues.url, worker.url, LAB_PROFILE.replace(ErrorVisibilityTimeout=30))
    [event] = wait_for(lambda: [e for e in running.events if e.kind == "response" and e.status is not None])
    assert event.status == 403
    assert ledger.applied("order:kept")
    assert [r.path for r in worker_state.of(worker.app).inspector.last()] == ["/_lab/reset"]


# -- 4. a forged or replayed signature is a 401 with one reason ----------------------------------------------
@pytest.mark.parametrize("forged", ["sha256=é", "☃", "sha256=" + "ü" * 64, "\x00", " "])
def test_a_non_ascii_signature_is_a_401_not_a_500(signed_app: Flask, forged: str) -> None:
    headers = {
        "X-Aws-Sqsd-Msgid": "m-1",
        signature.TIMESTAMP_HEADER: str(int(time.time())),
        # What waitress hands the app: the header's bytes read as Latin-1.
        signature.SIGNATURE_HEADER: forged.encode("utf-8").decode("latin-1"),
    }
    reply = signed_app.test_client().post("/", data=BIG_ORDER, headers=headers)
    assert reply.status_code == 401
    assert "\n" not in reply.json["error"]


@pytest.mark.parametrize(
    ("offset", "word"), [(-signature.MAX_SKEW_S - 5, "old"), (signature.MAX_SKEW_S + 5, "ahead")]
)
def test_a_stale_or_future_message_is_refused_with_one_reason(
    signed_app: Flask, offset: int, word: str
) -> None:
    headers = signature.message_headers(SECRET, "m-1", BIG_ORDER, now=time.time() + offset)
    reply = signed_app.test_client().post("/", data=BIG_ORDER, headers={"X-Aws-Sqsd-Msgid": "m-1", **headers})
    assert reply.status_code == 401
    assert word in reply.json["error"] and str(signature.MAX_SKEW_S) in reply.json["error"]
    assert worker_state.of(signed_app).ledger.summary()["deliveries"] == 0


def test_a_message_inside_the_window_is_accepted(signed_app: Flask) -> None:
    headers = signature.message_headers(SECRET, "m-1", BIG_ORDER, now=time.time() - signature.MAX_SKEW_S + 30)
    reply = signed_app.test_client().post("/", data=BIG_ORDER, headers={"X-Aws-Sqsd-Msgid": "m-1", **headers})
    assert reply.status_code == 200


@pytest.mark.parametrize("stamp", ["", "soon", "1e9", "-5", "١٧٠٠٠٠٠٠٠٠", "9" * 5000])
def test_a_malformed_timestamp_is_refused_by_name(signed_app: Flask, stamp: str) -> None:
    headers = {**signature.message_headers(SECRET, "m-1", BIG_ORDER), signature.TIMESTAMP_HEADER: stamp}
    reply = signed_app.test_client().post("/", data=BIG_ORDER, headers={"X-Aws-Sqsd-Msgid": "m-1", **headers})
    assert reply.status_code == 401
    assert signature.TIMESTAMP_HEADER in reply.json["error"]
    assert len(reply.json["error"]) < 200


def test_a_stale_control_call_is_refused(signed_app: Flask) -> None:
    headers = signature.control_headers(SECRET, "POST", "/_lab/reset", now=time.time() - 3600)
    reply = signed_app.test_client().post("/_lab/reset", headers=headers)
    assert reply.status_code == 401
    assert "old" in reply.json["error"]


def test_seen_nonces_are_forgotten_after_the_window() -> None:
    seen = signature.SeenNonces()
    assert seen.first_use("n", now=1000.0)
    assert not seen.first_use("n", now=1000.0 + signature.MAX_SKEW_S)
    assert seen.first_use("n", now=1000.0 + 2 * signature.MAX_SKEW_S + 1)


def test_the_daemon_signs_with_a_timestamp() -> None:
    from labapp.sqsd.post import build_post

    message = {"MessageId": "m-1", "Body": "{}", "Attributes": {}}
    post = build_post(message, "q", LAB_PROFILE, secret=SECRET)
    signature.check_message(SECRET, "m-1", post.body, post.headers)
    stamp = int(post.headers[signature.TIMESTAMP_HEADER])
    assert abs(stamp - time.time()) < 5
    with pytest.raises(signature.BadSignature, match="old"):
        signature.check_message(SECRET, "m-1", post.body, post.headers, now=stamp + signature.MAX_SKEW_S + 1)


# -- 5. the secret itself ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "reason"),
    [("change-me-compose-lab", "public example"), ("short", "5 characters"), ("x" * 31, "31 characters")],
)
def test_a_weak_shared_secret_is_refused_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    monkeypatch.setenv(settings.SHARED_SECRET_ENV, value)
    with pytest.raises(ConfigError, match=reason) as caught:
        settings.shared_secret()
    message = str(caught.value)
    assert "./docker/make-env.sh" in message and "secrets.token_hex(32)" in message
    assert value not in message  # never echo a secret, even a bad one
    assert message.count(". ") == 0 and message.endswith(".")


def test_a_strong_or_missing_secret_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.SHARED_SECRET_ENV, SECRET)
    assert settings.shared_secret() == SECRET
    monkeypatch.setenv(settings.SHARED_SECRET_ENV, "")
    assert settings.shared_secret() is None


def _labapp(args: list[str], secret: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, settings.SHARED_SECRET_ENV: secret, "LAB_HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "labapp", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_worker_and_the_daemon_refuse_the_compose_default_at_start(
    tmp_path: Path, emulator: Any, queues: QueuePair
) -> None:
    worker = _labapp(
        ["worker", "--port", "0", "--ledger", str(tmp_path / "l.sqlite")], "change-me-compose-lab", tmp_path
    )
    daemon = _labapp(
        [
            "daemon",
            "--endpoint-url",
            emulator.url,
            "--queue-url",
            queues.url,
            "--http-url",
            "http://127.0.0.1:9",
        ],
        "change-me-compose-lab",
        tmp_path,
    )
    for done in (worker, daemon):
        assert done.returncode != 0
        assert "LAB_SHARED_SECRET is the public example value" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert "worker at" not in worker.stdout


def test_chaos_worker_process_signs_its_failure_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labapp.chaos.faults import WorkerProcess

    monkeypatch.setenv(settings.SHARED_SECRET_ENV, SECRET)
    process = WorkerProcess(tmp_path / f"l-{uuid.uuid4().hex[:6]}.sqlite", tmp_path / "worker.log")
    try:
        process.start()
        process.set_failures(latency_ms=1)
        health = process.health()
        assert health is not None and health["failures"]["latency_ms"] == 1
    finally:
        process.stop()
