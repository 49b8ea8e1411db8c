"""The checks of notebook 02, the daemon and the post: each one drives a real lab and reads what happened."""

from __future__ import annotations

import json
from collections.abc import Mapping

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.checks.support import (
    wait_idle,
)
from labapp.course.handlers import sandbox, send_and_wait
from labapp.course.wire import request_for


@register("02.1")
def _check_02_1(a: Answers) -> str:
    facts = a.function("message_facts")
    with sandbox("02") as box:
        order = {"type": "order", "order_id": fresh_id("facts"), "amount": 7}
        [mid] = send_and_wait(box, order)
        got = facts(request_for(box, mid))
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


@register("02.2")
def _check_02_2(a: Answers) -> str:
    send_for_tenant = a.function("send_for_tenant")
    with sandbox("02") as box:
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
