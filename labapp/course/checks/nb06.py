"""The checks of notebook 06, concurrency and timeouts: each drives a real lab and says what the daemon saw."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import request

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.checks.support import sqsd_options, wait_idle
from labapp.course.handlers import install_handler, sandbox
from labapp.course.lab import Lab
from labapp.course.observe import MessageStory, dead_letter_ids, stories
from labapp.errors import WaitTimeout
from labapp.runtime.wait import wait_until
from labapp.sqsd.options import LAB_PROFILE
from labapp.worker.scenarios import Job, read_job
from labapp.worker.views import receive_count, record

# 06.1: the nightly reports.
REPORT_S = 1.5
HUNG_REPORT_S = 0.1  # once it does not hang, the hung report is a short one
NOTICE_HANG_S = 6  # the second POST of a hung report must start this soon after the first
GIVE_UP_S = NOTICE_HANG_S + 2
ROOMY_CONNECTIONS = 20


def _report_handler(release: threading.Event) -> Callable[[], Any]:
    """A report job: work_ms of work, except that a 'hang_first' report hangs on its first delivery."""

    def handle() -> Any:
        data = json.loads(request.get_data())
        if data.get("hang_first") and receive_count() == 1:
            release.wait(30)  # the check releases it before it stops its lab
            return "released", 200
        time.sleep(data["work_ms"] / 1000)
        return "report done", 200

    return handle


def _settled(box: Lab, ids: list[str], timeout: float) -> None:
    """Wait until every message is deleted or in the DLQ, or until the timeout ends the wait."""

    def settled() -> bool:
        told, dead = stories(box, ids), dead_letter_ids(box)
        return all(mid in dead or (mid in told and told[mid].deleted) for mid in ids)

    with contextlib.suppress(WaitTimeout):  # what is still out by then is part of the story
        wait_until(settled, timeout, "every report to settle", interval=0.1)


@register("06.1")
def _check_06_1(a: Answers) -> str:
    options = sqsd_options(a, "report_options")
    release = threading.Event()
    # As on AWS (HttpConnections 50), free connections to spare: a message visible again while a
    # POST hangs is received at once (the daemon receives only with a full batch of ten free).
    roomy = options.replace(HttpConnections=max(options.HttpConnections, ROOMY_CONNECTIONS), MaxRetries=2)
    with sandbox("06", roomy) as box:
        install_handler(box, _report_handler(release))
        report = {"report": fresh_id("nightly"), "work_ms": int(REPORT_S * 1000)}
        hung = {"report": fresh_id("hung"), "work_ms": int(HUNG_REPORT_S * 1000), "hang_first": True}
        ids = box.send([report, hung])
        try:
            _settled(box, ids, GIVE_UP_S)
        finally:
            release.set()
        if box.daemon is not None:
            box.daemon.wait_idle(timeout=5)  # the released POST's answer belongs to the story too
        told = stories(box, ids)
    normal = told.get(ids[0], MessageStory(ids[0], [], False))
    if None in normal.statuses:
        raise NotYet(
            f"the daemon gave up on the {REPORT_S:g} s report after {options.InactivityTimeout} s "
            f"(InactivityTimeout), before it was done, and POSTed it again: answers {normal.statuses}."
        )
    if len(normal.posts) > 1:
        again = normal.posts[1].at - normal.posts[0].at
        raise NotYet(
            f"the {REPORT_S:g} s report was POSTed a second time {again:.1f} s after the first, while the "
            "first POST still ran: the message had become visible again."
        )
    stuck = told.get(ids[1], MessageStory(ids[1], [], False))
    if len(stuck.posts) < 2:
        raise NotYet(
            f"the hung report got no second POST within {GIVE_UP_S} s: the daemon was still waiting for "
            f"the first (InactivityTimeout {options.InactivityTimeout} s)."
        )
    first, second = stuck.posts[0], stuck.posts[1]
    if first.status == 200 or second.at < first.at + first.took - 0.05:
        raise NotYet(
            f"the hung report was POSTed again {second.at - first.at:.1f} s after its first POST, while the "
            "daemon was still waiting for the first answer: the message had become visible again, so two "
            "POSTs of one report were open at once."
        )
    if second.at - first.at > NOTICE_HANG_S:
        raise NotYet(
            f"the hung report's second POST came {second.at - first.at:.1f} s after its first; the warehouse "
            f"wants it within {NOTICE_HANG_S} s."
        )
    return (
        f"the {REPORT_S:g} s report was POSTed once and answered in time; the hung one was given up after "
        f"{options.InactivityTimeout} s and POSTed again {second.at - first.at:.1f} s after its first POST, "
        "and never twice at once."
    )


# 06.2: a CSV import too long for one POST.
ROWS = 900
MS_PER_ROW = 3
SPLIT_TIMEOUTS = LAB_PROFILE.replace(VisibilityTimeout=2, InactivityTimeout=2, MaxRetries=1)


def _import_rows() -> Any:
    """The worker's import: MS_PER_ROW of work per row, then each row's key applied once."""
    job = read_job(json.loads(request.get_data()))
    time.sleep(len(job.business_ids) * MS_PER_ROW / 1000)
    record(Job(job.kind, job.business_ids, 0))
    return "imported", 200


def _pieces(split_job: Callable[[dict[str, Any]], Any], job: dict[str, Any]) -> list[dict[str, Any]]:
    parts = split_job(dict(job))
    if parts is None or parts is Ellipsis:
        raise NotAttempted("split_import returned nothing.")
    parts = list(parts)
    header = job["csv"].splitlines()[0]
    if not parts or not all(isinstance(p, dict) and p.get("type") == "csv_import" for p in parts):
        raise NotYet("split_import should return a list of csv_import jobs, like the one it was given.")
    if any(str(p.get("csv", "")).splitlines()[:1] != [header] for p in parts):
        raise NotYet("a piece does not start with the file's header line, so its rows cannot be read.")
    rows = sum(len([line for line in p["csv"].splitlines()[1:] if line.strip()]) for p in parts)
    if rows != ROWS:
        raise NotYet(f"the pieces hold {rows} data rows between them; the file has {ROWS}.")
    return parts


@register("06.2")
def _check_06_2(a: Answers) -> str:
    split_job = a.function("split_import")
    lines = "\n".join(f"SKU-{n % 37},{n % 5 + 1}" for n in range(ROWS))  # some rows repeat, as in real files
    job = {"type": "csv_import", "import_id": fresh_id("stock"), "csv": f"sku,qty\n{lines}\n"}
    first, again = _pieces(split_job, job), _pieces(split_job, job)  # the parent message, delivered twice
    with sandbox("06", SPLIT_TIMEOUTS) as box:
        install_handler(box, _import_rows)
        ids = box.send([*first, *again])
        wait_idle(box, timeout=40)
        told = stories(box, ids)
        summary = box.ledger.summary()
    timed_out = [mid for mid in ids if None in told.get(mid, MessageStory(mid, [], False)).statuses]
    if timed_out:
        biggest = max(len(p["csv"].splitlines()) - 1 for p in first)
        raise NotYet(
            f"{len(timed_out)} POST(s) of your pieces got no answer within InactivityTimeout (2 s) and ended "
            f"in the DLQ; your biggest piece holds {biggest} rows, about {biggest * MS_PER_ROW / 1000:.1f} s "
            "of work."
        )
    if summary["applied"] > ROWS:
        raise NotYet(
            f"the parent job arrived twice, as any message can, and the second split gave its pieces new "
            f"keys: {summary['applied']} row effects for {ROWS} rows."
        )
    if summary["applied"] < ROWS:
        raise NotYet(
            f"only {summary['applied']} of {ROWS} rows were imported once: some pieces gave their rows the "
            "same keys as another piece, so the ledger took them for copies."
        )
    return (
        f"{len(first)} pieces, each done inside the 2 s timeouts; the parent job arrived twice and all "
        f"{ROWS} rows were imported exactly once."
    )


# 06.3: a flash sale against a provider that takes a limited number of calls at once.
SALE_ORDERS = 60
ORDER_S = 0.5
PROVIDER_LIMIT = 25
SALE_DEADLINE_S = 3
SALE_GIVE_UP_S = 15  # far past the deadline: how long the check watches before it judges


class _Provider:
    """A payment provider that takes PROVIDER_LIMIT calls at once and answers 429 to the rest."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.busy = self.peak = self.refused = 0

    def handle(self) -> Any:
        with self.lock:
            if self.busy >= PROVIDER_LIMIT:
                self.refused += 1
                return "too many calls at once", 429
            self.busy += 1
            self.peak = max(self.peak, self.busy)
        try:
            time.sleep(ORDER_S)
            return "charged", 200
        finally:
            with self.lock:
                self.busy -= 1


@register("06.3")
def _check_06_3(a: Answers) -> str:
    options = sqsd_options(a, "sale_options")
    provider = _Provider()
    with sandbox("06", options) as box:
        install_handler(box, provider.handle)
        orders = [{"type": "order", "order_id": fresh_id("sale"), "amount": 1} for _ in range(SALE_ORDERS)]
        started = time.monotonic()
        ids = box.send(orders)
        _settled(box, ids, SALE_GIVE_UP_S)
        took = time.monotonic() - started
        peak = box.state.concurrency.snapshot()["peak"]
    sale = f"{SALE_ORDERS} orders took {took:.1f} s with at most {peak} POSTs at once"
    if provider.refused:
        raise NotYet(
            f"{sale}, and the provider answered 429 to {provider.refused} POST(s): it takes at most "
            f"{PROVIDER_LIMIT} calls at once, so those orders were retried."
        )
    if took > SALE_DEADLINE_S:
        raise NotYet(f"{sale}; the shop wants the sale charged within {SALE_DEADLINE_S:g} s.")
    return f"{sale}: inside {SALE_DEADLINE_S:g} s, and the provider never refused a call."
