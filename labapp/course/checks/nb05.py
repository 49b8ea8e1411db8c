"""The checks of notebook 05, idempotency and duplicates: each one drives a real lab and reads what happened."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.checks.support import (
    require_answer,
    wait_idle,
)
from labapp.course.handlers import install_handler, record, sandbox, send_and_wait
from labapp.course.observe import stories
from labapp.worker.scenarios import Job


@register("05.1")
def _check_05_1(a: Answers) -> str:
    handler = a.function("handle_payment")
    payments = a.value("payments")
    with sandbox("05") as box:
        require_answer(box, handler, "handle_payment")
        install_handler(box, handler)
        first, second = fresh_id("order"), fresh_id("order")
        messages = [{"type": "order", "order_id": first, "amount": 20}] * 3
        ids = box.send([*messages, {"type": "order", "order_id": second, "amount": 5}])
        wait_idle(box)
        told = stories(box, ids)
    charged_first, charged_second = payments.count(first), payments.count(second)
    if charged_first > 1:
        raise NotYet(
            f"the order sent three times was charged {charged_first} times; key the work by order_id."
        )
    if charged_first == 0 or charged_second != 1:
        raise NotYet(
            "an order that arrived was never charged; charge it the first time you see its order_id."
        )
    if not all(story.deleted for story in told.values()) or len(told) != len(ids):
        raise NotYet("a duplicate was answered with an error, so it was retried; answer 200 for a duplicate.")
    return "the order sent three times was charged once, the other order once, and every copy was answered 200 and deleted."


@register("05.2")
def _check_05_2(a: Answers) -> str:
    row_keys = a.function("row_keys")
    sample = {"type": "csv_import", "import_id": fresh_id("imp"), "csv": "sku,qty\nA1,3\nA1,3\nB2,1\n"}
    keys = row_keys(sample)
    if keys is None:
        raise NotAttempted("row_keys returned None.")
    keys = list(keys)
    if len(keys) != 3:
        raise NotYet(f"the sample file has 3 rows (two identical); row_keys returned {len(keys)} keys.")
    if len(set(keys)) != 3:
        raise NotYet("two rows got the same key; identical rows are still two rows.")
    if list(row_keys(dict(sample))) != keys:
        raise NotYet(
            "the same message gave different keys the second time; a redelivery must give the same keys."
        )
    if set(row_keys(dict(sample, import_id=fresh_id("imp")))) & set(keys):
        raise NotYet("another import of the same file got the same keys; put the import_id in the key.")
    with sandbox("05") as box:
        install_handler(box, lambda: _import_with(row_keys))
        other = dict(sample, import_id=fresh_id("imp"))
        send_and_wait(box, [sample, sample, other])
        summary = box.ledger.summary()
    if summary != {"applied": 6, "deliveries": 9, "duplicates": 3}:
        raise NotYet(f"after importing a file twice and another once, the ledger says {summary}.")
    return "importing the same file twice changed nothing the second time, and a second import of the same rows was kept apart."


def _import_with(row_keys: Callable[[dict[str, Any]], Any]) -> Any:
    from flask import request

    data = json.loads(request.get_data())
    record(Job("csv_import", list(row_keys(data)), 0))
    return "imported", 200
