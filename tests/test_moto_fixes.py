"""The lab's fixes to moto's SQS: the same behaviour as moto's own code, at a cost linear in depth.

The behaviour tests run over HTTP against the embedded endpoint and pin what moto 5.2.5 itself
does (they pass on moto's own code too); time moves by an offset on moto's clock, not by sleeping.
The work test counts messages examined, which does not depend on the machine's speed: moto's own
code examines O(depth) messages per message and fails it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from labapp.runtime.emulator import Emulator
from labapp.runtime.moto_fixes import installed
from labapp.sqs.client import SqsClient, sqs_client

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(
    os.environ.get("LAB_BACKEND", "moto") != "moto", reason="pins moto's behaviour; the endpoint is not moto"
)


class MotoClock:
    """moto's clock, moved forward by an offset: `advance(s)` instead of sleeping s seconds."""

    def __init__(self, real_ms: Callable[..., float]) -> None:
        self.real_ms = real_ms
        self.offset_ms = 0.0

    def millis(self, dt: Any = None) -> float:
        return float(self.real_ms(dt)) + (self.offset_ms if dt is None else 0.0)

    def seconds(self, dt: Any = None) -> float:
        return self.millis(dt) / 1000.0

    def advance(self, seconds: float) -> None:
        self.offset_ms += seconds * 1000


@pytest.fixture
def clock(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> MotoClock:
    from moto.sqs import models

    moved = MotoClock(models.unix_time_millis)
    monkeypatch.setattr(models, "unix_time_millis", moved.millis)
    monkeypatch.setattr(models, "unix_time", moved.seconds)
    return moved


@pytest.fixture
def make_queue(sqs: SqsClient) -> Callable[..., str]:
    def make(attributes: dict[str, str] | None = None, fifo: bool = False) -> str:
        name = f"m-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
        attrs = dict(attributes or {}, **({"FifoQueue": "true"} if fifo else {}))
        return str(sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"])

    return make


def send(sqs: SqsClient, url: str, bodies: list[str], **extra: Any) -> None:
    for i in range(0, len(bodies), 10):
        chunk = bodies[i : i + 10]
        entries = [{"Id": str(j), "MessageBody": b, **extra} for j, b in enumerate(chunk)]
        assert len(sqs.send_message_batch(QueueUrl=url, Entries=entries)["Successful"]) == len(chunk)


def receive(sqs: SqsClient, url: str, n: int = 10, **kw: Any) -> list[dict[str, Any]]:
    reply = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=n, MessageSystemAttributeNames=["All"], **kw
    )
    return list(reply.get("Messages", []))


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    return [m["Body"] for m in messages]


def delete_all(sqs: SqsClient, url: str, messages: list[dict[str, Any]]) -> None:
    if messages:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        assert not sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def counts(sqs: SqsClient, url: str) -> tuple[int, int, int]:
    """Return (visible, in flight, delayed)."""
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(a["ApproximateNumberOfMessages"]),
        int(a["ApproximateNumberOfMessagesNotVisible"]),
        int(a["ApproximateNumberOfMessagesDelayed"]),
    )


def error_code(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def dlq_pair(sqs: SqsClient, make_queue: Callable[..., str], max_receives: int) -> tuple[str, str]:
    dlq = make_queue()
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receives)})
    return make_queue({"RedrivePolicy": policy}), dlq


# -- behaviour, as moto has it -------------------------------------------------------------------------
def test_receive_in_send_order_counts_and_delete(sqs: SqsClient, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    send(sqs, url, [f"m{i}" for i in range(25)])
    assert counts(sqs, url) == (25, 0, 0)
    first = receive(sqs, url)
    assert bodies(first) == [f"m{i}" for i in range(10)]
    assert first[0]["Attributes"]["ApproximateReceiveCount"] == "1"
    assert int(first[0]["Attributes"]["ApproximateFirstReceiveTimestamp"]) >= int(
        first[0]["Attributes"]["SentTimestamp"]
    )
    assert counts(sqs, url) == (15, 10, 0)
    delete_all(sqs, url, first)
    assert counts(sqs, url) == (15, 0, 0)
    rest = receive(sqs, url) + receive(sqs, url)
    assert bodies(rest) == [f"m{i}" for i in range(10, 25)]
    delete_all(sqs, url, rest)
    assert receive(sqs, url) == []
    assert counts(sqs, url) == (0, 0, 0)


def test_delete_twice_passes_and_a_bogus_handle_is_refused(
    sqs: SqsClient, make_queue: Callable[..., str]
) -> None:
    url = make_queue()
    send(sqs, url, ["a"])
    [m] = receive(sqs, url)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert (
        error_code(lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle="nope")) == "ReceiptHandleIsInvalid"
    )
    reply = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "x", "ReceiptHandle": "nope"}])
    assert reply["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"


def test_visibility_timeout_hides_then_returns_the_message(
    sqs: SqsClient, make_queue: Callable[..., str], clock: MotoClock
) -> None:
    url = make_queue()
    send(sqs, url, ["a", "b"])
    [a] = receive(sqs, url, 1, VisibilityTimeout=10)
    assert bodies(receive(sqs, url, 10, VisibilityTimeout=300)) == ["b"]
    assert counts(sqs, url) == (0, 2, 0)
    clock.advance(11)
    assert counts(sqs, url) == (1, 1, 0)
    [again] = receive(sqs, url, 10, VisibilityTimeout=300)
    assert again["MessageId"] == a["MessageId"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    first_receive = "ApproximateFirstReceiveTimestamp"
    assert again["Attributes"][first_receive] == a["Attributes"][first_receive]
    assert again["ReceiptHandle"] != a["ReceiptHandle"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=a["ReceiptHandle"])  # an old handle still deletes
    assert counts(sqs, url) == (0, 1, 0)


def test_a_timed_out_message_keeps_its_place(
    sqs: SqsClient, make_queue: Callable[..., str], clock: MotoClock
) -> None:
    url = make_queue()
    send(sqs, url, ["old"])
    receive(sqs, url, 1, VisibilityTimeout=10)
    send(sqs, url, ["new"])
    clock.advance(11)
    assert bodies(receive(sqs, url, 10)) == ["old", "new"]


def test_visibility_timeout_zero_leaves_messages_receivable(
    sqs: SqsClient, make_queue: Callable[..., str]
) -> None:
    url = make_queue()
    send(sqs, url, ["a", "b"])
    assert bodies(receive(sqs, url, 10, VisibilityTimeout=0)) == ["a", "b"]
    got = receive(sqs, url, 10, VisibilityTimeout=0)
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in got] == ["2", "2"]
    assert counts(sqs, url) == (2, 0, 0)


def test_change_message_visibility(sqs: SqsClient, make_queue: Callable[..., str], clock: MotoClock) -> None:
    url = make_queue()
    send(sqs, url, ["a"])
    [m] = receive(sqs, url, 1, VisibilityTimeout=60)
    assert receive(sqs, url) == []
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    clock.advance(0.01)
    assert counts(sqs, url) == (1, 0, 0)
    [m2] = receive(sqs, url, 1, VisibilityTimeout=60)
    assert m2["MessageId"] == m["MessageId"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m2["ReceiptHandle"], VisibilityTimeout=5)
    assert counts(sqs, url) == (0, 1, 0)
    clock.advance(6)
    assert [x["MessageId"] for x in receive(sqs, url, 1, VisibilityTimeout=60)] == [m["MessageId"]]
    reply = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "ok", "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "bad", "ReceiptHandle": "nope", "VisibilityTimeout": 0},
        ],
    )
    assert [s["Id"] for s in reply["Successful"]] == ["ok"]
    assert reply["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    handle = m["ReceiptHandle"]
    assert error_code(
        lambda: sqs.change_message_visibility(QueueUrl=url, ReceiptHandle="nope", VisibilityTimeout=5)
    ) == ("ReceiptHandleIsInvalid")
    assert error_code(
        lambda: sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=43201)
    ) in ("InvalidParameterValue", "MaxVisibilityTimeout", "InvalidParameterValueException")
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
    assert error_code(
        lambda: sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=5)
    ) == ("ReceiptHandleIsInvalid")


def test_delay_seconds_per_message_and_per_queue(
    sqs: SqsClient, make_queue: Callable[..., str], clock: MotoClock
) -> None:
    url = make_queue()
    sqs.send_message(QueueUrl=url, MessageBody="late", DelaySeconds=5)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    assert counts(sqs, url) == (1, 0, 1)
    assert bodies(receive(sqs, url)) == ["now"]
    clock.advance(6)
    assert counts(sqs, url) == (1, 1, 0)
    assert bodies(receive(sqs, url)) == ["late"]

    slow = make_queue({"DelaySeconds": "5"})
    send(sqs, slow, ["a", "b"])
    assert counts(sqs, slow) == (0, 0, 2)
    assert receive(sqs, slow) == []
    clock.advance(6)
    assert bodies(receive(sqs, slow)) == ["a", "b"]


def test_redrive_to_the_dlq_after_max_receive_count(sqs: SqsClient, make_queue: Callable[..., str]) -> None:
    url, dlq = dlq_pair(sqs, make_queue, 2)
    send(sqs, url, ["poison", "fine"])
    for expected in ("1", "2"):
        got = receive(sqs, url, 1, VisibilityTimeout=0)
        assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in got] == [
            ("poison", expected)
        ]
    old_handle = got[0]["ReceiptHandle"]
    # A third delivery would pass maxReceiveCount: moved to the DLQ, and the next message comes.
    assert bodies(receive(sqs, url, 1, VisibilityTimeout=0)) == ["fine"]
    assert counts(sqs, url) == (1, 0, 0)
    assert counts(sqs, dlq) == (1, 0, 0)
    assert (
        error_code(lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle=old_handle))
        == "ReceiptHandleIsInvalid"
    )
    [dead] = receive(sqs, dlq, 10, VisibilityTimeout=30)
    assert (dead["Body"], dead["Attributes"]["ApproximateReceiveCount"]) == ("poison", "3")
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=old_handle)  # handles from the source still work
    assert counts(sqs, dlq) == (0, 0, 0)


def test_redrive_when_only_poison_is_left_returns_nothing(
    sqs: SqsClient, make_queue: Callable[..., str]
) -> None:
    url, dlq = dlq_pair(sqs, make_queue, 1)
    send(sqs, url, ["p1", "p2"])
    assert len(receive(sqs, url, 10, VisibilityTimeout=0)) == 2
    assert receive(sqs, url, 10, VisibilityTimeout=0) == []
    assert (counts(sqs, url), counts(sqs, dlq)) == ((0, 0, 0), (2, 0, 0))
    assert bodies(receive(sqs, dlq)) == ["p1", "p2"]


def test_purge(sqs: SqsClient, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    send(sqs, url, [f"m{i}" for i in range(15)])
    got = receive(sqs, url, 5, VisibilityTimeout=60)
    sqs.send_message(QueueUrl=url, MessageBody="late", DelaySeconds=5)
    assert counts(sqs, url) == (10, 5, 1)
    sqs.purge_queue(QueueUrl=url)
    assert counts(sqs, url) == (0, 0, 0)
    assert receive(sqs, url) == []
    handle = got[0]["ReceiptHandle"]
    assert (
        error_code(lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)) == "ReceiptHandleIsInvalid"
    )
    send(sqs, url, ["after"])
    assert bodies(receive(sqs, url)) == ["after"]


def test_an_expired_message_is_not_delivered(
    sqs: SqsClient, make_queue: Callable[..., str], clock: MotoClock
) -> None:
    # moto never deletes an expired message: a receive that reaches it marks it received, returns
    # nothing more and stops; with it in flight the next receive gets the rest. Kept as moto has it.
    url = make_queue()
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"MessageRetentionPeriod": "60"})
    sqs.send_message(QueueUrl=url, MessageBody="old")
    clock.advance(61)
    sqs.send_message(QueueUrl=url, MessageBody="new")
    assert receive(sqs, url, 10, VisibilityTimeout=30) == []
    assert bodies(receive(sqs, url, 10, VisibilityTimeout=30)) == ["new"]
    assert counts(sqs, url) == (0, 2, 0)


def test_a_long_poll_wakes_on_send_and_times_out(sqs: SqsClient, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    started = time.monotonic()
    assert receive(sqs, url, 10, WaitTimeSeconds=1) == []
    assert 0.9 <= time.monotonic() - started < 3.5
    timer = threading.Timer(0.3, lambda: sqs.send_message(QueueUrl=url, MessageBody="x"))
    timer.start()
    started = time.monotonic()
    got = receive(sqs, url, 10, WaitTimeSeconds=5)
    timer.join()
    assert bodies(got) == ["x"]
    assert time.monotonic() - started < 2.5


def test_message_attributes_are_filtered_per_receive(sqs: SqsClient, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    attributes = {name: {"DataType": "String", "StringValue": name.lower()} for name in ("Kind", "Other")}
    sqs.send_message(QueueUrl=url, MessageBody="a", MessageAttributes=attributes)
    [m] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["Kind"], VisibilityTimeout=0)["Messages"]
    assert set(m["MessageAttributes"]) == {"Kind"}
    [m] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert set(m["MessageAttributes"]) == {"Kind", "Other"}


def test_fifo_groups_and_deduplication_stay_moto_s(sqs: SqsClient, make_queue: Callable[..., str]) -> None:
    url = make_queue(fifo=True)
    for body, group, dedup in [("a1", "A", "1"), ("a2", "A", "2"), ("b1", "B", "3"), ("dup", "A", "1")]:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedup)
    assert counts(sqs, url) == (3, 0, 0)  # the duplicate was dropped
    [first] = receive(sqs, url, 1)
    assert first["Body"] == "a1"
    assert bodies(receive(sqs, url, 10)) == ["b1"]  # group A has a message in flight
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    assert bodies(receive(sqs, url, 10)) == ["a2"]


def test_concurrent_receivers_never_share_a_message_and_no_send_is_lost(
    sqs: SqsClient, make_queue: Callable[..., str], emulator: Emulator
) -> None:
    url = make_queue()
    send(sqs, url, [f"pre-{i}" for i in range(200)])
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    sending_done = threading.Event()

    def sender() -> None:
        send(sqs_client(emulator.url), url, [f"live-{i}" for i in range(200)])
        sending_done.set()

    def consumer() -> None:
        own = sqs_client(emulator.url)
        idle = 0
        while idle < 3:
            got = receive(own, url, 10, VisibilityTimeout=60)
            if not got:
                idle = idle + 1 if sending_done.is_set() else 0
                continue
            with lock:
                seen.update(bodies(got))
            delete_all(own, url, got)

    threads = [threading.Thread(target=sender)] + [threading.Thread(target=consumer) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert (sum(seen.values()), max(seen.values())) == (400, 1)
    assert counts(sqs, url) == (0, 0, 0)


# -- the same transcript as moto's own code ---------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2])
def test_the_same_transcript_as_moto_on_random_operations(seed: int) -> None:
    """3,000 seeded random sends (some delayed), receives (VisibilityTimeout 0-30 s), deletes,
    visibility changes, clock ticks (exact ties included), counts, purges and redrives, with a
    fake clock; an odd seed lets messages expire. moto's own code and the fixed one agree."""

    def transcript(variant: str) -> str:
        done = subprocess.run(
            [sys.executable, str(HERE / "moto_transcript.py"), str(seed), variant],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    fixed = transcript("fixed")
    assert fixed.count("\n") >= 3000
    assert fixed == transcript("moto")


# -- the work grows linearly with depth ----------------------------------------------------------------------
class WorkMeter:
    """Count messages examined: reads of a Message's visible_at or delayed_until (what moto's
    `visible` and `delayed` and the lab's index look at) and uses of all_receipt_handles (moto's
    receipt-handle scans, and the index's handle map). Deterministic, unlike wall time."""

    FIELDS = ("visible_at", "delayed_until")

    def __init__(self) -> None:
        self.count = 0
        self.limit: int | None = None

    def __enter__(self) -> WorkMeter:
        from moto.sqs.models import Message

        meter = self

        class Field:
            def __init__(self, name: str) -> None:
                self.name = name

            def __get__(self, obj: Any, owner: Any = None) -> Any:
                if obj is None:
                    return self
                meter.count += 1
                return obj.__dict__[self.name]

            def __set__(self, obj: Any, value: Any) -> None:
                obj.__dict__[self.name] = value

        self.handles = Message.__dict__["all_receipt_handles"]
        original = self.handles.fget

        def all_receipt_handles(message: Any) -> Any:
            meter.count += 1
            return original(message)

        for name in self.FIELDS:
            setattr(Message, name, Field(name))
        Message.all_receipt_handles = property(all_receipt_handles)
        return self

    def __exit__(self, *exc: object) -> None:
        from moto.sqs.models import Message

        for name in self.FIELDS:
            delattr(Message, name)
        Message.all_receipt_handles = self.handles

    def check(self, what: str) -> None:
        if self.limit is not None and self.count > self.limit:
            pytest.fail(f"more than {self.limit} messages examined before {what}")


def send_and_drain(sqs: SqsClient, url: str, n: int, meter: WorkMeter, limit: int | None) -> int:
    """Send n messages in batches of ten, drain them with receive(10) + delete_message_batch; return the work."""
    meter.count, meter.limit = 0, limit
    for i in range(0, n, 10):
        entries = [{"Id": str(j), "MessageBody": f"m{i + j}"} for j in range(10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
        meter.check(f"{n} were sent")
    drained = 0
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
        "Messages"
    ):
        delete_all(sqs, url, got)
        drained += len(got)
        meter.check(f"{n} were drained")
    assert drained == n
    return meter.count


def test_send_and_drain_work_grows_linearly_with_depth(
    sqs: SqsClient, make_queue: Callable[..., str]
) -> None:
    """Ten times the messages may cost at most 15 times the work. moto's own code examines about
    900 messages per message at depth 100 and 8,600 at 1,000 (ratio 95): it is stopped as soon
    as it passes the budget, so the failure is quick too."""
    with WorkMeter() as meter:
        small = send_and_drain(sqs, make_queue(), 100, meter, None)
        large = send_and_drain(sqs, make_queue(), 1000, meter, 15 * small)
    assert large <= 15 * small, (small, large)
    assert installed()
