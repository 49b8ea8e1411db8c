"""Queues as EB wires them: RedrivePolicy, no hard-coded accounts, peek, depth and redrive."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labapp.errors import EndpointError, LabError
from labapp.runtime.ports import free_port
from labapp.settings import ALLOW_AWS_ENV, LOCAL_HOSTS_ENV
from labapp.sqs.client import SqsClient, is_local, sqs_client
from labapp.sqs.look import PeekReceives
from labapp.sqs.queues import (
    QueuePair,
    depth,
    ensure_queues,
    lookup_queues,
    peek,
    purge,
    send_messages,
    string_attributes,
)
from labapp.sqs.redrive import move_messages, redrive


def fresh_name() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"


def policy(sqs: SqsClient, url: str) -> dict[str, object]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
    return dict(json.loads(attrs["RedrivePolicy"]))


def test_ensure_queues_wires_the_redrive_policy(sqs: SqsClient) -> None:
    name = fresh_name()
    pair = ensure_queues(sqs, name, max_retries=7, visibility_timeout=45)
    # Every URL comes from SQS itself: nothing assumes an account id or a host.
    assert pair.url == sqs.get_queue_url(QueueName=name)["QueueUrl"]
    assert pair.dlq_url == sqs.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
    assert pair.dlq_name == f"{name}-dlq"
    assert (pair.name, pair.max_receive_count) == (name, 7)
    assert policy(sqs, pair.url) == {"deadLetterTargetArn": pair.dlq_arn, "maxReceiveCount": 7}
    attrs = sqs.get_queue_attributes(QueueUrl=pair.url, AttributeNames=["All"])["Attributes"]
    assert attrs["QueueArn"] == pair.arn
    assert attrs["VisibilityTimeout"] == "45"
    dlq = sqs.get_queue_attributes(QueueUrl=pair.dlq_url, AttributeNames=["All"])["Attributes"]
    assert dlq["QueueArn"] == pair.dlq_arn
    assert dlq["MessageRetentionPeriod"] == "1209600"  # the DLQ keeps messages longest
    assert "RedrivePolicy" not in dlq


def test_ensure_queues_is_idempotent_and_updates_max_retries(sqs: SqsClient) -> None:
    name = fresh_name()
    first = ensure_queues(sqs, name, 3)
    again = ensure_queues(sqs, name, 3)
    assert again == first
    changed = ensure_queues(sqs, name, 10, visibility_timeout=60)
    assert changed.url == first.url
    assert policy(sqs, first.url)["maxReceiveCount"] == 10
    assert lookup_queues(sqs, name) == changed


def test_lookup_missing_queue_names_the_closest_queue_first(sqs: SqsClient) -> None:
    pair = ensure_queues(sqs, fresh_name(), 3)
    typo = pair.name[:-1] + ("x" if pair.name[-1] != "x" else "y")
    with pytest.raises(LabError) as caught:
        lookup_queues(sqs, typo)
    message = str(caught.value)
    assert message.startswith(
        f"No queue named {typo!r} on {sqs.meta.endpoint_url}. Did you mean {pair.name!r}"
    )
    assert " Queues there: " in message and "labapp up" not in message


def test_lookup_a_queue_without_redrive_policy_has_no_dlq(sqs: SqsClient) -> None:
    name = fresh_name()
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    pair = lookup_queues(sqs, name)  # used to ask for NAME-dlq and fail with NonExistentQueue
    assert (pair.url, pair.dlq_url, pair.dlq_arn, pair.dlq_name, pair.max_receive_count) == (
        url,
        "",
        "",
        "",
        0,
    )


def test_lookup_follows_the_redrive_policy_to_a_dlq_of_any_name(sqs: SqsClient) -> None:
    dlq_url = sqs.create_queue(QueueName=fresh_name())["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    name = fresh_name()
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 4})
    sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})
    pair = lookup_queues(sqs, name)
    assert (pair.dlq_url, pair.dlq_arn, pair.max_receive_count) == (dlq_url, dlq_arn, 4)


def test_send_messages_in_batches_keeps_order_and_attributes(sqs: SqsClient, queues: QueuePair) -> None:
    progress: list[int] = []
    ids = send_messages(
        sqs,
        queues.url,
        [f"body-{i}" for i in range(23)],
        {"customer": "42", "weight": 1.5, "count": 3, "flag": True, "blob": b"\x00\x01"},
        progress=progress.append,
    )
    assert len(ids) == len(set(ids)) == 23
    assert progress == [10, 10, 3]
    assert depth(sqs, queues).visible == 23
    [message] = peek(sqs, queues.url, 1)
    attrs = message["MessageAttributes"]
    assert attrs["customer"] == {"StringValue": "42", "DataType": "String"}
    assert attrs["weight"] == {"StringValue": "1.5", "DataType": "Number"}
    assert attrs["count"]["DataType"] == "Number"
    assert attrs["flag"] == {"StringValue": "True", "DataType": "String"}
    assert attrs["blob"] == {"BinaryValue": b"\x00\x01", "DataType": "Binary"}


def test_string_attributes_by_python_type() -> None:
    assert string_attributes({"a": "x", "b": 2, "c": 2.5, "d": False, "e": b"z"}) == {
        "a": {"DataType": "String", "StringValue": "x"},
        "b": {"DataType": "Number", "StringValue": "2"},
        "c": {"DataType": "Number", "StringValue": "2.5"},
        "d": {"DataType": "String", "StringValue": "False"},
        "e": {"DataType": "Binary", "BinaryValue": b"z"},
    }


def test_delay_beyond_fifteen_minutes_is_refused_before_sending(sqs: SqsClient, queues: QueuePair) -> None:
    # moto refuses 901 s, LocalStack accepts it; AWS refuses it, so the kit checks first.
    with pytest.raises(LabError, match="DelaySeconds must be a whole number from 0 to 900; got 901"):
        send_messages(sqs, queues.url, ["x"], delay_seconds=901)
    assert depth(sqs, queues).delayed == 0


@pytest.mark.parametrize(
    ("bodies", "attributes", "words"),
    [
        ([""], {}, "empty"),
        (["ok", "a\x00b"], {}, "U+0000 at character 1"),
        (["x" * 1_048_577], {}, "1,048,576"),
        (["x" * 1_048_530], {"note": "n" * 40}, "1,048,580 bytes with its attributes"),
        (["x"], {"AWS.trace": "1"}, "reserved"),
        (["x"], {"bad name": "1"}, "invalid"),
        (["x"], {"empty": ""}, "empty"),
        (["x"], {f"a{i}": i for i in range(11)}, "at most 10"),
    ],
)
def test_send_refuses_what_real_sqs_refuses(
    sqs: SqsClient, queues: QueuePair, bodies: list[str], attributes: dict[str, Any], words: str
) -> None:
    # moto accepts all of these; AWS does not, so the kit refuses them first, and sends nothing.
    with pytest.raises(LabError, match=re.escape(words)) as caught:
        send_messages(sqs, queues.url, bodies, attributes)
    assert "\n" not in str(caught.value)
    assert depth(sqs, queues).visible == 0


def test_send_splits_batches_at_1_mib(sqs: SqsClient, queues: QueuePair) -> None:
    # docs/aws-behaviour.md#sqs-message-size: a whole SendMessageBatch is at most 1 MiB too.
    progress: list[int] = []
    ids = send_messages(sqs, queues.url, ["y" * 400_000] * 5, progress=progress.append)
    assert len(ids) == 5
    assert progress == [2, 2, 1]


def test_a_message_of_1_mib_is_sent_whole(sqs: SqsClient, queues: QueuePair) -> None:
    # The old 256 KiB limit refused this; SQS takes 1,048,576 bytes, body plus attributes, now.
    attribute_bytes = len("note") + len("String") + len("n")
    body = "é" * ((1_048_576 - attribute_bytes) // 2)
    [message_id] = send_messages(sqs, queues.url, [body], {"note": "n"})
    [message] = peek(sqs, queues.url, 1)
    assert (message["MessageId"], message["Body"]) == (message_id, body)


@pytest.fixture
def attribute_reads(sqs: SqsClient) -> Iterator[list[str]]:
    """Record each GetQueueAttributes call the client makes (botocore's own event hook, not a mock)."""
    calls: list[str] = []

    def record(**_: Any) -> None:
        calls.append("GetQueueAttributes")

    sqs.meta.events.register("before-call.sqs.GetQueueAttributes", record)
    yield calls
    sqs.meta.events.unregister("before-call.sqs.GetQueueAttributes", record)


def test_a_queue_with_a_lower_maximum_message_size_is_honoured(
    sqs: SqsClient, queues: QueuePair, attribute_reads: list[str]
) -> None:
    sqs.set_queue_attributes(QueueUrl=queues.url, Attributes={"MaximumMessageSize": "2048"})
    with pytest.raises(LabError) as caught:
        send_messages(sqs, queues.url, ["x" * 100, "x" * 2049, "x" * 3000])
    message = str(caught.value)
    # One sentence that names both numbers: the message's size and the queue's limit.
    assert "2,049 bytes" in message and "MaximumMessageSize is 2,048" in message, message
    assert "\n" not in message
    assert len(attribute_reads) == 1, "the queue's limit is read once per call, not once per message"
    attribute_reads.clear()
    assert len(send_messages(sqs, queues.url, ["x" * 2048] * 12)) == 12
    assert len(attribute_reads) == 1
    assert depth(sqs, queues).visible == 12  # the refused call sent nothing: every body is checked first


def test_messages_that_fit_every_queue_cost_no_extra_call(
    sqs: SqsClient, queues: QueuePair, attribute_reads: list[str]
) -> None:
    # MaximumMessageSize is at least 1,024 bytes, so small messages need not ask the queue.
    send_messages(sqs, queues.url, ["x" * 1_000] * 3, {"n": "1"})
    assert attribute_reads == []


def test_peek_does_not_consume(sqs: SqsClient, queues: QueuePair) -> None:
    send_messages(sqs, queues.url, ["a", "b", "c"])
    seen = peek(sqs, queues.url, 10)
    assert [m["Body"] for m in seen] == ["a", "b", "c"]  # oldest first
    assert all("ReceiptHandle" not in m and m["State"] == "visible" for m in seen)
    d = depth(sqs, queues)
    assert (d.visible, d.in_flight) == (3, 0)
    reply = sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10, VisibilityTimeout=30)
    assert len(reply["Messages"]) == 3


def test_peeking_never_moves_a_message_to_the_dlq(sqs: SqsClient, queues: QueuePair) -> None:
    # A peek used to be a receive: each raised the receive count, and on a queue with
    # maxReceiveCount 3 the message was in the DLQ before the fourth peek.
    [message_id] = send_messages(sqs, queues.url, ["look at me"])
    for _ in range(queues.max_receive_count + 2):
        [seen] = peek(sqs, queues.url)
        assert (seen["MessageId"], seen["Attributes"]["ApproximateReceiveCount"]) == (message_id, "0")
    assert "ApproximateFirstReceiveTimestamp" not in seen["Attributes"]
    assert depth(sqs, queues).dead_letter == 0
    [received] = sqs.receive_message(QueueUrl=queues.url, AttributeNames=["All"], VisibilityTimeout=30)[
        "Messages"
    ]
    assert received["Attributes"]["ApproximateReceiveCount"] == "1"


def test_peek_shows_in_flight_and_delayed_messages_with_their_state(
    sqs: SqsClient, queues: QueuePair
) -> None:
    send_messages(sqs, queues.url, ["taken", "waiting"])
    send_messages(sqs, queues.url, ["later"], delay_seconds=60)
    sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    seen = {m["Body"]: m for m in peek(sqs, queues.url)}
    assert {body: m["State"] for body, m in seen.items()} == {
        "taken": "in flight",
        "waiting": "visible",
        "later": "delayed",
    }
    assert seen["taken"]["Attributes"]["ApproximateReceiveCount"] == "1"
    assert int(seen["taken"]["Attributes"]["ApproximateFirstReceiveTimestamp"]) > 0
    assert peek(sqs, queues.url, 1)[0]["Body"] == "taken"


def test_peek_of_a_missing_queue_is_one_sentence(sqs: SqsClient, queues: QueuePair) -> None:
    gone = queues.url.rsplit("/", 1)[0] + "/" + fresh_name()
    with pytest.raises(LabError, match="There is no queue at"):
        peek(sqs, gone)


@pytest.fixture
def bare_moto() -> Iterator[SqsClient]:
    """moto's own server, without the lab's look route: what a peek meets on real SQS."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield sqs_client(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


def test_where_only_a_receive_can_look_peek_asks_for_consent(bare_moto: SqsClient) -> None:
    pair = ensure_queues(bare_moto, fresh_name(), 3)
    send_messages(bare_moto, pair.url, ["x"])
    with pytest.raises(PeekReceives, match="count toward the queue's maxReceiveCount"):
        peek(bare_moto, pair.url)
    assert depth(bare_moto, pair).visible == 1
    [seen] = peek(bare_moto, pair.url, receive_ok=True)
    assert seen["Attributes"]["ApproximateReceiveCount"] == "1"  # it was a receive, as on AWS


def test_depth_counts_visible_in_flight_delayed_and_dead(sqs: SqsClient, queues: QueuePair) -> None:
    send_messages(sqs, queues.url, ["v1", "v2", "taken"])
    send_messages(sqs, queues.url, ["later"], delay_seconds=60)
    sqs.send_message(QueueUrl=queues.dlq_url, MessageBody="dead")
    sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=1, VisibilityTimeout=30)
    d = depth(sqs, queues)
    assert (d.visible, d.in_flight, d.delayed, d.dead_letter) == (2, 1, 1, 1)
    purge(sqs, queues.url)
    purge(sqs, queues.dlq_url)
    d = depth(sqs, queues)
    assert (d.visible, d.dead_letter) == (0, 0)


def test_redrive_falls_back_and_keeps_body_and_attributes(sqs: SqsClient, queues: QueuePair) -> None:
    attributes = {
        "customer": {"DataType": "String", "StringValue": "42"},
        "weight": {"DataType": "Number", "StringValue": "1.5"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    }
    bodies = ['{"type": "order"}', "caf\u00e9 \U0001f680", "plain"]
    for body in bodies:
        sqs.send_message(QueueUrl=queues.dlq_url, MessageBody=body, MessageAttributes=attributes)
    how, moved = redrive(sqs, queues)
    # moto has no StartMessageMoveTask; AWS and LocalStack do, and redrive waits for the task.
    assert (how, moved) in {("receive-send-delete", 3), ("StartMessageMoveTask", 3)}
    d = depth(sqs, queues)
    assert (d.visible, d.dead_letter, d.in_flight) == (3, 0, 0)
    messages = sqs.receive_message(
        QueueUrl=queues.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
    )["Messages"]
    assert sorted(m["Body"] for m in messages) == sorted(bodies)
    for message in messages:
        assert message["MessageAttributes"] == attributes


def test_redrive_some_moves_only_that_many(sqs: SqsClient, queues: QueuePair) -> None:
    send_messages(sqs, queues.dlq_url, [f"d{i}" for i in range(14)])
    assert redrive(sqs, queues, max_messages=12) == ("receive-send-delete", 12)
    d = depth(sqs, queues)
    assert (d.visible, d.dead_letter) == (12, 2)
    assert move_messages(sqs, queues.dlq_url, queues.url) == 2
    assert move_messages(sqs, queues.dlq_url, queues.url) == 0


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:4566", True),
        ("http://localhost:4566", True),
        ("http://127.8.9.10:1", True),
        ("http://[::1]:4566", True),
        ("http://10.0.0.5:4566", False),
        ("http://localstack:4566", False),
        ("http://localhost.example.com:4566", False),
        ("https://sqs.us-east-1.amazonaws.com", False),
        ("not a url", False),
    ],
)
def test_is_local(url: str, local: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOCAL_HOSTS_ENV, raising=False)
    assert is_local(url) is local


def test_named_emulator_hosts_are_an_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCAL_HOSTS_ENV, " localstack , sqs-emulator")
    assert is_local("http://localstack:4566")
    assert is_local("http://sqs-emulator:9324")
    assert not is_local("http://localstack.example.com:4566")


def test_client_refuses_anything_but_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_AWS_ENV, raising=False)
    monkeypatch.delenv(LOCAL_HOSTS_ENV, raising=False)
    for endpoint in ("http://10.0.0.5:4566", "https://sqs.us-east-1.amazonaws.com", None):
        with pytest.raises(EndpointError, match=ALLOW_AWS_ENV) as caught:
            sqs_client(endpoint)
        assert "\n" not in str(caught.value)
    monkeypatch.setenv(ALLOW_AWS_ENV, "yes")  # only "1" opts in
    with pytest.raises(EndpointError):
        sqs_client("http://10.0.0.5:4566")


def test_local_client_uses_dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    monkeypatch.setenv("AWS_PROFILE", "prod-profile-this-machine-lacks")
    client = sqs_client("http://127.0.0.1:1")
    credentials = client._request_signer._credentials
    assert credentials.access_key == "test"
    assert client.meta.region_name == "us-east-1"


# -- the region, the profile and the config files: a local endpoint needs none of them ---------------
AWS_VARIABLES = ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


@pytest.fixture
def bare_shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A shell with no AWS region, no profile, and an empty AWS config file; return that file."""
    for name in (*AWS_VARIABLES, ALLOW_AWS_ENV, LOCAL_HOSTS_ENV):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return config


def test_a_local_endpoint_works_without_region_profile_or_config(
    emulator: Any, bare_shell: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare_shell.write_text("[default\nregion = \n")  # a broken ~/.aws/config: was ConfigParseError
    monkeypatch.setenv("AWS_PROFILE", "work-laptop-only")
    client = sqs_client(emulator.url)
    assert client.meta.region_name == "us-east-1"
    assert client.list_queues()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_local_client_that_cannot_be_built_says_why(
    bare_shell: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULTS_MODE", "bogus")
    with pytest.raises(EndpointError, match="defaults mode: bogus") as caught:
        sqs_client("http://127.0.0.1:1")
    assert "\n" not in str(caught.value) and len(str(caught.value)) <= 300


def test_real_aws_without_a_region_says_set_aws_default_region(bare_shell: Path) -> None:
    # Before: "the SQS endpoint did not answer (You must specify a region.)".
    with pytest.raises(EndpointError) as caught:
        sqs_client(None, allow_aws=True)
    message = str(caught.value)
    assert "set AWS_DEFAULT_REGION" in message and "\n" not in message, message


def test_real_aws_takes_the_region_from_the_endpoint_or_the_environment(
    bare_shell: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sqs_client("https://sqs.eu-west-1.amazonaws.com", allow_aws=True).meta.region_name == "eu-west-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert sqs_client(None, allow_aws=True).meta.region_name == "ap-south-1"
    # The endpoint's own region wins: a request signed for another one would be refused.
    assert sqs_client("https://sqs.eu-west-1.amazonaws.com", allow_aws=True).meta.region_name == "eu-west-1"


def test_an_emulator_on_another_host_gets_the_default_region(bare_shell: Path) -> None:
    # Opted in, but not named in LAB_LOCAL_HOSTS: the region only scopes the signature there.
    assert sqs_client("http://sqs-emulator:9324", allow_aws=True).meta.region_name == "us-east-1"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        (
            "AWS_PROFILE",
            "missing-profile",
            "'missing-profile' is not in your AWS config; fix or unset AWS_PROFILE",
        ),
        (
            "AWS_DEFAULT_REGION",
            "eu west",
            "'eu west' is not a region name like us-east-1; fix AWS_DEFAULT_REGION",
        ),
    ],
)
def test_real_aws_settings_that_are_wrong_are_named(
    bare_shell: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(EndpointError) as caught:
        sqs_client(None, allow_aws=True)
    assert words in str(caught.value) and "\n" not in str(caught.value)
