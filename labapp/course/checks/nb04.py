"""The checks of notebook 04, failures, retries and the dlq: each one drives a real lab and reads what happened."""

from __future__ import annotations

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.checks.support import (
    FAST_FAIL,
    sqsd_options,
    wait_idle,
)
from labapp.course.handlers import sandbox, send_and_wait
from labapp.course.observe import dead_letter_ids, stories
from labapp.sqsd.events import EventKind


@register("04.1")
def _check_04_1(a: Answers) -> str:
    options = sqsd_options(a, "five_tries")
    if options.ErrorVisibilityTimeout > 2 or options.MaxRetries > 10:
        raise NotYet(
            "keep ErrorVisibilityTimeout at about 1 s and MaxRetries small, so the check finishes in seconds."
        )
    with sandbox("04", options) as box:
        box.inject(error_rate=1.0, status=503)
        [mid] = box.send({"type": "order", "order_id": fresh_id("retry"), "amount": 1})
        wait_idle(box, timeout=options.MaxRetries * (options.ErrorVisibilityTimeout + 1) + 15)
        posts = len(stories(box, [mid])[mid].posts)
        in_dlq = mid in dead_letter_ids(box)
    if posts != 5:
        raise NotYet(
            f"the failing message was POSTed {posts} times before it moved to the DLQ; the goal is 5."
        )
    if not in_dlq:
        raise NotYet("the message did not reach the dead-letter queue.")
    return "five POSTs about a second apart, then SQS moved the message to the DLQ: MaxRetries became maxReceiveCount."


@register("04.2")
def _check_04_2(a: Answers) -> str:
    fix_and_redrive = a.function("fix_and_redrive")
    with sandbox("04", FAST_FAIL) as box:
        box.inject(error_rate=1.0, status=500)
        orders = [{"type": "order", "order_id": fresh_id("stuck"), "amount": n} for n in (1, 2, 3)]
        send_and_wait(box, orders, timeout=30)
        posts_before = sum(1 for e in box.events if e.kind is EventKind.POSTED)
        fix_and_redrive(box)
        wait_idle(box)
        posts_after = sum(1 for e in box.events if e.kind is EventKind.POSTED)
        healed = box.state.failures.current.error_rate == 0
        dead = box.depth().dead_letter
        applied = [box.ledger.applied(f"order:{o['order_id']}") for o in orders]
    if all(applied) and dead == 0:
        return "the worker was fixed first, then the three orders came back from the DLQ and were processed once each."
    if posts_after == posts_before and not healed:
        raise NotAttempted(
            "fix_and_redrive changed nothing: the worker still fails and the orders sit in the DLQ."
        )
    if posts_after > posts_before and not healed:
        raise NotYet(
            "you redrove before fixing the worker: the orders failed again and went back to the DLQ."
        )
    raise NotYet(
        f"the worker is fixed, but {dead} orders are still in the DLQ; move them back with lab.redrive()."
    )


@register("04.3")
def _check_04_3(a: Answers) -> str:
    poison_ids = a.function("poison_ids")
    with sandbox("04", FAST_FAIL) as box:
        bad = {"type": "csv_import", "import_id": fresh_id("bad"), "csv": "sku,qty\nA1,3\nB2\n"}
        good = {"type": "csv_import", "import_id": fresh_id("good"), "csv": "sku,qty\nA1,3\n"}
        send_and_wait(box, [bad, good], timeout=30)
        got = poison_ids(box)
    if got is None:
        raise NotAttempted("poison_ids returned None.")
    if sorted(got) != [bad["import_id"]]:
        raise NotYet(
            f"poison_ids returned {list(got)!r}; the DLQ holds exactly one import (the one with the short row)."
        )
    return "you found the import with the broken row in the DLQ by reading the message bodies; the good import went through."
