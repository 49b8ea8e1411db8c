"""The checks of notebook 03, writing the worker: each one drives a real lab and says what the daemon saw."""

from __future__ import annotations

from labapp.course.checks.core import Answers, NotYet, fresh_id, register
from labapp.course.checks.support import (
    FAST_FAIL,
    first_status,
    require_answer,
    wait_idle,
)
from labapp.course.handlers import install_handler, sandbox
from labapp.course.lab import Lab
from labapp.course.observe import stories
from labapp.sqsd.events import DaemonEvent, EventKind

# What Flask answers when a view raises: its own page, which says nothing about the message.
FLASK_ERROR_PAGE = "Internal Server Error"
# The checks only need to see each failure, not to wait for it: retries come back at once.
QUICK = FAST_FAIL.replace(ErrorVisibilityTimeout=0)


def _first_answer(box: Lab, message_id: str) -> str:
    """Return the body of the first answer to a message (the daemon keeps its first 200 characters)."""
    for event in box.events:
        if event.kind is EventKind.RESPONSE and event.message_id == message_id:
            return event.detail
    return ""


@register("03.1")
def _check_03_1(a: Answers) -> str:
    handler = a.function("handle_order")
    with sandbox("03", QUICK) as box:
        require_answer(box, handler, "handle_order")
        install_handler(box, handler)
        good = {"type": "order", "order_id": fresh_id("good"), "amount": 12.5}
        bad = [{"type": "order", "amount": 5}, {"type": "order", "order_id": fresh_id("neg"), "amount": -3}]
        ids = box.send(good) + box.send(bad) + box.send("this is not JSON")
        wait_idle(box)
        told = stories(box, ids)
        answers = {mid: _first_answer(box, mid) for mid in ids}
        applied = box.ledger.applied(f"order:{good['order_id']}")
    story = told.get(ids[0])
    status = first_status(story)
    if status != 200:
        posts = len(story.posts) if story else 0
        raise NotYet(
            f"the valid order was answered {status}, so the daemon kept it: {posts} POST(s), then the DLQ."
        )
    if not applied:
        raise NotYet("the valid order was answered 200 and deleted, but the ledger has no such order.")
    labels = ["an order without order_id", "an order with a negative amount", "a body that is not JSON"]
    for mid, label in zip(ids[1:], labels, strict=True):
        bad_status, said = first_status(told.get(mid)), answers[mid]
        if bad_status == 200:
            raise NotYet(f"{label} was answered 200, so the daemon deleted it as if it were done.")
        if FLASK_ERROR_PAGE in said:
            raise NotYet(
                f"{label} made your handler raise, so Flask answered {bad_status} with its own error page: "
                "the log and the DLQ would show a crash, and nothing about what is wrong with the message."
            )
        if bad_status is None or not 400 <= bad_status < 500:
            raise NotYet(
                f"{label} was answered {bad_status}; a reader of the log takes a {bad_status} for a sick "
                "worker, not for a message that can never succeed."
            )
        if not said.strip():
            raise NotYet(f"{label} was answered {bad_status} with an empty body: nothing says why.")
    return (
        "the valid order was answered 200 and deleted after one POST; the three bad ones got a 4xx with "
        "a reason, so the daemon retried them into the DLQ and anyone reading the log can see why."
    )


@register("03.2")
def _check_03_2(a: Answers) -> str:
    handler = a.function("handle_thumbnail")
    with sandbox("03", QUICK) as box:
        require_answer(box, handler, "handle_thumbnail")
        install_handler(box, handler)
        image_id, sizes = fresh_id("img"), [64, 256]
        job = {"type": "thumbnail", "image_id": image_id, "sizes": sizes, "work_ms": 800}
        # Look at the ledger the moment the daemon has its answer, before a thread could catch up.
        made_at_answer: list[bool] = []

        def note(event: DaemonEvent) -> None:
            if event.kind is EventKind.RESPONSE and not made_at_answer:
                made_at_answer.append(all(box.ledger.applied(f"thumbnail:{image_id}:{s}") for s in sizes))

        box.subscribe(note)
        [mid] = box.send(job)
        wait_idle(box)
        story = stories(box, [mid]).get(mid)
        started = box.ledger.deliveries().get(f"thumbnail:{image_id}:{sizes[0]}", 0)
    statuses = story.statuses if story else []
    if statuses and statuses[0] == 202:
        raise NotYet(
            f"your handler still answers 202. The daemon counted it as a failure: it POSTed the job "
            f"{len(statuses)} time(s), the work started {started} time(s), and the message ended in the DLQ."
        )
    if statuses != [200]:
        raise NotYet(
            f"the daemon made {len(statuses)} POST(s) answered {statuses}; the job did not leave the queue "
            "after one POST."
        )
    if made_at_answer and not made_at_answer[0]:
        raise NotYet(
            "you answered 200 before the thumbnails existed: the daemon deleted the message at once, so if "
            "the instance stopped now, nothing would bring the job back."
        )
    return "one POST, answered 200 after the work was done; the message was deleted and each thumbnail was made once."


@register("03.3")
def _check_03_3(a: Answers) -> str:
    handler = a.function("handle_order_logged")
    with sandbox("03", QUICK.replace(MaxRetries=2)) as box:
        require_answer(box, handler, "handle_order_logged")
        install_handler(box, handler)
        good = {"type": "order", "order_id": fresh_id("logged"), "amount": 4}
        bad = {"type": "order", "order_id": fresh_id("logged-bad"), "amount": -1}
        ids = box.send(good) + box.send(bad)
        wait_idle(box)
        lines = [line for line in box.logbook.lines if " labapp." not in line]
    for mid, label in zip(ids, ("the valid order", "the rejected order"), strict=True):
        if not any(mid in line for line in lines):
            raise NotYet(
                f"no line of yours at INFO or above names the message id of {label}: a search for it finds nothing."
            )
    bad_lines = [line.split(": ", 1)[-1] for line in lines if ids[1] in line]
    if len(bad_lines) >= 2 and len(set(bad_lines)) < len(bad_lines):
        raise NotYet(
            f"the rejected order was POSTed {len(bad_lines)} times and each POST logged the same line: "
            "the log cannot tell the first delivery from a retry."
        )
    if not any("amount" in line for line in bad_lines):
        raise NotYet("the rejected order's lines do not say what is wrong with it.")
    return "every line names the message and its receive count, and the rejection says why: you can follow a retry in the log."
