"""The checks of notebook 00, setup check: each one drives a real lab and reads what happened."""

from __future__ import annotations

from labapp.course.checks.core import Answers, NotAttempted, NotYet, register


@register("00.1")
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
        raise NotYet(
            "the check ran while a message was still waiting in the queue, before the daemon had taken it."
        )
    raise NotAttempted("no order hello-1 has reached the worker yet.")
