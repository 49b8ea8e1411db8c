"""The checks of notebook 05, idempotency and duplicates: each one drives a real lab and reads what happened."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.checks.support import FAST_FAIL, require_answer, wait_idle
from labapp.course.handlers import install_handler, sandbox, send_and_wait
from labapp.course.observe import stories
from labapp.worker.scenarios import Job
from labapp.worker.views import record


@register("05.1")
def _check_05_1(a: Answers) -> str:
    handler = a.function("handle_payment")
    payments = a.value("payments")
    with sandbox("05", FAST_FAIL) as box:
        require_answer(box, handler, "handle_payment")
        install_handler(box, handler)
        retried, first, second = fresh_id("order"), fresh_id("order"), fresh_id("order")
        # The web tier's retries: the same order, each copy with its own send time (so its own body).
        copies = [
            {"type": "order", "order_id": retried, "amount": 20, "sent_at": f"12:00:0{n}"} for n in range(3)
        ]
        # Two real orders that look alike: the same customer buys the same thing twice.
        alike = [
            {"type": "order", "order_id": oid, "amount": 5, "customer": "c-7"} for oid in (first, second)
        ]
        ids = box.send([*copies, *alike])
        wait_idle(box)
        told = stories(box, ids)
    charged = {oid: payments.count(oid) for oid in (retried, first, second)}
    if charged[retried] > 1:
        raise NotYet(
            f"the order the web tier sent three times (three messages, each with its own message id and "
            f"send time) was charged {charged[retried]} times."
        )
    missed = [oid for oid in (retried, first, second) if charged[oid] == 0]
    if missed:
        raise NotYet(
            f"{len(missed)} order(s) that arrived were never charged, e.g. {missed[0]}: your handler took "
            "it for a copy of another order."
        )
    refused = sorted({s for story in told.values() for s in story.statuses if s != 200}, key=str)
    if refused or not all(story.deleted for story in told.values()):
        raise NotYet(
            f"a copy was answered {refused[0] if refused else 'without a 200'}: the daemon counted it as "
            "a failure, so it stayed in the queue and ended in the DLQ, although its work was done."
        )
    return (
        "the order sent three times was charged once, the two look-alike orders once each, and every copy "
        "was answered 200 and deleted."
    )


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
