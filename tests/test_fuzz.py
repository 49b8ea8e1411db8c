"""Fuzz: odd bodies, attributes and options through the real daemon and worker, and nothing breaks.

Message bodies and attributes go through moto, the daemon (driven one `poll_once` at a time, so
each example takes milliseconds) and the worker served by waitress. Every example must end
deleted (the worker answered 200) or in the DLQ (the worker answered 400 with a one-line reason),
and the worker must never answer 5xx. Hypothesis runs derandomized with modest example counts.
"""

from __future__ import annotations

import json
import os
import re
import string
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from labapp.errors import ConfigError, LabError
from labapp.runtime.servers import HttpServer
from labapp.sqs.client import SqsClient
from labapp.sqs.queues import QueuePair, ensure_queues, send_messages, string_attributes
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.options import OPTION_NAMES, RANGES, SqsdOptions, with_options
from labapp.sqsd.post import header_value
from labapp.worker import state as worker_state

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
SQS_LIMIT = 1_048_576  # bytes, body plus attributes (docs/aws-behaviour.md#sqs-message-size)
MAX_RETRIES = 2  # the fuzz queue's maxReceiveCount: a rejected message takes two POSTs to the DLQ
moto_only = pytest.mark.skipif(
    os.environ.get("LAB_BACKEND") == "localstack", reason="sends bodies moto accepts and real SQS refuses"
)


def sqs_allowed(ch: str) -> bool:
    """Return True for the characters SQS accepts: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-."""
    cp = ord(ch)
    return ch in "\t\n\r" or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD or cp >= 0x10000


sqs_chars = st.characters(exclude_categories=("Cs",)).filter(sqs_allowed)
sqs_text = st.text(sqs_chars, max_size=40)
emoji = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | sqs_text
    | st.text(emoji, max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(sqs_text, children, max_size=4),
    max_leaves=12,
)
orders = st.fixed_dictionaries(
    {
        "type": st.just("order"),
        "order_id": st.text(sqs_chars | emoji, min_size=1, max_size=30).filter(str.strip),
        "amount": st.integers(0, 10**12) | st.floats(0, 1e12),
    }
)
bodies = st.one_of(
    st.text(" \t\r\n", min_size=1, max_size=20),
    st.text(sqs_chars, min_size=1, max_size=300),
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False)),
    orders.map(lambda order: json.dumps(order, ensure_ascii=False)),
    st.text(emoji, min_size=1, max_size=30),
)


def order_body(**extra: Any) -> str:
    return json.dumps({"type": "order", "order_id": f"fz-{uuid.uuid4().hex[:12]}", "amount": 1, **extra})


def padded_order(size: int, char: str = "x") -> str:
    """Return a valid order body of exactly size bytes, padded with char (topped up with "x")."""
    body = order_body(pad="")
    chars, rest = divmod(size - len(body.encode()), len(char.encode()))
    return body[:-2] + char * chars + "x" * rest + body[-2:]


# -- the pipeline: moto -> daemon -> worker ----------------------------------------------------------
class Pipeline:
    """A fuzz queue, a daemon driven one poll at a time, and the worker; deliver() follows one message."""

    def __init__(self, sqs: SqsClient, queues: QueuePair, daemon: Daemon, worker: HttpServer) -> None:
        self.sqs = sqs
        self.queues = queues
        self.daemon = daemon
        self.worker = worker
        self.events: list[Any] = []
        daemon.subscribe(self.events.append)

    def deliver(self, body: str, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one message and poll until it is deleted or in the DLQ; return what happened."""
        kwargs: dict[str, Any] = {"QueueUrl": self.queues.url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = attributes
        message_id = self.sqs.send_message(**kwargs)["MessageId"]
        outcome = None
        for _ in range(MAX_RETRIES + 3):
            self.daemon.poll_once(wait_time_seconds=0)
            assert self.daemon.wait_idle(timeout=30)
            if any(e.kind == "deleted" and e.message_id == message_id for e in self.events):
                outcome = "deleted"
                break
            if self._take_from_dlq(message_id):
                outcome = "dlq"
                break
        records = [
            r
            for r in worker_state.of(self.worker.app).inspector.last()
            if r.header("X-Aws-Sqsd-Msgid") == message_id
        ]
        responses = [e for e in self.events if e.kind == "response" and e.message_id == message_id]
        self.events.clear()
        return {"id": message_id, "outcome": outcome, "records": records, "responses": responses}

    def _take_from_dlq(self, message_id: str) -> bool:
        reply = self.sqs.receive_message(
            QueueUrl=self.queues.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        found = False
        for message in reply.get("Messages", []):
            found = found or message["MessageId"] == message_id
            self.sqs.delete_message(QueueUrl=self.queues.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        return found


@pytest.fixture
def pipeline(sqs: SqsClient, worker: HttpServer) -> Iterator[Pipeline]:
    options = SqsdOptions(
        VisibilityTimeout=30,
        ErrorVisibilityTimeout=0,
        InactivityTimeout=10,
        MaxRetries=MAX_RETRIES,
        HttpConnections=4,
    )
    queues = ensure_queues(sqs, f"fz-{uuid.uuid4().hex[:10]}", MAX_RETRIES, options.VisibilityTimeout)
    daemon = Daemon(sqs, options, queue_url=queues.url, http_url=worker.url, wait_time_seconds=0)
    try:
        yield Pipeline(sqs, queues, daemon, worker)
    finally:
        daemon.close()


def check_delivery(pipeline: Pipeline, body: str, result: dict[str, Any]) -> None:
    """The worker answered only 200 or 400, consistently, and the message ended where it should."""
    statuses = [r.status for r in result["records"]]
    assert statuses, f"the worker never saw {body[:80]!r}"
    assert set(statuses) <= {200, 400}, statuses
    # Ask the same worker again: a 200 must now be a duplicate (idempotency), a 400 must explain itself.
    replay = pipeline.worker.app.test_client().post(
        "/", data=body.encode(), headers={"X-Aws-Sqsd-Msgid": "replay"}
    )
    if replay.status_code == 200:
        assert result["outcome"] == "deleted" and statuses == [200]
        assert replay.get_json()["result"] == "duplicate"
    else:
        assert replay.status_code == 400
        assert result["outcome"] == "dlq" and statuses == [400] * MAX_RETRIES
        reason = replay.get_json()["error"]
        assert reason and "\n" not in reason


@settings(FUZZ, max_examples=100)
@given(body=bodies)
@example(body="   ")
@example(body="{not json")
@example(body="SQSMessageBody=hello&SQSMMessageId=1")
@example(body="[" * 10_000 + "]" * 10_000)
@example(body='{"a":' * 10_000 + "1" + "}" * 10_000)
@example(body=json.dumps({"type": "order", "order_id": "ünïcødé-☕-🎉", "amount": 3}, ensure_ascii=False))
@example(body="🎉" * 1000)
@example(body="\x7f\ue000\ufffd\U0010ffff")
@example(body=padded_order(SQS_LIMIT))
@example(body=padded_order(SQS_LIMIT, "😀"))
@example(body="x" * SQS_LIMIT)
def test_any_body_ends_deleted_or_in_the_dlq(pipeline: Pipeline, body: str) -> None:
    result = pipeline.deliver(body)
    assert result["outcome"] in ("deleted", "dlq"), f"{body[:80]!r} is neither deleted nor in the DLQ"
    check_delivery(pipeline, body, result)
    received = result["records"][0].body
    assert received == body.encode("utf-8"), "the daemon must POST the body byte for byte"


@moto_only
def test_an_empty_body_that_slips_past_the_kit_gets_a_400_with_a_reason(pipeline: Pipeline) -> None:
    # moto accepts an empty body (real SQS refuses it); the worker still answers with a reason.
    result = pipeline.deliver("")
    assert result["outcome"] == "dlq"
    assert [r.status for r in result["records"]] == [400] * MAX_RETRIES
    assert "body is empty" in result["responses"][0].detail


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps({"type": []}), id="type-is-a-list"),
        pytest.param(json.dumps({"type": {"order": 1}}), id="type-is-an-object"),
    ],
)
def test_a_non_string_type_is_a_400_not_a_crash(pipeline: Pipeline, body: str) -> None:
    result = pipeline.deliver(body)
    assert [r.status for r in result["records"]] == [400] * MAX_RETRIES
    assert result["outcome"] == "dlq"


def test_a_reason_stays_short_whatever_the_input(worker: HttpServer) -> None:
    reply = worker.app.test_client().post("/", data=json.dumps({"type": "x" * 100_000}))
    assert reply.status_code == 400
    reason = reply.get_json()["error"]
    assert "\n" not in reason and len(reason) <= 300, f"a {len(reason)}-character reason"


@settings(FUZZ, max_examples=100)
@given(data=st.binary(min_size=1, max_size=200).filter(lambda b: not _is_utf8(b)))
@example(data=b"\xff\xfe\xfd")
@example(data=b'{"type": "order", "order_id": "\xc3\x28", "amount": 1}')
def test_invalid_utf8_bytes_get_a_clear_400(worker: HttpServer, data: bytes) -> None:
    # SQS bodies are text, so raw bytes can only reach the worker directly (or as Binary attributes).
    reply = worker.app.test_client().post("/", data=data)
    assert reply.status_code == 400
    assert reply.get_json()["error"].startswith("body is not valid UTF-8")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@moto_only
def test_the_daemon_loop_survives_every_odd_body_at_once(
    sqs: SqsClient, worker: HttpServer, run_daemon: Any
) -> None:
    odd = [
        "",
        " ",
        "\x00\x01 control characters moto lets through",
        "[" * 10_000 + "]" * 10_000,
        "not json",
        "x" * SQS_LIMIT,
        "🎉" * 100,
        order_body(),
        padded_order(SQS_LIMIT),
    ]
    options = SqsdOptions(
        VisibilityTimeout=30, ErrorVisibilityTimeout=0, MaxRetries=MAX_RETRIES, InactivityTimeout=10
    )
    queues = ensure_queues(sqs, f"fz-{uuid.uuid4().hex[:10]}", MAX_RETRIES, options.VisibilityTimeout)
    for body in odd:
        sqs.send_message(QueueUrl=queues.url, MessageBody=body)
    running = run_daemon(queues.url, worker.url, options)
    deadline = time.monotonic() + 60
    dead: list[str] = []
    deleted = 0
    while len(dead) + deleted < len(odd) and time.monotonic() < deadline:
        reply = sqs.receive_message(QueueUrl=queues.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for message in reply.get("Messages", []):
            dead.append(message["Body"])
            sqs.delete_message(QueueUrl=queues.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        deleted = running.kinds().count("deleted")
        time.sleep(0.2)
    assert running.thread.is_alive() and running.daemon.state == "running"
    assert deleted == 2, "the two valid orders are deleted"
    assert sorted(dead) == sorted(odd[:-2]), "every other message is in the DLQ"
    statuses = {r.status for r in worker_state.of(worker.app).inspector.last()}
    assert statuses <= {200, 400}
    running.stop()
    assert running.daemon.state == "stopped"


# -- what real SQS refuses: the kit must refuse it too, clearly (moto accepts most of it) ---------------
@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("a\x00b", "U+0000", id="nul"),
        pytest.param("a\x08b", "U+0008", id="backspace"),
        pytest.param("a\ufffeb", "U+FFFE", id="non-character"),
        pytest.param("a\ud800b", "U+D800", id="lone-surrogate"),
        pytest.param("x" * (SQS_LIMIT + 1), "1,048,576", id="one-byte-too-big"),
        pytest.param("😀" * (SQS_LIMIT // 4 + 1), "1,048,576", id="emoji-too-big"),
    ],
)
def test_send_refuses_what_sqs_refuses_with_a_clear_error(
    sqs: SqsClient, queues: QueuePair, body: str, words: str
) -> None:
    with pytest.raises(LabError, match=re.escape(words)):
        send_messages(sqs, queues.url, [body])


def test_send_counts_attributes_towards_the_size_limit(sqs: SqsClient, queues: QueuePair) -> None:
    attributes = {"trace": "t" * 100}
    size_of_attribute = len("trace") + len("String") + 100
    send_messages(sqs, queues.url, ["x" * (SQS_LIMIT - size_of_attribute)], attributes)
    with pytest.raises(LabError, match="1,048,576"):
        send_messages(sqs, queues.url, ["x" * (SQS_LIMIT - size_of_attribute + 1)], attributes)


def test_send_splits_batches_that_would_exceed_the_batch_limit(sqs: SqsClient, queues: QueuePair) -> None:
    # SendMessageBatch also has a 1,048,576-byte limit for all ten entries together.
    sizes: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sizes.append(sum(len(entry["MessageBody"].encode()) for entry in params["Entries"]))

    sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
    try:
        ids = send_messages(sqs, queues.url, ["y" * 400_000] * 4)
    finally:
        sqs.meta.events.unregister("provide-client-params.sqs.SendMessageBatch", record)
    assert len(ids) == 4
    assert max(sizes) <= SQS_LIMIT, f"a batch of {max(sizes):,} bytes"
    assert len(sizes) == 2, "four messages of 400,000 bytes fit in two batches"


@pytest.mark.parametrize(
    ("attributes", "words"),
    [
        pytest.param({"AWS.trace": "v"}, "reserved", id="aws-prefix"),
        pytest.param({"amazon.x": "v"}, "reserved", id="amazon-prefix"),
        pytest.param({".lead": "v"}, "'.'", id="leading-dot"),
        pytest.param({"trail.": "v"}, "'.'", id="trailing-dot"),
        pytest.param({"a..b": "v"}, "'..'", id="double-dot"),
        pytest.param({"a" * 257: "v"}, "256", id="name-too-long"),
        pytest.param({"sp ace": "v"}, "invalid", id="space"),
        pytest.param({f"a{i}": "v" for i in range(11)}, "10", id="eleven-attributes"),
        pytest.param({"empty": ""}, "empty", id="empty-value"),
        pytest.param({"ctl": "a\x00"}, "U+0000", id="nul-in-value"),
    ],
)
def test_send_refuses_invalid_attributes_naming_the_rule(
    sqs: SqsClient, queues: QueuePair, attributes: dict[str, str], words: str
) -> None:
    with pytest.raises(LabError, match=re.escape(words)):
        send_messages(sqs, queues.url, [order_body()], attributes)


# -- attributes through the daemon: names and values at their limits ----------------------------------
name_chars = st.sampled_from(string.ascii_letters + string.digits + "_.-")


def valid_name(name: str) -> bool:
    return (
        not name.startswith(".")
        and not name.endswith(".")
        and ".." not in name
        and not name.lower().startswith(("aws.", "amazon.", "beanstalk.sqsd."))
    )


attribute_names = st.text(name_chars, min_size=1, max_size=256).filter(valid_name)
attribute_values = st.text(sqs_chars | emoji, min_size=1, max_size=60)
attribute_sets = st.dictionaries(
    attribute_names, attribute_values | st.integers(-(10**9), 10**9), min_size=1, max_size=10
).filter(
    lambda d: len({k.lower() for k in d}) == len(d)  # HTTP header names are case-insensitive
)


def wire_value(recorded: str) -> str:
    # The inspector keeps header bytes as Latin-1 text; the daemon sends non-Latin-1 values as UTF-8.
    try:
        return recorded.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return recorded


@settings(FUZZ, max_examples=40)
@given(attributes=attribute_sets)
@example(attributes={"a" * 256: "v" * 60})
@example(attributes={f"n.{i}-x_{i}": f"value {i}" for i in range(10)})
@example(attributes={"crlf": "\r\n", "tabs": "\t\t", "inner": "a\tb  c"})
def test_attributes_arrive_as_sqsd_attr_headers(pipeline: Pipeline, attributes: dict[str, Any]) -> None:
    message_attributes = string_attributes(attributes)
    if len(message_attributes) < 10:
        message_attributes["raw.bytes"] = {"DataType": "Binary", "BinaryValue": b"\xff\xfe\x00\x80"}
    body = order_body()
    result = pipeline.deliver(body, message_attributes)
    assert result["outcome"] == "deleted", [e.detail for e in result["responses"]]
    headers = dict(result["records"][0].headers)
    for name, value in attributes.items():
        # Controls become spaces and surrounding blanks go (RFC 9110 §5.5), nothing else changes.
        assert wire_value(headers[f"X-Aws-Sqsd-Attr-{name}"]) == header_value(str(value))
    assert "X-Aws-Sqsd-Attr-raw.bytes" not in headers, "Binary attributes are not passed on"


@pytest.mark.parametrize(
    "value", ["ends in a no-break space\xa0", "ends in NEL\x85", "\u2028 line separator"]
)
def test_the_inspector_keeps_utf8_header_values_intact(pipeline: Pipeline, value: str) -> None:
    # The UTF-8 bytes of these characters end in 0xA0, 0x85 and 0xA8: read as Latin-1 text they look
    # like Unicode whitespace, and a plain str.strip() would cut them off what the learner sees.
    result = pipeline.deliver(order_body(), string_attributes({"note": value}))
    assert result["outcome"] == "deleted"
    assert wire_value(dict(result["records"][0].headers)["X-Aws-Sqsd-Attr-note"]) == value


@pytest.mark.parametrize(
    ("value", "arrives_as"),
    [
        pytest.param(" leading space", "leading space", id="leading-space"),
        pytest.param("trailing space ", "trailing space", id="trailing-space"),
        pytest.param("\tindented", "indented", id="leading-tab"),
        pytest.param("two\nlines", "two lines", id="line-feed"),
        pytest.param("del\x7fchar", "del char", id="delete-character"),
        pytest.param("x\r\nX-Forged: 1", "x  X-Forged: 1", id="header-injection"),
        pytest.param("\xa0no-break space first", "\xa0no-break space first", id="leading-nbsp"),
        pytest.param("café ☕", "café ☕", id="utf-8"),
    ],
)
def test_a_legal_attribute_value_never_keeps_a_message_from_the_app(
    pipeline: Pipeline, value: str, arrives_as: str
) -> None:
    # All legal SQS attribute values: the message must reach the app, not cycle into the DLQ.
    # Spaces around a header value are not part of it on the receiving side, so they may go.
    result = pipeline.deliver(order_body(), string_attributes({"note": value}))
    assert result["outcome"] == "deleted", [e.detail for e in result["responses"]]
    headers = dict(result["records"][0].headers)
    assert wire_value(headers["X-Aws-Sqsd-Attr-note"]) == arrives_as
    assert "X-Forged" not in headers


# -- lab controls and sqsd options -------------------------------------------------------------------
@settings(FUZZ, max_examples=80)
@given(payload=json_values)
@example(payload={"error_rate": "1"})
@example(payload={"status": 500.0})
@example(payload={"latency_ms": -1})
@example(payload={"hang": "yes"})
def test_failure_settings_never_crash_the_worker(worker: HttpServer, payload: Any) -> None:
    client = worker.app.test_client()
    try:
        reply = client.put("/_lab/failures", json=payload)
        assert reply.status_code in (200, 400), reply.status_code
        if reply.status_code == 400:
            assert reply.get_json()["error"]
    finally:
        worker_state.of(worker.app).failures.reset()


RANGE_NAMES = sorted(RANGES)


@settings(FUZZ, max_examples=120)
@given(data=st.data(), name=st.sampled_from(RANGE_NAMES))
def test_out_of_range_numbers_name_the_option(data: st.DataObject, name: str) -> None:
    low, high = RANGES[name]
    value = data.draw(st.integers(max_value=low - 1) | st.integers(min_value=high + 1))
    with pytest.raises(ConfigError, match=name):
        SqsdOptions(**{name: value})
    with pytest.raises(ConfigError, match=name):
        with_options(SqsdOptions(), {name: str(value)})


wrong_types = st.one_of(
    st.floats(allow_nan=True),
    st.text(max_size=10),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.binary(max_size=5),
)


@settings(FUZZ, max_examples=150)
@given(name=st.sampled_from(OPTION_NAMES), value=wrong_types)
def test_wrong_types_name_the_option(name: str, value: Any) -> None:
    if name in ("HttpPath", "MimeType", "WorkerQueueURL") and isinstance(value, str):
        valid = {
            "HttpPath": value.startswith("/"),
            "MimeType": bool(value.strip()),
            "WorkerQueueURL": True,
        }[name]
        if valid:
            assert getattr(SqsdOptions(**{name: value}), name) == value
            return
    with pytest.raises(ConfigError, match=name):
        SqsdOptions(**{name: value})


@settings(FUZZ, max_examples=200)
@given(name=st.sampled_from(RANGE_NAMES), text=st.text(max_size=8))
@example(name="HttpConnections", text="²")
@example(name="MaxRetries", text="--5")
@example(name="ConnectTimeout", text="1e1")
@example(name="InactivityTimeout", text=" 30 ")
@example(name="VisibilityTimeout", text="٣")
@example(name="ErrorVisibilityTimeout", text="")
def test_option_strings_are_accepted_or_refused_naming_the_option(name: str, text: str) -> None:
    # Values from a config file or --option arrive as strings: either they mean a whole number in
    # range, or the error names the option. No other exception may escape.
    low, high = RANGES[name]
    try:
        options = with_options(SqsdOptions(), {name: text})
    except ConfigError as exc:
        assert name in str(exc)
        return
    assert low <= getattr(options, name) <= high
    assert getattr(options, name) == int(text)


@settings(FUZZ, max_examples=60)
@given(name=st.text(min_size=1, max_size=30).filter(lambda n: n not in OPTION_NAMES))
@example(name="MaxConcurrentAPIConnections")
@example(name="MimetypeJSON")
def test_unknown_option_names_are_named(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        with_options(SqsdOptions(), {name: "1"})
    assert name in str(caught.value)
