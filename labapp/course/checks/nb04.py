"""The checks of notebook 04, failures, retries and the DLQ: each drives a real lab and says what the daemon saw."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.checks.support import FAST_FAIL, sqsd_options, wait_idle
from labapp.course.handlers import sandbox, send_and_wait
from labapp.course.lab import Lab
from labapp.course.nb04 import what_is_wrong
from labapp.course.observe import MessageStory, dead_letter_ids, stories
from labapp.errors import WaitTimeout
from labapp.runtime.wait import wait_until
from labapp.sqs import move_selected
from labapp.sqsd.events import EventKind

# 04.1: the payment provider's outage, its rule for retries, and how soon support must see a broken order.
OUTAGE_S = 3.5
MIN_GAP_S = 2
DLQ_DEADLINE_S = 14


def _watch_outage(box: Lab, order_id: str, broken_id: str) -> float | None:
    """Wait until both messages are settled (or the deadline is long past); return when the broken one hit the DLQ."""
    first_post: float | None = None
    arrived: float | None = None

    def settled() -> bool:
        nonlocal first_post, arrived
        dead = dead_letter_ids(box)
        if first_post is None:
            posts = [e.time for e in box.events if e.kind is EventKind.POSTED and e.message_id == broken_id]
            first_post = min(posts) if posts else None
        if arrived is None and broken_id in dead and first_post is not None:
            arrived = time.time() - first_post
        order = stories(box, [order_id]).get(order_id)
        return arrived is not None and (order_id in dead or (order is not None and order.deleted))

    with contextlib.suppress(WaitTimeout):  # a broken message still out by then is the answer's fault
        wait_until(settled, DLQ_DEADLINE_S + 4, "the outage's messages to settle", interval=0.1)
    return arrived


def _times(story: MessageStory) -> str:
    start = story.posts[0].at if story.posts else 0.0
    return ", ".join(f"{post.at - start:.1f} s" for post in story.posts)


@register("04.1")
def _check_04_1(a: Answers) -> str:
    options = sqsd_options(a, "outage_options")
    gap = options.ErrorVisibilityTimeout
    if gap < MIN_GAP_S:
        raise NotYet(
            f"with ErrorVisibilityTimeout {gap} the daemon would call the provider again {gap} s after a "
            f"failure; the provider asks for at least {MIN_GAP_S} s between calls."
        )
    with sandbox("04", options) as box:
        box.inject(error_rate=1.0, status=503)
        healer = threading.Timer(OUTAGE_S, box.heal)
        order = {"type": "order", "order_id": fresh_id("outage"), "amount": 30}
        broken = {"type": "order", "order_id": fresh_id("broken"), "amount": -30}
        order_id, broken_id = box.send([order, broken])
        healer.start()
        try:
            arrived = _watch_outage(box, order_id, broken_id)
        finally:
            healer.cancel()
        told = stories(box, [order_id, broken_id])
        charged = box.ledger.applied(f"order:{order['order_id']}")
    story = told.get(order_id, MessageStory(order_id, [], False))
    if not charged:
        raise NotYet(
            f"the order was POSTed {len(story.posts)} time(s), at {_times(story)}, all inside the "
            f"{OUTAGE_S:g} s outage and each answered 503; then SQS moved it to the DLQ, and the customer "
            "was never charged."
        )
    broken_story = told.get(broken_id, MessageStory(broken_id, [], False))
    if arrived is None or arrived > DLQ_DEADLINE_S:
        when = f"only {arrived:.1f} s" if arrived is not None else f"still not, {DLQ_DEADLINE_S + 4} s"
        raise NotYet(
            f"the order got through, but the broken order reached the DLQ {when} after its first POST "
            f"({len(broken_story.posts)} POSTs, at {_times(broken_story)}); support needs it within "
            f"{DLQ_DEADLINE_S} s."
        )
    return (
        f"the order got through on POST {len(story.posts)}, {story.posts[-1].at - story.posts[0].at:.1f} s "
        f"after its first, once the outage was over; the broken order was in the DLQ after {arrived:.1f} s. "
        "MaxRetries and ErrorVisibilityTimeout together set how long a message keeps trying."
    )


class _Watched:
    """The check's lab as the learner's function sees it: it remembers the order of heal() and redrive().

    A redrive waits until the daemon has POSTed what came back, as it would on AWS while the next
    line of a runbook is still being typed.
    """

    def __init__(self, box: Lab) -> None:
        self._box = box
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._box, name)

    def heal(self) -> None:
        """Heal the check's worker."""
        self.calls.append("heal")
        self._box.heal()

    def redrive(self) -> tuple[str, int]:
        """Redrive the check's DLQ, then let the daemon deliver what came back."""
        self.calls.append("redrive")
        moved = self._box.redrive()
        wait_idle(self._box)
        return moved


@register("04.2")
def _check_04_2(a: Answers) -> str:
    recover = a.function("recover")
    with sandbox("04", FAST_FAIL) as box:
        box.inject(error_rate=1.0, status=500)
        orders = [{"type": "order", "order_id": fresh_id("stuck"), "amount": n} for n in (1, 2, 3)]
        send_and_wait(box, orders, timeout=30)
        mark = len(box.events)
        watched = _Watched(box)
        recover(watched)
        wait_idle(box)
        later = box.events[mark:]
        failed_again = sum(1 for e in later if e.kind is EventKind.RESPONSE and e.status != 200)
        posted = sum(1 for e in later if e.kind is EventKind.POSTED)
        healthy = box.state.failures.current.error_rate == 0
        dead = box.depth().dead_letter
        applied = [box.ledger.applications().get(f"order:{o['order_id']}", 0) for o in orders]
    if applied == [1, 1, 1] and dead == 0:
        return (
            "the deploy was rolled back first, then the three orders came back from the DLQ, and each was "
            "processed once."
        )
    if posted == 0 and not healthy:
        raise NotAttempted(
            "recover(lab) changed nothing: the worker still fails and the orders sit in the DLQ."
        )
    if failed_again:
        after = " The worker was fixed afterwards, but by then they were back in the DLQ." if healthy else ""
        raise NotYet(
            f"the orders came back while the deploy still failed: the daemon POSTed them {failed_again} "
            f"time(s), every answer was 500, and SQS moved them back to the DLQ.{after}"
        )
    if healthy and posted == 0:
        raise NotYet(
            "the worker is healthy now, but the daemon never saw the orders again: they are still in the "
            "DLQ, and the daemon reads only the worker queue."
        )
    raise NotYet(
        f"{sum(1 for n in applied if n == 0)} order(s) were not processed and {dead} sit in the DLQ."
    )


def _describe(body: dict[str, Any]) -> str:
    if body.get("type") == "csv_import":
        return f"CSV import {body.get('import_id')}"
    return f"order {body.get('order_id', '(without order_id)')}"


@register("04.3")
def _check_04_3(a: Answers) -> str:
    worth_retrying = a.function("worth_retrying")
    good: list[dict[str, Any]] = [
        {"type": "order", "order_id": fresh_id("night"), "amount": 12},
        {"type": "order", "order_id": fresh_id("night"), "amount": 7},
        {"type": "csv_import", "import_id": fresh_id("stock"), "csv": "sku,qty\nA1,3\nB2,5\n"},
    ]
    poison: list[dict[str, Any]] = [
        {"type": "order", "amount": 9},
        {"type": "csv_import", "import_id": fresh_id("stock"), "csv": "sku,qty\nA1,3\nB2\n"},
    ]
    with sandbox("04", FAST_FAIL) as box:
        box.inject(error_rate=1.0, status=503)  # the outage: everything fails the same way
        send_and_wait(box, good + poison, timeout=30)
        box.heal()
        looked = box.dead_letters()
        verdicts = {m["MessageId"]: worth_retrying(dict(m)) for m in looked}
        if all(v is None or v is Ellipsis for v in verdicts.values()):
            raise NotAttempted("worth_retrying returned nothing for every message in the DLQ.")
        chosen = [mid for mid, keep in verdicts.items() if keep]
        move_selected(box.sqs, box.queues.dlq_url, box.queues.url, chosen)
        wait_idle(box)
        left = [json.loads(m["Body"]) for m in box.dead_letters()]
        done = box.ledger.applications()
    brought_back = [json.loads(m["Body"]) for m in looked if m["MessageId"] in chosen]
    wrong = [body for body in brought_back if body in poison]
    if wrong:
        back = " and SQS moved it back to the DLQ" if wrong[0] in left else ""
        raise NotYet(
            f"you brought back the {_describe(wrong[0])}: the worker answered 400 "
            f"({what_is_wrong(json.dumps(wrong[0]))}){back}."
        )
    stuck = [b for b in good if b in left]
    if stuck:
        raise NotYet(
            f"the {_describe(stuck[0])} is still in the DLQ although the provider is back: nobody will "
            "process it now."
        )
    if any(done.get(f"order:{b['order_id']}", 0) != 1 for b in good if b["type"] == "order"):
        raise NotYet("an order you brought back was not processed exactly once.")
    return (
        "the two orders and the good import came back and were processed; the order without an id and the "
        "import with a short row stayed in the DLQ, where the data team can read why."
    )
