"""The checks of notebook 01, queues and messages: each one drives a real lab and reads what happened."""

from __future__ import annotations

import json

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.checks.support import (
    queue_counts,
    scratch_queue,
)


@register("01.1")
def _check_01_1(a: Answers) -> str:
    take_one = a.function("take_one")
    lab = a.lab
    url = scratch_queue(lab.sqs, "lab-01-check")
    try:
        body = json.dumps({"type": "order", "order_id": fresh_id("take"), "amount": 3})
        lab.sqs.send_message(QueueUrl=url, MessageBody=body)
        got = take_one(lab.sqs, url)
        visible, in_flight = queue_counts(lab.sqs, url)
    finally:
        lab.sqs.delete_queue(QueueUrl=url)
    if got is None and visible == 1:
        raise NotAttempted("take_one returned None and never received the message.")
    if got != body:
        raise NotYet(f"take_one returned {str(got)[:60]!r}; return the message's Body, as a string.")
    if in_flight or visible:
        raise NotYet(
            "you returned the body, but the message is still in the queue, only invisible for now: "
            "it will come back. Delete it with its ReceiptHandle."
        )
    return "take_one received the message, returned its body and deleted it; the queue is empty."


@register("01.2")
def _check_01_2(a: Answers) -> str:
    give_back = a.function("give_back")
    lab = a.lab
    url = scratch_queue(lab.sqs, "lab-01-check")
    try:
        lab.sqs.send_message(QueueUrl=url, MessageBody="give me back")
        first = lab.sqs.receive_message(QueueUrl=url, VisibilityTimeout=30, WaitTimeSeconds=1)["Messages"][0]
        give_back(lab.sqs, url, first["ReceiptHandle"])
        again = lab.sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=0, AttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
    finally:
        lab.sqs.delete_queue(QueueUrl=url)
    if not again:
        raise NotAttempted("the message is still invisible after give_back; it should be visible at once.")
    count = again[0]["Attributes"]["ApproximateReceiveCount"]
    return (
        f"the message was visible again at once and the next receive saw ApproximateReceiveCount {count}. "
        "sqsd does the same after a failed POST, with ErrorVisibilityTimeout instead of 0."
    )
