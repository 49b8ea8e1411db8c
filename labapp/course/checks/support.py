"""What the checks of every notebook share: a lab of their own, answers that are sqsd options, waits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labapp.course.checks.core import Answers, NotAttempted, NotYet
from labapp.course.lab import Lab
from labapp.course.observe import MessageStory
from labapp.errors import LabError
from labapp.sqsd.options import LAB_PROFILE, SqsdOptions


def sqsd_options(a: Answers, name: str) -> SqsdOptions:
    """Return sqsd options the learner built, or raise NotAttempted / NotYet."""
    return a.instance(name, SqsdOptions, "sqsd options, e.g. LAB_PROFILE.replace(...)")


# Checks that only need a failure to end in the DLQ give up after one POST, so they take seconds.
FAST_FAIL = LAB_PROFILE.replace(MaxRetries=1)


def require_answer(box: Any, handler: Callable[[], Any], name: str) -> None:
    """Raise NotAttempted when a Flask handler still returns nothing (the learner's stub)."""
    headers = {"X-Aws-Sqsd-Msgid": "precheck", "X-Aws-Sqsd-Receive-Count": "1"}
    with worker_app(box).test_request_context("/", method="POST", data=b"{}", headers=headers):
        try:
            result = handler()
        except Exception:
            return  # it does something with the body: a real attempt
    if result is None or result is Ellipsis:
        raise NotAttempted(f"`{name}` returns nothing yet; write its body and run the cell.")


def worker_app(box: Lab) -> Any:
    assert box.worker is not None, "the check's lab has no worker"
    return box.worker.app


def first_status(story: MessageStory | None) -> int | None:
    return story.posts[0].status if story and story.posts else None


def wait_idle(box: Any, timeout: float = 30) -> None:
    try:
        box.wait_until_idle(timeout=timeout)
    except LabError as exc:
        raise NotYet(f"the check's queue never drained ({exc}); does your code hang?") from None


def scratch_queue(sqs: Any, name: str) -> str:
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    sqs.purge_queue(QueueUrl=url)
    return url


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attrs[names[0]]), int(attrs[names[1]])
