"""The checks of notebook 02, the daemon and the post: each one drives a real lab and reads what happened."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import Any

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.checks.support import wait_idle
from labapp.course.handlers import sandbox, send_and_wait
from labapp.course.wire import request_for
from labapp.sqs.queues import peek
from labapp.worker.inspector import RecordedRequest
from labapp.worker.limits import short

ATTR_PREFIX = "X-Aws-Sqsd-Attr-"
SIGNATURE_BYTES = 16


def _kind(value: Any) -> str:
    """Return a value and its type, e.g. "'1' (str)", cut to one short line."""
    return f"{short(value, 80)} ({type(value).__name__})"


@register("02.1")
def _check_02_1(a: Answers) -> str:
    facts = a.function("message_facts")
    with sandbox("02") as box:
        order = {"type": "order", "order_id": fresh_id("facts"), "amount": 7}
        [mid] = send_and_wait(box, order)
        post = request_for(box, mid)
        got = facts(post)
        expected = {"message_id": mid, "queue": box.queues.name, "receive_count": 1, "order": order}
    if got is None:
        raise NotAttempted("message_facts returned None.")
    if not isinstance(got, Mapping):
        raise NotYet(f"message_facts returned a {type(got).__name__}; the check expected a dict.")
    missing = [key for key in expected if key not in got]
    if missing:
        raise NotYet(f"the dict has no key {missing[0]!r}; it has {sorted(map(str, got))}.")
    for key, want in expected.items():
        # `1 == 1.0` and `True == 1` in Python; the check wants the very type the POST implies.
        if got[key] != want or type(got[key]) is not type(want):
            raise NotYet(f"{key} is {_kind(got[key])}, but from the POST it is {_kind(want)}.")
    return "you read the id, the queue name and the receive count from the headers, and the order from the raw body."


@register("02.2")
def _check_02_2(a: Answers) -> str:
    send_signed = a.function("send_signed")
    with sandbox("02") as box:
        order_id = fresh_id("signed")
        order: dict[str, Any] = {"type": "order", "order_id": order_id, "amount": 9}
        tenant = fresh_id("acme")
        signature = os.urandom(SIGNATURE_BYTES)
        box.stop_daemon()  # look at what was sent before the daemon takes it
        send_signed(box, order, tenant, signature)
        sent = peek(box.sqs, box.queues.url)
        box.start_daemon()
        wait_idle(box)
        posts = [r for r in box.requests() if order_id.encode() in r.body]
    if not sent:
        raise NotAttempted("send_signed sent nothing to the queue.")
    if not posts:
        raise NotYet(
            f"the queue got {len(sent)} message(s), but no POST reached the worker with order "
            f"{order_id} in its body."
        )
    return _judge_signed(posts[-1], sent[0], order, tenant, signature)


def _judge_signed(
    post: RecordedRequest, sent: dict[str, Any], order: dict[str, Any], tenant: str, signature: bytes
) -> str:
    try:
        body = json.loads(post.body)
    except json.JSONDecodeError:
        body = None
    if body != order:
        raise NotYet(
            f"the POST's body was {short(post.body.decode('utf-8', 'replace'), 90)}, not the order as given."
        )
    headers = sorted(name for name, _ in post.headers if name.startswith(ATTR_PREFIX))
    if post.header(f"{ATTR_PREFIX}tenant") != tenant:
        raise NotYet(
            f"the POST has no {ATTR_PREFIX}tenant header with the tenant; its attribute headers: {headers}."
        )
    kinds = {name: attr.get("DataType") for name, attr in sent.get("MessageAttributes", {}).items()}
    value = post.header(f"{ATTR_PREFIX}signature")
    if value is None:
        if kinds.get("signature", "").startswith("Binary"):
            raise NotYet(
                "the message carried signature as a Binary attribute, and sqsd leaves Binary attributes "
                f"out of the POST: the worker got no {ATTR_PREFIX}signature header."
            )
        raise NotYet(f"the POST has no {ATTR_PREFIX}signature header; the message's attributes were {kinds}.")
    if not _decodes_to(value, signature):
        raise NotYet(
            f"{ATTR_PREFIX}signature is {short(value, 60)}, which turns back into the signature's bytes "
            "neither as base64 nor as hex."
        )
    return (
        "the worker can read the tenant and, decoded, the signature from X-Aws-Sqsd-Attr-* headers, "
        "and the body stayed the order."
    )


def _decodes_to(text: str, want: bytes) -> bool:
    """Return True when text is `want` in base64 (standard or URL-safe) or in hex."""
    for decode in (
        lambda t: base64.b64decode(t, validate=True),
        lambda t: base64.urlsafe_b64decode(t.encode("ascii")),
        bytes.fromhex,
    ):
        try:
            if decode(text) == want:
                return True
        except (ValueError, binascii.Error):
            continue
    return False
