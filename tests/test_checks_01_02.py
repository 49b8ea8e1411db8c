"""The checks of notebooks 01 and 02 against real queues: right answers pass, and each typical wrong
answer gets a "not yet" that says what happened, not the code to write."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import labapp.course.checks.nb01
import labapp.course.checks.nb02  # noqa: F401  (registers 02.1 and 02.2)
from labapp.course.checks import core
from labapp.course.lab import Lab
from labapp.runtime.ports import free_port


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """One real lab for the module, on an emulator port of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        started = Lab(f"chk-{uuid.uuid4().hex[:8]}").start()
        try:
            yield started
        finally:
            started.stop()
            if started.endpoint is not None:
                started.endpoint.stop()


def check(exercise_id: str, lab: Lab, **answers: Any) -> core.Outcome:
    return core.run_check(core.REGISTRY[exercise_id], {"lab": lab, **answers})


def _receive(sqs: Any, url: str, n: int = 10) -> list[dict[str, Any]]:
    return list(
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=n, WaitTimeSeconds=1).get("Messages", [])
    )


# -- 01.1 take_all -----------------------------------------------------------------------------
def take_all_right(sqs: Any, url: str) -> list[str]:
    bodies: list[str] = []
    while messages := _receive(sqs, url):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def take_one_batch(sqs: Any, url: str) -> list[str]:
    messages = _receive(sqs, url)
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [m["Body"] for m in messages]


def take_without_deleting(sqs: Any, url: str) -> list[str]:
    bodies: list[str] = []
    while messages := _receive(sqs, url):
        bodies += [m["Body"] for m in messages]
    return bodies


def take_nothing(sqs: Any, url: str) -> None:
    """The learner's stub."""


@pytest.mark.parametrize(
    "answer, status, words",
    [
        (take_all_right, "correct", "returned all 12 bodies and the queue is empty"),
        (take_one_batch, "not yet", "returned 10 of the 12 bodies; the queue has 2 still waiting"),
        (take_without_deleting, "not yet", "12 in flight (received, not deleted)"),
        (take_nothing, "not attempted", "returned None"),
    ],
)
def test_take_all_is_judged_by_what_is_left_in_the_queue(
    lab: Lab, answer: Callable[..., Any], status: str, words: str
) -> None:
    outcome = check("01.1", lab, take_all=answer)
    assert (outcome.status, words in outcome.reason) == (status, True), outcome.reason
    assert "receive_message" not in outcome.reason and "delete_message" not in outcome.reason


# -- 01.2 retry_in -----------------------------------------------------------------------------
def retry_right(sqs: Any, url: str, handle: str, seconds: int) -> None:
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=seconds)


def retry_at_once(sqs: Any, url: str, handle: str, seconds: int) -> None:
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)


def retry_with_a_copy(sqs: Any, url: str, handle: str, seconds: int) -> None:
    sqs.send_message(QueueUrl=url, MessageBody="copy", DelaySeconds=seconds)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)


def retry_by_deleting(sqs: Any, url: str, handle: str, seconds: int) -> None:
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)


def retry_stub(sqs: Any, url: str, handle: str, seconds: int) -> None:
    """The learner's stub: a docstring and `...`."""
    ...


@pytest.mark.parametrize(
    "answer, status, words",
    [
        (retry_right, "correct", "the same message came back after"),
        (retry_at_once, "not yet", "before the 2 s the payment service asked for"),
        (retry_with_a_copy, "not yet", "with a new MessageId: it is a copy"),
        (retry_by_deleting, "not yet", "the message was deleted"),
        (retry_stub, "not attempted", "retry_in has no code yet"),
    ],
)
def test_retry_in_is_judged_by_when_the_same_message_comes_back(
    lab: Lab, answer: Callable[..., Any], status: str, words: str
) -> None:
    outcome = check("01.2", lab, retry_in=answer)
    assert (outcome.status, words in outcome.reason) == (status, True), outcome.reason
    assert "change_message_visibility" not in outcome.reason


# -- 02.1 message_facts ------------------------------------------------------------------------
def facts_with_text_count(req: Any) -> dict[str, Any]:
    return {
        "message_id": req.header("X-Aws-Sqsd-Msgid"),
        "queue": req.header("X-Aws-Sqsd-Queue"),
        "receive_count": req.header("X-Aws-Sqsd-Receive-Count"),
        "order": json.loads(req.body),
    }


def test_message_facts_says_which_value_is_wrong_and_what_the_post_carried_without_the_fix(lab: Lab) -> None:
    outcome = check("02.1", lab, message_facts=facts_with_text_count)
    assert outcome.status == "not yet"
    assert outcome.reason == "receive_count is '1' (str), but from the POST it is 1 (int)."


# -- 02.2 send_signed --------------------------------------------------------------------------
def signed_as_binary(lab: Lab, order: Any, tenant: str, signature: bytes) -> list[str]:
    return lab.send(order, attributes={"tenant": tenant, "signature": signature})


def signed_in_hex(lab: Lab, order: Any, tenant: str, signature: bytes) -> list[str]:
    return lab.send(order, attributes={"tenant": tenant, "signature": signature.hex()})


def signed_in_base64(lab: Lab, order: Any, tenant: str, signature: bytes) -> list[str]:
    return lab.send(order, attributes={"tenant": tenant, "signature": base64.b64encode(signature).decode()})


def signed_in_the_body(lab: Lab, order: Any, tenant: str, signature: bytes) -> list[str]:
    return lab.send(dict(order, tenant=tenant, signature=signature.hex()))


@pytest.mark.parametrize(
    "answer, status, words",
    [
        (signed_as_binary, "not yet", "carried signature as a Binary attribute"),
        (signed_in_hex, "correct", "the body stayed the order"),
        (signed_in_base64, "correct", "the body stayed the order"),
        (signed_in_the_body, "not yet", "not the order as given"),
    ],
)
def test_send_signed_is_judged_by_the_post_the_worker_got(
    lab: Lab, answer: Callable[..., Any], status: str, words: str
) -> None:
    outcome = check("02.2", lab, send_signed=answer)
    assert (outcome.status, words in outcome.reason) == (status, True), outcome.reason
    assert "base64" not in outcome.reason or status == "not yet"
