"""Exercises of notebooks 00-03: setup, queues and messages, the POST, writing the worker."""

from __future__ import annotations

import json
from collections.abc import Mapping

from labapp import lessons
from labapp.checks import (
    FAST_FAIL,
    Answers,
    NotAttempted,
    NotYet,
    first_status,
    fresh_id,
    queue_counts,
    register,
    require_answer,
    scratch_queue,
    wait_idle,
)
from labapp.config import LAB_PROFILE


# -- 00 ------------------------------------------------------------------------------------------------
@register(
    "00.1",
    "Send your first order",
    (
        "Use lab.send() with a dict. The worker reads the fields type, order_id and amount.",
        'lab.send({"type": "order", "order_id": "hello-1", "amount": 5}), then lab.wait_until_idle().',
    ),
)
def _check_00_1(a: Answers) -> str:
    lab = a.lab
    if lab.ledger.applied("order:hello-1"):
        return "order hello-1 went through the queue, the daemon POSTed it, and the worker applied it once."
    tried = [r for r in lab.requests() if b"hello-1" in r.body]
    if tried:
        raise NotYet(
            f"the worker answered {tried[-1].status} to your order; lab.requests(1)[0].body shows what it got."
        )
    if lab.depth().visible:
        raise NotYet("a message is still waiting in the queue; call lab.wait_until_idle() after sending.")
    raise NotAttempted("no order hello-1 has reached the worker yet.")


# -- 01 ------------------------------------------------------------------------------------------------
@register(
    "01.1",
    "Take one message off the queue",
    (
        "Two calls: receive_message gives you the message and its ReceiptHandle; delete_message needs both "
        "the QueueUrl and that ReceiptHandle.",
        "reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1); take "
        "reply['Messages'][0], delete it with its 'ReceiptHandle', return its 'Body' (None if no Messages).",
    ),
)
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


@register(
    "01.2",
    "Give a message back at once",
    (
        "A receipt handle lets you change the visibility of the message you received.",
        "sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)",
    ),
)
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


# -- 02 ------------------------------------------------------------------------------------------------
@register(
    "02.1",
    "Read the facts from the POST",
    (
        "Everything except the body travels in X-Aws-Sqsd-* headers; req.header(name) reads one.",
        "message_id = req.header('X-Aws-Sqsd-Msgid'), queue = req.header('X-Aws-Sqsd-Queue'), receive_count = "
        "int(req.header('X-Aws-Sqsd-Receive-Count')), order = json.loads(req.body).",
    ),
)
def _check_02_1(a: Answers) -> str:
    facts = a.function("message_facts")
    with lessons.sandbox("02") as box:
        order = {"type": "order", "order_id": fresh_id("facts"), "amount": 7}
        [mid] = lessons.send_and_wait(box, order)
        got = facts(lessons.request_for(box, mid))
        expected = {"message_id": mid, "queue": box.queues.name, "receive_count": 1, "order": order}
    if got is None:
        raise NotAttempted("message_facts returned None.")
    if not isinstance(got, Mapping):
        raise NotYet(f"message_facts should return a dict; it returned a {type(got).__name__}.")
    for key, want in expected.items():
        if key not in got:
            raise NotYet(f"the dict has no key {key!r}.")
        if got[key] != want:
            extra = " (headers are text: convert it with int())" if key == "receive_count" else ""
            raise NotYet(f"{key} is {got[key]!r}, but the POST says {want!r}{extra}.")
    return "you read the id, the queue name and the receive count from the headers, and the order from the raw body."


@register(
    "02.2",
    "Send a tenant along as an attribute",
    (
        "lab.send takes attributes={...}; each String or Number attribute becomes one X-Aws-Sqsd-Attr-<name> header.",
        "return lab.send(order, attributes={'tenant': tenant})",
    ),
)
def _check_02_2(a: Answers) -> str:
    send_for_tenant = a.function("send_for_tenant")
    with lessons.sandbox("02") as box:
        order_id = fresh_id("tenant-order")
        order = {"type": "order", "order_id": order_id, "amount": 9}
        tenant = fresh_id("acme")
        send_for_tenant(box, order, tenant)
        wait_idle(box)
        posts = [r for r in box.requests() if order_id.encode() in r.body]
    if not posts:
        raise NotAttempted("no POST with this order reached the worker; send it with lab.send().")
    post = posts[-1]
    if post.header("X-Aws-Sqsd-Attr-tenant") != tenant:
        raise NotYet("the POST has no X-Aws-Sqsd-Attr-tenant header with the tenant; pass it in attributes=.")
    if json.loads(post.body) != order:
        raise NotYet("the body is not the order as given: keep the tenant out of the body.")
    return "the tenant travelled as a message attribute and arrived as X-Aws-Sqsd-Attr-tenant; the body stayed the order."


# -- 03 ------------------------------------------------------------------------------------------------
@register(
    "03.1",
    "A handler that says 200 only when the work is done",
    (
        "Read the raw body with request.get_data(), parse it with json.loads, and call process(data). "
        "Both can raise a ValueError (BadMessage is one) for a bad message.",
        "try: process(json.loads(request.get_data())) / except ValueError as exc: return f'bad message: {exc}', 400 "
        "/ return 'done', 200",
    ),
)
def _check_03_1(a: Answers) -> str:
    handler = a.function("handle_order")
    with lessons.sandbox("03", FAST_FAIL) as box:
        require_answer(box, handler, "handle_order")
        lessons.install_handler(box, handler)
        good = {"type": "order", "order_id": fresh_id("good"), "amount": 12.5}
        bad = [{"type": "order", "amount": 5}, {"type": "order", "order_id": fresh_id("neg"), "amount": -3}]
        ids = box.send(good) + box.send(bad) + box.send("this is not JSON")
        wait_idle(box)
        told = lessons.stories(box, ids)
        applied = box.ledger.applied(f"order:{good['order_id']}")
    story = told.get(ids[0])
    status = first_status(story)
    if status != 200:
        raise NotYet(f"the valid order was answered {status}; only 200 makes the daemon delete it.")
    if not applied:
        raise NotYet("the valid order was answered 200 but is not in the ledger; call process(data) first.")
    labels = ["an order without order_id", "an order with a negative amount", "a body that is not JSON"]
    for mid, label in zip(ids[1:], labels, strict=True):
        bad_status = first_status(told.get(mid))
        if bad_status == 200:
            raise NotYet(f"{label} was answered 200, so the daemon deleted it as if it were done.")
        if bad_status is None or not 400 <= bad_status < 500:
            raise NotYet(f"{label} was answered {bad_status}; answer 400 with a one-line reason.")
    return (
        "your handler answered 200 for the valid order and the message left the queue; it answered 4xx "
        "for the three bad ones, so the daemon kept them for a retry and, in the end, the DLQ."
    )


@register(
    "03.2",
    "Replace the 202 with real work",
    (
        "The daemon waits for your answer (up to InactivityTimeout). You do not need a thread.",
        "Call process(data) directly in the handler, then return 'done', 200.",
    ),
)
def _check_03_2(a: Answers) -> str:
    handler = a.function("handle_thumbnail")
    with lessons.sandbox("03") as box:
        require_answer(box, handler, "handle_thumbnail")
        lessons.install_handler(box, handler)
        image_id, sizes = fresh_id("img"), [64, 256]
        job = {"type": "thumbnail", "image_id": image_id, "sizes": sizes, "work_ms": 800}
        [mid] = lessons.send_and_wait(box, job)
        story = lessons.stories(box, [mid]).get(mid)
        made = [box.ledger.applied(f"thumbnail:{image_id}:{size}") for size in sizes]
    statuses = story.statuses if story else []
    if statuses and statuses[0] == 202:
        raise NotYet(
            f"your handler still answers 202. The daemon counts that as a failure: it POSTed the job "
            f"{len(statuses)} times and the message ended in the DLQ."
        )
    if statuses != [200]:
        raise NotYet(
            f"the daemon made {len(statuses)} POSTs answered {statuses}; the goal is one POST answered 200."
        )
    if not all(made):
        raise NotYet(
            "you answered 200 before the thumbnails existed; if the instance stopped now, the work would be lost."
        )
    return "one POST, answered 200 after the work was done; the message was deleted and each thumbnail was made once."


@register(
    "03.3",
    "Log with context",
    (
        "Your log lines need what you would search for at 3 a.m.: the message id, the receive count, and why.",
        "log.info('order %s applied msgid=%s receive_count=%s', ...) on success and log.warning('rejected "
        "msgid=%s receive_count=%s: %s', ..., exc) before returning 400. Read both headers from request.headers.",
    ),
)
def _check_03_3(a: Answers) -> str:
    handler = a.function("handle_order_logged")
    with lessons.sandbox("03", LAB_PROFILE.replace(MaxRetries=2)) as box:
        require_answer(box, handler, "handle_order_logged")
        lessons.install_handler(box, handler)
        good = {"type": "order", "order_id": fresh_id("logged"), "amount": 4}
        bad = {"type": "order", "order_id": fresh_id("logged-bad"), "amount": -1}
        ids = box.send(good) + box.send(bad)
        wait_idle(box)
        lines = list(box.logbook.lines)
    for mid, label in zip(ids, ("the valid order", "the rejected order"), strict=True):
        if not any(mid in line for line in lines):
            raise NotYet(
                f"no log line at INFO or above mentions the message id of {label} (X-Aws-Sqsd-Msgid)."
            )
    bad_lines = [line for line in lines if ids[1] in line]
    if len(set(bad_lines)) < min(3, len(bad_lines)) or len(bad_lines) < 2:
        raise NotYet(
            "each delivery of the rejected order logged the same line; add the receive count to tell retries apart."
        )
    if not any("amount" in line for line in bad_lines):
        raise NotYet("the rejected order's lines do not say why; log the exception's message too.")
    return "every line names the message and its receive count, and the rejection says why: you can follow a retry in the log."
