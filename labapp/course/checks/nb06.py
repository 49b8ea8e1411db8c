"""The checks of notebook 06, concurrency and timeouts: each one drives a real lab and reads what happened."""

from __future__ import annotations

import time

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.checks.support import (
    sqsd_options,
)
from labapp.course.handlers import sandbox, send_and_wait
from labapp.course.observe import stories
from labapp.sqsd.options import LAB_PROFILE


@register("06.1")
def _check_06_1(a: Answers) -> str:
    options = sqsd_options(a, "safe_options")
    with sandbox("06", options) as box:
        job = {"type": "thumbnail", "image_id": fresh_id("slow"), "sizes": [512], "work_ms": 2000}
        [mid] = send_and_wait(box, job, timeout=30)
        statuses = stories(box, [mid])[mid].statuses
    if statuses != [200]:
        what = "timed out" if None in statuses else "was POSTed again while it ran"
        raise NotYet(f"the job {what}: the daemon made {len(statuses)} POSTs answered {statuses}.")
    if options.VisibilityTimeout < options.InactivityTimeout:
        raise NotYet(
            "this job worked, but a job that runs up to InactivityTimeout would be received again while it runs: "
            "make VisibilityTimeout at least InactivityTimeout."
        )
    return (
        "one POST, answered in time, and a message that stays invisible for as long as the daemon may wait."
    )


@register("06.2")
def _check_06_2(a: Answers) -> str:
    split_job = a.function("split_job")
    job = {
        "type": "thumbnail",
        "image_id": fresh_id("poster"),
        "sizes": [32, 64, 128, 256, 512, 1024],
        "work_ms": 3600,
    }
    parts = split_job(dict(job))
    if parts is None:
        raise NotAttempted("split_job returned None.")
    parts = list(parts)
    sizes = sorted(size for part in parts for size in part.get("sizes", []))
    if sizes != job["sizes"] or any(part.get("image_id") != job["image_id"] for part in parts):
        raise NotYet("the sub-jobs should cover each size of the same image exactly once.")
    if any(part.get("work_ms", 0) > 1000 for part in parts):
        raise NotYet("some sub-job still takes more than a second; give each one its share of work_ms.")
    options = LAB_PROFILE.replace(VisibilityTimeout=2, InactivityTimeout=2)
    with sandbox("06", options) as box:
        send_and_wait(box, parts, timeout=30)
        deliveries = box.ledger.deliveries()
        dead = box.depth().dead_letter
    keys = [f"thumbnail:{job['image_id']}:{size}" for size in job["sizes"]]
    if dead or any(deliveries.get(key) != 1 for key in keys):
        raise NotYet(
            f"with a 2 s visibility timeout some sub-job was delivered twice or failed: {deliveries}."
        )
    return "six short sub-jobs instead of one long one: each finished inside the 2 s timeouts and ran once."


@register("06.3")
def _check_06_3(a: Answers) -> str:
    options = sqsd_options(a, "sale_options")
    with sandbox("06", options) as box:
        box.state.concurrency.reset()
        orders = [
            {"type": "order", "order_id": fresh_id("sale"), "amount": 1, "work_ms": 500} for _ in range(20)
        ]
        started = time.monotonic()
        send_and_wait(box, orders, timeout=30)
        took = time.monotonic() - started
        peak = box.state.concurrency.snapshot()["peak"]
    if took > 4:
        raise NotYet(
            f"20 orders of 0.5 s took {took:.1f} s with at most {peak} at once; allow more connections."
        )
    return "the flash sale drained in a few seconds because the daemon POSTed many orders at once."
