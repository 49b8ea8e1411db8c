"""The checks of notebook 09, monitoring and troubleshooting: each one drives a real lab and reads what happened."""

from __future__ import annotations

from labapp.course.checks.core import Answers, NotAttempted, NotYet, register
from labapp.course.checks.support import (
    FAST_FAIL,
    wait_idle,
)
from labapp.course.handlers import sandbox
from labapp.course.nb09 import CAUSES, start_mystery
from labapp.course.observe import outcome_counts
from labapp.sqsd.events import EventKind


@register("09.1")
def _check_09_1(a: Answers) -> str:
    diagnosis = a.value("diagnosis")
    lab = a.lab
    actual = getattr(lab, "mystery", None)
    if actual is None:
        raise NotYet("no mystery is running in your lab; run the cell with start_mystery(lab) first.")
    if diagnosis not in CAUSES:
        raise NotYet(f"diagnosis should be one of {', '.join(CAUSES)}.")
    if diagnosis == actual:
        return "that is the one. " + CAUSES[actual]
    counts = outcome_counts(lab)
    evidence = {
        "daemon-stopped": f"the daemon is running: it received and POSTed {counts.get('received', 0)} messages",
        "bad-orders": "the body the worker got is valid JSON with an order_id and an amount",
        "short-timeout": "every POST was answered, at once, with a status: no socket errors",
        "wrong-path": "the worker answered with its own 400 and a reason, not a 404",
    }
    raise NotYet(f"not that one: {evidence[diagnosis]} (daemon events: {counts}).")


@register("09.2")
def _check_09_2(a: Answers) -> str:
    fix = a.function("fix")
    with sandbox("09", FAST_FAIL) as box:
        ids = start_mystery(box)
        wait_idle(box)
        posts_before = sum(1 for e in box.events if e.kind is EventKind.POSTED)
        fix(box)
        wait_idle(box)
        posts_after = sum(1 for e in box.events if e.kind is EventKind.POSTED)
        applied = sum(box.ledger.applied(f"order:sale-{n}") for n in range(len(ids)))
        dead = box.depth().dead_letter
    if posts_after == posts_before and dead:
        raise NotAttempted("fix(lab) changed nothing: the orders are still in the DLQ.")
    if applied == len(ids) and dead == 0:
        return "the worker reads the raw body again, and every order of the sale came back from the DLQ and was processed."
    raise NotYet(
        f"{applied} of {len(ids)} orders were processed and {dead} are in the DLQ; fix first, then redrive."
    )
