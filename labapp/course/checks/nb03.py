"""The checks of notebook 03, writing the worker: each one drives a real lab and reads what happened."""

from __future__ import annotations

from labapp.course.checks.core import Answers, NotYet, fresh_id, register
from labapp.course.checks.support import (
    FAST_FAIL,
    first_status,
    require_answer,
    wait_idle,
)
from labapp.course.handlers import install_handler, sandbox, send_and_wait
from labapp.course.observe import stories
from labapp.sqsd.options import LAB_PROFILE


@register("03.1")
def _check_03_1(a: Answers) -> str:
    handler = a.function("handle_order")
    with sandbox("03", FAST_FAIL) as box:
        require_answer(box, handler, "handle_order")
        install_handler(box, handler)
        good = {"type": "order", "order_id": fresh_id("good"), "amount": 12.5}
        bad = [{"type": "order", "amount": 5}, {"type": "order", "order_id": fresh_id("neg"), "amount": -3}]
        ids = box.send(good) + box.send(bad) + box.send("this is not JSON")
        wait_idle(box)
        told = stories(box, ids)
        applied = box.ledger.applied(f"order:{good['order_id']}")
    story = told.get(ids[0])
    status = first_status(story)
    if status != 200:
        raise NotYet(f"the valid order was answered {status}; only 200 makes the daemon delete it.")
    if not applied:
        raise NotYet("the valid order was answered 200 but is not in the ledger; call process(data) first.")
    labels = ["an order without order_id", "an order with a negative amount", "a body that is not JSON"]
    for mid, label in zip(ids[1:], labels, strict=True):
        bad_status = first_status(told.get(mid))
        if bad_status == 200:
            raise NotYet(f"{label} was answered 200, so the daemon deleted it as if it were done.")
        if bad_status is None or not 400 <= bad_status < 500:
            raise NotYet(f"{label} was answered {bad_status}; answer 400 with a one-line reason.")
    return (
        "your handler answered 200 for the valid order and the message left the queue; it answered 4xx "
        "for the three bad ones, so the daemon kept them for a retry and, in the end, the DLQ."
    )


@register("03.2")
def _check_03_2(a: Answers) -> str:
    handler = a.function("handle_thumbnail")
    with sandbox("03") as box:
        require_answer(box, handler, "handle_thumbnail")
        install_handler(box, handler)
        image_id, sizes = fresh_id("img"), [64, 256]
        job = {"type": "thumbnail", "image_id": image_id, "sizes": sizes, "work_ms": 800}
        [mid] = send_and_wait(box, job)
        story = stories(box, [mid]).get(mid)
        made = [box.ledger.applied(f"thumbnail:{image_id}:{size}") for size in sizes]
    statuses = story.statuses if story else []
    if statuses and statuses[0] == 202:
        raise NotYet(
            f"your handler still answers 202. The daemon counts that as a failure: it POSTed the job "
            f"{len(statuses)} times and the message ended in the DLQ."
        )
    if statuses != [200]:
        raise NotYet(
            f"the daemon made {len(statuses)} POSTs answered {statuses}; the goal is one POST answered 200."
        )
    if not all(made):
        raise NotYet(
            "you answered 200 before the thumbnails existed; if the instance stopped now, the work would be lost."
        )
    return "one POST, answered 200 after the work was done; the message was deleted and each thumbnail was made once."


@register("03.3")
def _check_03_3(a: Answers) -> str:
    handler = a.function("handle_order_logged")
    with sandbox("03", LAB_PROFILE.replace(MaxRetries=2)) as box:
        require_answer(box, handler, "handle_order_logged")
        install_handler(box, handler)
        good = {"type": "order", "order_id": fresh_id("logged"), "amount": 4}
        bad = {"type": "order", "order_id": fresh_id("logged-bad"), "amount": -1}
        ids = box.send(good) + box.send(bad)
        wait_idle(box)
        lines = list(box.logbook.lines)
    for mid, label in zip(ids, ("the valid order", "the rejected order"), strict=True):
        if not any(mid in line for line in lines):
            raise NotYet(
                f"no log line at INFO or above mentions the message id of {label} (X-Aws-Sqsd-Msgid)."
            )
    bad_lines = [line for line in lines if ids[1] in line]
    if len(set(bad_lines)) < min(3, len(bad_lines)) or len(bad_lines) < 2:
        raise NotYet(
            "each delivery of the rejected order logged the same line; add the receive count to tell retries apart."
        )
    if not any("amount" in line for line in bad_lines):
        raise NotYet("the rejected order's lines do not say why; log the exception's message too.")
    return "every line names the message and its receive count, and the rejection says why: you can follow a retry in the log."
