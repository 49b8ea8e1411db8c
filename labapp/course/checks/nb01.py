"""The checks of notebook 01, queues and messages: each one drives a real queue and reads what happened."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable
from typing import Any

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.checks.support import queue_counts, scratch_queue
from labapp.errors import WaitTimeout
from labapp.runtime.wait import wait_until

#: 01.1: more than one receive can hand out (docs/aws-behaviour.md#sqs-batch-10).
NIGHT_OFF_ORDERS = 12
#: 01.2: the visibility the check receives with, and the pause the payment service asks for.
RECEIVED_FOR_S = 30
RETRY_IN_S = 2
# An emulator may hand a message out up to about 1 s late (docs/aws-behaviour.md#emu-localstack-late).
LATE_SLACK_S = 1.5
EARLY_SLACK_S = 0.5
POLL_S = 0.2


def _is_stub(function: Callable[..., Any]) -> bool:
    """True for a function that names nothing at all: the learner's `...` stub, or an empty body."""
    code = getattr(function, "__code__", None)
    return code is not None and not code.co_names


@register("01.1")
def _check_01_1(a: Answers) -> str:
    take_all = a.function("take_all")
    lab = a.lab
    url = scratch_queue(lab.sqs, "lab-01-check")
    bodies = [
        json.dumps({"type": "order", "order_id": fresh_id(f"night-{n}"), "amount": n})
        for n in range(NIGHT_OFF_ORDERS)
    ]
    try:
        for body in bodies:
            lab.sqs.send_message(QueueUrl=url, MessageBody=body)
        got = take_all(lab.sqs, url)
        visible, in_flight = queue_counts(lab.sqs, url)
    finally:
        lab.sqs.delete_queue(QueueUrl=url)
    return _judge_take_all(got, bodies, visible, in_flight)


def _judge_take_all(got: Any, bodies: list[str], visible: int, in_flight: int) -> str:
    total = len(bodies)
    if got is None and visible == total:
        raise NotAttempted("take_all returned None and received nothing.")
    if not isinstance(got, (list, tuple)):
        raise NotYet(f"take_all returned a {type(got).__name__}; the check expected a list of the bodies.")
    if got and all(isinstance(item, dict) for item in got):
        raise NotYet(f"take_all returned {len(got)} whole messages (dicts); the check expected their bodies.")
    counts = collections.Counter(item for item in got if isinstance(item, str))
    returned = sum(1 for body in bodies if counts[body])
    twice = sum(1 for body in bodies if counts[body] > 1)
    if twice:
        raise NotYet(
            f"take_all returned {len(got)} bodies for {total} messages: {twice} of them came twice, "
            "because a message you had received was handed out again before you deleted it."
        )
    left = f"{visible} still waiting (visible) and {in_flight} in flight (received, not deleted)"
    if returned < total:
        raise NotYet(f"take_all returned {returned} of the {total} bodies; the queue has {left}.")
    if visible or in_flight:
        raise NotYet(
            f"take_all returned all {total} bodies, but the queue still has {left}: "
            "a message nobody deletes comes back."
        )
    return (
        f"take_all returned all {total} bodies and the queue is empty. One receive hands out at most 10 "
        "messages, so it took more than one."
    )


@register("01.2")
def _check_01_2(a: Answers) -> str:
    retry_in = a.function("retry_in")
    if _is_stub(retry_in):
        raise NotAttempted("retry_in has no code yet; write its body and run the cell.")
    lab = a.lab
    url = scratch_queue(lab.sqs, "lab-01-check")
    try:
        lab.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"type": "order", "order_id": "busy-1"}))
        reply = lab.sqs.receive_message(QueueUrl=url, VisibilityTimeout=RECEIVED_FOR_S, WaitTimeSeconds=1)
        first = reply["Messages"][0]
        retry_in(lab.sqs, url, first["ReceiptHandle"], RETRY_IN_S)
        called = time.monotonic()
        back, after = _first_return(lab.sqs, url, called)
        held = sum(queue_counts(lab.sqs, url))
    finally:
        lab.sqs.delete_queue(QueueUrl=url)
    return _judge_retry(first, back, after, held)


def _first_return(sqs: Any, url: str, since: float) -> tuple[dict[str, Any] | None, float]:
    """Poll without waiting until a message is handed out, or the window closes; return it and when."""

    def handed_out() -> list[dict[str, Any]]:
        # WaitTimeSeconds=0: a long poll on moto would not wake when the message turns visible.
        reply = sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=0, AttributeNames=["ApproximateReceiveCount"]
        )
        return reply.get("Messages", [])

    window = since + RETRY_IN_S + LATE_SLACK_S - time.monotonic()
    try:
        messages = wait_until(handed_out, window, "the message to come back", interval=POLL_S)
    except WaitTimeout:
        return None, time.monotonic() - since
    return messages[0], time.monotonic() - since


def _judge_retry(first: dict[str, Any], back: dict[str, Any] | None, after: float, held: int) -> str:
    if back is None and not held:
        raise NotYet(
            f"the queue was empty {after:.1f} s after retry_in: the message was deleted, so no worker "
            "will ever try the order again."
        )
    if back is None:
        raise NotYet(
            f"the message was still hidden {after:.1f} s after retry_in: it is waiting out the "
            f"{RECEIVED_FOR_S} s it was received with."
        )
    if back["MessageId"] != first["MessageId"]:
        raise NotYet(
            f"a message came back after {after:.1f} s, but with a new MessageId: it is a copy. "
            "A copy's receive count starts again at 1, so a dead-letter queue would never catch it."
        )
    if after < RETRY_IN_S - EARLY_SLACK_S:
        raise NotYet(
            f"the message was handed out again after {after:.1f} s, before the {RETRY_IN_S} s the "
            "payment service asked for: the next try would find it still busy."
        )
    count = back["Attributes"]["ApproximateReceiveCount"]
    return (
        f"the same message came back after {after:.1f} s, with ApproximateReceiveCount {count}. "
        "sqsd does the same after a failed POST, with ErrorVisibilityTimeout as the pause."
    )
