"""Plan messages with unique business ids, then account for each one: applied once, in the DLQ, or lost."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections import Counter
from collections.abc import Sequence

from labapp.chaos.profile import GOOD, POISON, SLOW, Kind

log = logging.getLogger("labapp.chaos")


# -- the messages --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Planned:
    """One message to send, its business id, and what should become of it."""

    business_id: str
    kind: Kind
    body: str


def plan_messages(
    n: int,
    *,
    run_id: str | None = None,
    poison_every: int = 0,
    slow_every: int = 0,
    slow_ms: int = 3000,
    work_ms: int = 0,
) -> list[Planned]:
    """Plan n orders with unique ids; every poison_every-th has amount < 0, every slow_every-th is slow.

    A slow message is a thumbnail whose work_ms exceeds the daemon's InactivityTimeout, so every
    delivery times out although the worker finishes the work: it is applied once, then goes to the DLQ.
    """
    run_id = run_id or uuid.uuid4().hex[:8]
    plan = []
    for i in range(n):
        if poison_every and i % poison_every == poison_every - 1:
            order_id = f"{run_id}-{i:06d}"
            body = {"type": "order", "order_id": order_id, "amount": -1}
            plan.append(Planned(f"order:{order_id}", POISON, json.dumps(body)))
        elif slow_every and i % slow_every == slow_every // 2:
            image_id = f"{run_id}-{i:06d}"
            body = {"type": "thumbnail", "image_id": image_id, "sizes": [128], "work_ms": slow_ms}
            plan.append(Planned(f"thumbnail:{image_id}:128", SLOW, json.dumps(body)))
        else:
            order_id = f"{run_id}-{i:06d}"
            body = {"type": "order", "order_id": order_id, "amount": i % 97 + 0.5, "work_ms": work_ms}
            plan.append(Planned(f"order:{order_id}", GOOD, json.dumps(body)))
    return plan


# -- the report ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Report:
    """What became of every message of one chaos run."""

    sent: int
    applied_once: int  # effects applied exactly once (ledger applications == 1)
    applied_more_than_once: int  # effects applied twice or more: idempotency broken
    duplicate_deliveries: int  # POSTs that carried an id already delivered (absorbed by the ledger)
    in_dlq: int
    missing: int  # neither applied nor in the DLQ: lost
    still_queued: int  # messages left in the worker queue when the run ended
    poison: int = 0
    poison_in_dlq: int = 0
    slow: int = 0
    slow_in_dlq: int = 0
    good_in_dlq: int = 0
    receives_before_dlq: dict[int, int] = dataclasses.field(default_factory=dict)
    faults: tuple[str, ...] = ()
    seconds: float = 0.0
    unexpected: tuple[str, ...] = ()  # the first few ids whose outcome differs from their plan

    @property
    def ok(self) -> bool:
        """True when nothing is lost, nothing applied twice, and every id ended as planned."""
        return (
            self.missing == 0
            and self.applied_more_than_once == 0
            and self.still_queued == 0
            and not self.unexpected
        )

    def summary(self) -> str:
        """Return the figures as a small table, one per line, then the faults one per line."""
        dlq = (
            f"{self.in_dlq} (poison {self.poison_in_dlq}/{self.poison}, slow {self.slow_in_dlq}/{self.slow}, "
            f"healthy {self.good_in_dlq})"
        )
        rows = [
            ("messages sent", self.sent),
            ("applied exactly once", self.applied_once),
            ("applied more than once", self.applied_more_than_once),
            ("duplicate deliveries", self.duplicate_deliveries),
            ("in DLQ", dlq),
            ("receives before DLQ", dict(sorted(self.receives_before_dlq.items())) or "-"),
            ("missing (lost)", self.missing),
            ("left in queue", self.still_queued),
            ("seconds", f"{self.seconds:.1f}"),
            ("verdict", "OK" if self.ok else f"NOT OK {list(self.unexpected)}"),
        ]
        lines = [f"{name:>24}: {value}" for name, value in rows]
        lines += [f"{'fault' if i == 0 else '':>24}  {fault}" for i, fault in enumerate(self.faults)]
        return "\n".join(lines)


def reconcile(
    plan: Sequence[Planned],
    applications: dict[str, int],
    deliveries: dict[str, int],
    dlq: Sequence[tuple[str, int]],
    max_retries: int,
    *,
    still_queued: int = 0,
    faults: Sequence[str] = (),
    seconds: float = 0.0,
) -> Report:
    """Compare the plan with the ledger and the DLQ (body, receives before DLQ) and count outcomes."""
    by_body = {p.body: p for p in plan}
    in_dlq: dict[str, int] = {}
    unexpected: list[str] = []
    for body, receives in dlq:
        planned = by_body.get(body)
        if planned is None:
            unexpected.append(f"unknown DLQ body {body[:60]!r}")
            continue
        if planned.business_id in in_dlq:
            unexpected.append(f"{planned.business_id} twice in the DLQ")
        in_dlq[planned.business_id] = receives
    counts = Counter[str]()
    duplicates = 0
    for p in plan:
        applied = applications.get(p.business_id, 0)
        duplicates += max(0, deliveries.get(p.business_id, 0) - 1)
        counts["sent"] += 1
        counts[p.kind] += 1
        counts["applied_once"] += applied == 1
        counts["applied_more"] += applied > 1
        dead = p.business_id in in_dlq
        counts["in_dlq"] += dead
        counts[f"{p.kind}_in_dlq"] += dead
        counts["missing"] += applied == 0 and not dead
        problem = _outcome_problem(p, applied, in_dlq.get(p.business_id), max_retries)
        if problem:
            unexpected.append(f"{p.business_id}: {problem}")
    return Report(
        sent=counts["sent"],
        applied_once=counts["applied_once"],
        applied_more_than_once=counts["applied_more"],
        duplicate_deliveries=duplicates,
        in_dlq=counts["in_dlq"],
        missing=counts["missing"],
        still_queued=still_queued,
        poison=counts[POISON],
        poison_in_dlq=counts[f"{POISON}_in_dlq"],
        slow=counts[SLOW],
        slow_in_dlq=counts[f"{SLOW}_in_dlq"],
        good_in_dlq=counts[f"{GOOD}_in_dlq"],
        receives_before_dlq=dict(Counter(in_dlq.values())),
        faults=tuple(faults),
        seconds=seconds,
        unexpected=tuple(unexpected[:10]),
    )


def _outcome_problem(planned: Planned, applied: int, dlq_receives: int | None, max_retries: int) -> str:
    if applied > 1:
        return f"applied {applied} times"
    if dlq_receives is not None and dlq_receives != max_retries:
        return f"reached the DLQ after {dlq_receives} receives, not MaxRetries={max_retries}"
    if planned.kind == GOOD and dlq_receives is not None:
        return "a healthy message ended in the DLQ"
    if planned.kind == GOOD and applied != 1:
        return "never applied"
    if planned.kind == POISON and (applied or dlq_receives is None):
        return "poison was applied" if applied else "poison is not in the DLQ"
    if planned.kind == SLOW and (applied != 1 or dlq_receives is None):
        return "slow message not applied" if applied != 1 else "slow message is not in the DLQ"
    return ""
