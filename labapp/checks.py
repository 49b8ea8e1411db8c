"""Exercises with three verbs, as in Kaggle's learntools: `ex.check()`, `ex.hint()`, `ex.solution()`.

    ex = checks.exercise("02.1")   # binds to the notebook's variables
    ex.check()                     # correct / not yet / not attempted, with a reason
    ex.hint(); ex.hint(2)          # tiered hints
    ex.solution()                  # the code from solutions/NN_*.ipynb

A check tests behaviour: it runs the learner's function or options against a real lab (usually a
private one, `lessons.sandbox`) and looks at what the daemon and the worker did. Each result is
written to `progress.json` (see `labapp.progress`). Notebooks 07 and 08 register their exercises
from their own module with `@checks.register(...)`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labapp import lessons, progress
from labapp.config import LAB_PROFILE, SqsdOptions, load_ebextensions
from labapp.errors import ConfigError, LabError

CORRECT, NOT_YET, NOT_ATTEMPTED = "correct", "not yet", "not attempted"
_MARK = {CORRECT: "✔ Correct", NOT_YET: "✘ Not yet", NOT_ATTEMPTED: "… Not attempted"}


class NotAttempted(Exception):
    """The learner has not written an answer yet; the message says what is missing."""


class NotYet(Exception):
    """The answer runs but does not behave as the exercise asks; the message says how."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The result of one check."""

    status: str
    reason: str

    def __str__(self) -> str:
        return f"{_MARK[self.status]}: {self.reason}"


Checker = Callable[["Answers"], str]


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise: a checker that returns a success sentence or raises NotYet / NotAttempted."""

    id: str
    title: str
    checker: Checker
    hints: tuple[str, ...]


REGISTRY: dict[str, Exercise] = {}


def register(exercise_id: str, title: str, hints: tuple[str, ...]) -> Callable[[Checker], Checker]:
    """Register a checker for an exercise id such as '07.1' (used as a decorator)."""
    if not re.fullmatch(r"\d\d\.\d+", exercise_id):
        raise ValueError(f"exercise ids look like '02.1'; got {exercise_id!r}")

    def wrap(checker: Checker) -> Checker:
        REGISTRY[exercise_id] = Exercise(exercise_id, title, checker, hints)
        return checker

    return wrap


class Answers:
    """The notebook's variables as a check sees them, with helpers that name what is missing."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace

    def value(self, name: str) -> Any:
        """Return a variable, or raise NotAttempted while it is missing or still `...`."""
        if name not in self.namespace or self.namespace[name] is Ellipsis:
            raise NotAttempted(f"`{name}` is not set yet; fill in the cell above and run it.")
        return self.namespace[name]

    def function(self, name: str) -> Callable[..., Any]:
        """Return a function the learner defined, or raise NotAttempted / NotYet."""
        value = self.value(name)
        if not callable(value):
            raise NotYet(f"`{name}` should be a function; it is a {type(value).__name__}.")
        return value

    @property
    def lab(self) -> Any:
        """Return the notebook's running lab."""
        lab = self.namespace.get("lab")
        if lab is None or getattr(lab, "worker", None) is None:
            raise NotYet("the lab is not running: run the preflight cell at the top first.")
        return lab


def run_check(exercise: Exercise, namespace: Mapping[str, Any]) -> Outcome:
    """Run one checker and turn whatever happens into an Outcome (a check never raises)."""
    try:
        outcome = Outcome(CORRECT, exercise.checker(Answers(namespace)))
    except NotAttempted as exc:
        outcome = Outcome(NOT_ATTEMPTED, str(exc))
    except NotYet as exc:
        outcome = Outcome(NOT_YET, str(exc))
    except Exception as exc:  # the learner's code failed inside the check: that is feedback, not a crash
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        outcome = Outcome(NOT_YET, f"your code raised {type(exc).__name__}: {first_line}")
    return outcome


class BoundExercise:
    """An exercise bound to the notebook's variables: check(), hint(), solution()."""

    def __init__(self, exercise: Exercise, namespace: Mapping[str, Any]) -> None:
        self.exercise = exercise
        self.namespace = namespace
        self.last: Outcome | None = None
        self._hints_shown = 0

    def check(self) -> None:
        """Run the check, print the result and record it in progress.json."""
        self.last = run_check(self.exercise, self.namespace)
        print(f"{self.exercise.id} {self.exercise.title}\n{self.last}")
        try:
            progress.record(self.exercise.id, self.last.status, self.last.reason)
        except OSError as exc:
            print(f"(could not save your progress: {exc})")

    def hint(self, level: int | None = None) -> None:
        """Print hint `level` (1 = gentle); without a level, the next one."""
        hints = self.exercise.hints
        if not hints:
            print("No hint for this one; try ex.solution().")
            return
        level = level or min(self._hints_shown + 1, len(hints))
        level = max(1, min(level, len(hints)))
        self._hints_shown = max(self._hints_shown, level)
        more = f" (next: .hint({level + 1}))" if level < len(hints) else " (that is the last hint)"
        print(f"Hint {level} of {len(hints)}{more}:\n{hints[level - 1]}")

    def solution(self) -> None:
        """Print the solution code from the solutions notebook."""
        print(f"Solution for {self.exercise.id}:\n\n{solution_text(self.exercise.id)}")

    def __repr__(self) -> str:
        return f"<Exercise {self.exercise.id}: {self.exercise.title}; try .check(), .hint(), .solution()>"


# Notebooks 07 and 08 register their exercises from their own modules; a learner who restarts the
# kernel and jumps straight to an exercise still finds them.
EXERCISE_MODULES = {"07": "labapp.exercises_autoscaling", "08": "labapp.exercises_periodic"}


def exercise(exercise_id: str, namespace: Mapping[str, Any] | None = None) -> BoundExercise:
    """Return exercise `exercise_id` bound to the calling notebook's variables."""
    if exercise_id not in REGISTRY and exercise_id[:2] in EXERCISE_MODULES:
        importlib.import_module(EXERCISE_MODULES[exercise_id[:2]])
    if exercise_id not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise KeyError(f"No exercise {exercise_id!r}; known: {known}.")
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    return BoundExercise(REGISTRY[exercise_id], namespace)


# -- solution regions in notebook cells ----------------------------------------------------------------
BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?: (?P<id>\d\d\.\d+))?[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
STUB = re.compile(r"^[ \t]*# STUB: (?P<code>.*)$")
STUB_COMMENT = "# your code here"


def split_solution(source: str) -> tuple[str, dict[str, str]]:
    """Return (learner source, {exercise id: solution code}) for one cell's source.

    A region runs from `# BEGIN SOLUTION [id]` to `# END SOLUTION`. In the learner's copy it becomes
    its `# STUB: ...` lines (uncommented), or `...  # your code here` when it has none.
    """
    out: list[str] = []
    solutions: dict[str, str] = {}
    region: list[str] | None = None
    stubs: list[str] = []
    indent, region_id = "", ""
    for number, line in enumerate(source.split("\n"), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if region is not None:
                raise ValueError(f"line {number}: BEGIN SOLUTION inside another solution region")
            region, stubs = [], []
            indent, region_id = begin["indent"], begin["id"] or ""
        elif end:
            if region is None:
                raise ValueError(f"line {number}: END SOLUTION without BEGIN SOLUTION")
            for stub in stubs or ["..."]:
                out.append(f"{indent}{stub}" + ("" if "#" in stub else f"  {STUB_COMMENT}"))
            if region_id:
                code = textwrap.dedent("\n".join(region)).strip("\n")
                solutions[region_id] = f"# the body of the function above\n{code}" if indent else code
            region = None
        elif region is not None:
            stub_match = STUB.match(line)
            if stub_match:
                stubs.append(stub_match["code"])
            else:
                region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise ValueError("a BEGIN SOLUTION region is never closed with END SOLUTION")
    return "\n".join(out), solutions


def solutions_dir() -> Path:
    """Return the folder with the solution notebooks (LAB_SOLUTIONS_DIR, or the repository's)."""
    return Path(os.environ.get("LAB_SOLUTIONS_DIR") or Path(__file__).resolve().parents[1] / "solutions")


def solution_text(exercise_id: str) -> str:
    """Return the code of one solution region, read from solutions/NN_*.ipynb."""
    notebook = progress.notebook_of(exercise_id)
    for path in sorted(solutions_dir().glob(f"{notebook}_*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        for cell in cells:
            if cell.get("cell_type") != "code":
                continue
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            found = split_solution(source)[1]
            if exercise_id in found:
                return found[exercise_id]
    return f"(the solution is in solutions/{notebook}_*.ipynb, which is not on this machine)"


def fresh_id(prefix: str) -> str:
    """Return a business id no earlier run has used, so a check never meets an old ledger entry."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ==================================================================================================
# The exercises of notebooks 00-06, 09 and 10. Each checker drives a real lab and reads what happened.
# ==================================================================================================


# Checks that only need a failure to end in the DLQ give up after one POST, so they take seconds.
FAST_FAIL = LAB_PROFILE.replace(MaxRetries=1)


def _require_answer(box: Any, handler: Callable[[], Any], name: str) -> None:
    """Raise NotAttempted when a Flask handler still returns nothing (the learner's stub)."""
    headers = {"X-Aws-Sqsd-Msgid": "precheck", "X-Aws-Sqsd-Receive-Count": "1"}
    with _app(box).test_request_context("/", method="POST", data=b"{}", headers=headers):
        try:
            result = handler()
        except Exception:
            return  # it does something with the body: a real attempt
    if result is None or result is Ellipsis:
        raise NotAttempted(f"`{name}` returns nothing yet; write its body and run the cell.")


def _app(box: lessons.LessonLab) -> Any:
    assert box.worker is not None, "the check's lab has no worker"
    return box.worker.app


def _first_status(story: lessons.MessageStory | None) -> int | None:
    return story.posts[0].status if story and story.posts else None


def _wait(box: Any, timeout: float = 30) -> None:
    try:
        box.wait_until_idle(timeout=timeout)
    except LabError as exc:
        raise NotYet(f"the check's queue never drained ({exc}); does your code hang?") from None


def _scratch_queue(sqs: Any, name: str) -> str:
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    sqs.purge_queue(QueueUrl=url)
    return url


def _counts(sqs: Any, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attrs[names[0]]), int(attrs[names[1]])


# -- 00 ------------------------------------------------------------------------------------------------
@register(
    "00.1",
    "Send your first order",
    (
        "Use lab.send() with a dict. The worker reads the fields type, order_id and amount.",
        'lab.send({"type": "order", "order_id": "hello-1", "amount": 5}), then lab.wait_until_idle().',
    ),
)
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
        raise NotYet("a message is still waiting in the queue; call lab.wait_until_idle() after sending.")
    raise NotAttempted("no order hello-1 has reached the worker yet.")


# -- 01 ------------------------------------------------------------------------------------------------
@register(
    "01.1",
    "Take one message off the queue",
    (
        "Two calls: receive_message gives you the message and its ReceiptHandle; delete_message needs both "
        "the QueueUrl and that ReceiptHandle.",
        "reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1); take "
        "reply['Messages'][0], delete it with its 'ReceiptHandle', return its 'Body' (None if no Messages).",
    ),
)
def _check_01_1(a: Answers) -> str:
    take_one = a.function("take_one")
    lab = a.lab
    url = _scratch_queue(lab.sqs, "lab-01-check")
    try:
        body = json.dumps({"type": "order", "order_id": fresh_id("take"), "amount": 3})
        lab.sqs.send_message(QueueUrl=url, MessageBody=body)
        got = take_one(lab.sqs, url)
        visible, in_flight = _counts(lab.sqs, url)
    finally:
        lab.sqs.delete_queue(QueueUrl=url)
    if got is None and visible == 1:
        raise NotAttempted("take_one returned None and never received the message.")
    if got != body:
        raise NotYet(f"take_one returned {str(got)[:60]!r}; return the message's Body, as a string.")
    if in_flight or visible:
        raise NotYet(
            "you returned the body, but the message is still in the queue, only invisible for now: "
            "it will come back. Delete it with its ReceiptHandle."
        )
    return "take_one received the message, returned its body and deleted it; the queue is empty."


@register(
    "01.2",
    "Give a message back at once",
    (
        "A receipt handle lets you change the visibility of the message you received.",
        "sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)",
    ),
)
def _check_01_2(a: Answers) -> str:
    give_back = a.function("give_back")
    lab = a.lab
    url = _scratch_queue(lab.sqs, "lab-01-check")
    try:
        lab.sqs.send_message(QueueUrl=url, MessageBody="give me back")
        first = lab.sqs.receive_message(QueueUrl=url, VisibilityTimeout=30, WaitTimeSeconds=1)["Messages"][0]
        give_back(lab.sqs, url, first["ReceiptHandle"])
        again = lab.sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=0, AttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
    finally:
        lab.sqs.delete_queue(QueueUrl=url)
    if not again:
        raise NotAttempted("the message is still invisible after give_back; it should be visible at once.")
    count = again[0]["Attributes"]["ApproximateReceiveCount"]
    return (
        f"the message was visible again at once and the next receive saw ApproximateReceiveCount {count}. "
        "sqsd does the same after a failed POST, with ErrorVisibilityTimeout instead of 0."
    )


# -- 02 ------------------------------------------------------------------------------------------------
@register(
    "02.1",
    "Read the facts from the POST",
    (
        "Everything except the body travels in X-Aws-Sqsd-* headers; req.header(name) reads one.",
        "message_id = req.header('X-Aws-Sqsd-Msgid'), queue = req.header('X-Aws-Sqsd-Queue'), receive_count = "
        "int(req.header('X-Aws-Sqsd-Receive-Count')), order = json.loads(req.body).",
    ),
)
def _check_02_1(a: Answers) -> str:
    facts = a.function("message_facts")
    with lessons.sandbox("02") as box:
        order = {"type": "order", "order_id": fresh_id("facts"), "amount": 7}
        [mid] = lessons.send_and_wait(box, order)
        got = facts(lessons.request_for(box, mid))
        expected = {"message_id": mid, "queue": box.queues.name, "receive_count": 1, "order": order}
    if got is None:
        raise NotAttempted("message_facts returned None.")
    if not isinstance(got, Mapping):
        raise NotYet(f"message_facts should return a dict; it returned a {type(got).__name__}.")
    for key, want in expected.items():
        if key not in got:
            raise NotYet(f"the dict has no key {key!r}.")
        if got[key] != want:
            extra = " (headers are text: convert it with int())" if key == "receive_count" else ""
            raise NotYet(f"{key} is {got[key]!r}, but the POST says {want!r}{extra}.")
    return "you read the id, the queue name and the receive count from the headers, and the order from the raw body."


@register(
    "02.2",
    "Send a tenant along as an attribute",
    (
        "lab.send takes attributes={...}; each String or Number attribute becomes one X-Aws-Sqsd-Attr-<name> header.",
        "return lab.send(order, attributes={'tenant': tenant})",
    ),
)
def _check_02_2(a: Answers) -> str:
    send_for_tenant = a.function("send_for_tenant")
    with lessons.sandbox("02") as box:
        order_id = fresh_id("tenant-order")
        order = {"type": "order", "order_id": order_id, "amount": 9}
        tenant = fresh_id("acme")
        send_for_tenant(box, order, tenant)
        _wait(box)
        posts = [r for r in box.requests() if order_id.encode() in r.body]
    if not posts:
        raise NotAttempted("no POST with this order reached the worker; send it with lab.send().")
    post = posts[-1]
    if post.header("X-Aws-Sqsd-Attr-tenant") != tenant:
        raise NotYet("the POST has no X-Aws-Sqsd-Attr-tenant header with the tenant; pass it in attributes=.")
    if json.loads(post.body) != order:
        raise NotYet("the body is not the order as given: keep the tenant out of the body.")
    return "the tenant travelled as a message attribute and arrived as X-Aws-Sqsd-Attr-tenant; the body stayed the order."


# -- 03 ------------------------------------------------------------------------------------------------
@register(
    "03.1",
    "A handler that says 200 only when the work is done",
    (
        "Read the raw body with request.get_data(), parse it with json.loads, and call process(data). "
        "Both can raise a ValueError (BadMessage is one) for a bad message.",
        "try: process(json.loads(request.get_data())) / except ValueError as exc: return f'bad message: {exc}', 400 "
        "/ return 'done', 200",
    ),
)
def _check_03_1(a: Answers) -> str:
    handler = a.function("handle_order")
    with lessons.sandbox("03", FAST_FAIL) as box:
        _require_answer(box, handler, "handle_order")
        lessons.install_handler(box, handler)
        good = {"type": "order", "order_id": fresh_id("good"), "amount": 12.5}
        bad = [{"type": "order", "amount": 5}, {"type": "order", "order_id": fresh_id("neg"), "amount": -3}]
        ids = box.send(good) + box.send(bad) + box.send("this is not JSON")
        _wait(box)
        told = lessons.stories(box, ids)
        applied = box.ledger.applied(f"order:{good['order_id']}")
    story = told.get(ids[0])
    status = _first_status(story)
    if status != 200:
        raise NotYet(f"the valid order was answered {status}; only 200 makes the daemon delete it.")
    if not applied:
        raise NotYet("the valid order was answered 200 but is not in the ledger; call process(data) first.")
    labels = ["an order without order_id", "an order with a negative amount", "a body that is not JSON"]
    for mid, label in zip(ids[1:], labels, strict=True):
        bad_status = _first_status(told.get(mid))
        if bad_status == 200:
            raise NotYet(f"{label} was answered 200, so the daemon deleted it as if it were done.")
        if bad_status is None or not 400 <= bad_status < 500:
            raise NotYet(f"{label} was answered {bad_status}; answer 400 with a one-line reason.")
    return (
        "your handler answered 200 for the valid order and the message left the queue; it answered 4xx "
        "for the three bad ones, so the daemon kept them for a retry and, in the end, the DLQ."
    )


@register(
    "03.2",
    "Replace the 202 with real work",
    (
        "The daemon waits for your answer (up to InactivityTimeout). You do not need a thread.",
        "Call process(data) directly in the handler, then return 'done', 200.",
    ),
)
def _check_03_2(a: Answers) -> str:
    handler = a.function("handle_thumbnail")
    with lessons.sandbox("03") as box:
        _require_answer(box, handler, "handle_thumbnail")
        lessons.install_handler(box, handler)
        image_id, sizes = fresh_id("img"), [64, 256]
        job = {"type": "thumbnail", "image_id": image_id, "sizes": sizes, "work_ms": 800}
        [mid] = lessons.send_and_wait(box, job)
        story = lessons.stories(box, [mid]).get(mid)
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


@register(
    "03.3",
    "Log with context",
    (
        "Your log lines need what you would search for at 3 a.m.: the message id, the receive count, and why.",
        "log.info('order %s applied msgid=%s receive_count=%s', ...) on success and log.warning('rejected "
        "msgid=%s receive_count=%s: %s', ..., exc) before returning 400. Read both headers from request.headers.",
    ),
)
def _check_03_3(a: Answers) -> str:
    handler = a.function("handle_order_logged")
    with lessons.sandbox("03", LAB_PROFILE.replace(MaxRetries=2)) as box:
        _require_answer(box, handler, "handle_order_logged")
        lessons.install_handler(box, handler)
        good = {"type": "order", "order_id": fresh_id("logged"), "amount": 4}
        bad = {"type": "order", "order_id": fresh_id("logged-bad"), "amount": -1}
        ids = box.send(good) + box.send(bad)
        _wait(box)
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


# -- 04 ------------------------------------------------------------------------------------------------
@register(
    "04.1",
    "Five tries, one second apart",
    (
        "MaxRetries becomes the queue's RedrivePolicy maxReceiveCount; ErrorVisibilityTimeout is the pause between tries.",
        "five_tries = LAB_PROFILE.replace(MaxRetries=5, ErrorVisibilityTimeout=1)",
    ),
)
def _check_04_1(a: Answers) -> str:
    options = a.value("five_tries")
    if not isinstance(options, SqsdOptions):
        raise NotYet("five_tries should be sqsd options, e.g. LAB_PROFILE.replace(...).")
    if options.ErrorVisibilityTimeout > 2 or options.MaxRetries > 10:
        raise NotYet(
            "keep ErrorVisibilityTimeout at about 1 s and MaxRetries small, so the check finishes in seconds."
        )
    with lessons.sandbox("04", options) as box:
        box.inject(error_rate=1.0, status=503)
        [mid] = box.send({"type": "order", "order_id": fresh_id("retry"), "amount": 1})
        _wait(box, timeout=options.MaxRetries * (options.ErrorVisibilityTimeout + 1) + 15)
        posts = len(lessons.stories(box, [mid])[mid].posts)
        in_dlq = mid in lessons.dead_letter_ids(box)
    if posts != 5:
        raise NotYet(
            f"the failing message was POSTed {posts} times before it moved to the DLQ; the goal is 5."
        )
    if not in_dlq:
        raise NotYet("the message did not reach the dead-letter queue.")
    return "five POSTs about a second apart, then SQS moved the message to the DLQ: MaxRetries became maxReceiveCount."


@register(
    "04.2",
    "Fix, then redrive",
    (
        "Order matters: a redrive before the fix sends the messages straight back to the DLQ.",
        "lab.heal() turns the injected failure off; lab.redrive() moves the DLQ's messages back.",
    ),
)
def _check_04_2(a: Answers) -> str:
    fix_and_redrive = a.function("fix_and_redrive")
    with lessons.sandbox("04", FAST_FAIL) as box:
        box.inject(error_rate=1.0, status=500)
        orders = [{"type": "order", "order_id": fresh_id("stuck"), "amount": n} for n in (1, 2, 3)]
        lessons.send_and_wait(box, orders, timeout=30)
        posts_before = sum(1 for e in box.events if e.kind == "posted")
        fix_and_redrive(box)
        _wait(box)
        posts_after = sum(1 for e in box.events if e.kind == "posted")
        healed = _app(box).extensions["lab.failures"].current.error_rate == 0
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


@register(
    "04.3",
    "Find the poison message",
    (
        "lab.dead_letters() peeks at the DLQ; each message's 'Body' is the JSON you sent.",
        "return [json.loads(m['Body'])['import_id'] for m in lab.dead_letters()]",
    ),
)
def _check_04_3(a: Answers) -> str:
    poison_ids = a.function("poison_ids")
    with lessons.sandbox("04", FAST_FAIL) as box:
        bad = {"type": "csv_import", "import_id": fresh_id("bad"), "csv": "sku,qty\nA1,3\nB2\n"}
        good = {"type": "csv_import", "import_id": fresh_id("good"), "csv": "sku,qty\nA1,3\n"}
        lessons.send_and_wait(box, [bad, good], timeout=30)
        got = poison_ids(box)
    if got is None:
        raise NotAttempted("poison_ids returned None.")
    if sorted(got) != [bad["import_id"]]:
        raise NotYet(
            f"poison_ids returned {list(got)!r}; the DLQ holds exactly one import (the one with the short row)."
        )
    return "you found the import with the broken row in the DLQ by reading the message bodies; the good import went through."


# -- 05 ------------------------------------------------------------------------------------------------
@register(
    "05.1",
    "Charge each order once",
    (
        "Decide by the business id (order_id), never by the message id: a producer's duplicate has a new message id.",
        "if done.add_if_new(f\"order:{data['order_id']}\"): payments.charge(data['order_id'], data['amount']); "
        "then return 200 either way: a duplicate is finished work.",
    ),
)
def _check_05_1(a: Answers) -> str:
    handler = a.function("handle_payment")
    payments = a.value("payments")
    with lessons.sandbox("05") as box:
        _require_answer(box, handler, "handle_payment")
        lessons.install_handler(box, handler)
        first, second = fresh_id("order"), fresh_id("order")
        messages = [{"type": "order", "order_id": first, "amount": 20}] * 3
        ids = box.send([*messages, {"type": "order", "order_id": second, "amount": 5}])
        _wait(box)
        told = lessons.stories(box, ids)
    charged_first, charged_second = payments.count(first), payments.count(second)
    if charged_first > 1:
        raise NotYet(
            f"the order sent three times was charged {charged_first} times; key the work by order_id."
        )
    if charged_first == 0 or charged_second != 1:
        raise NotYet(
            "an order that arrived was never charged; charge it the first time you see its order_id."
        )
    if not all(story.deleted for story in told.values()) or len(told) != len(ids):
        raise NotYet("a duplicate was answered with an error, so it was retried; answer 200 for a duplicate.")
    return "the order sent three times was charged once, the other order once, and every copy was answered 200 and deleted."


@register(
    "05.2",
    "Keys for CSV rows",
    (
        "A good key is the same on every redelivery and different for every row, even for two identical rows.",
        "return [f\"{message['import_id']}:{n}\" for n in range(2, rows + 2)] where rows counts the data lines "
        "(the line number, not the row's content, identifies a row).",
    ),
)
def _check_05_2(a: Answers) -> str:
    row_keys = a.function("row_keys")
    sample = {"type": "csv_import", "import_id": fresh_id("imp"), "csv": "sku,qty\nA1,3\nA1,3\nB2,1\n"}
    keys = row_keys(sample)
    if keys is None:
        raise NotAttempted("row_keys returned None.")
    keys = list(keys)
    if len(keys) != 3:
        raise NotYet(f"the sample file has 3 rows (two identical); row_keys returned {len(keys)} keys.")
    if len(set(keys)) != 3:
        raise NotYet("two rows got the same key; identical rows are still two rows.")
    if list(row_keys(dict(sample))) != keys:
        raise NotYet(
            "the same message gave different keys the second time; a redelivery must give the same keys."
        )
    if set(row_keys(dict(sample, import_id=fresh_id("imp")))) & set(keys):
        raise NotYet("another import of the same file got the same keys; put the import_id in the key.")
    with lessons.sandbox("05") as box:
        lessons.install_handler(box, lambda: _import_with(row_keys))
        other = dict(sample, import_id=fresh_id("imp"))
        lessons.send_and_wait(box, [sample, sample, other])
        summary = box.ledger.summary()
    if summary != {"applied": 6, "deliveries": 9, "duplicates": 3}:
        raise NotYet(f"after importing a file twice and another once, the ledger says {summary}.")
    return "importing the same file twice changed nothing the second time, and a second import of the same rows was kept apart."


def _import_with(row_keys: Callable[[dict[str, Any]], Any]) -> Any:
    from flask import current_app, request

    data = json.loads(request.get_data())
    lessons._record(current_app, "csv_import", list(row_keys(data)))
    return "imported", 200


# -- 06 ------------------------------------------------------------------------------------------------
@register(
    "06.1",
    "Timeouts for a two-second job",
    (
        "InactivityTimeout must be longer than the job; VisibilityTimeout must outlast InactivityTimeout.",
        "safe_options = LAB_PROFILE.replace(InactivityTimeout=5, VisibilityTimeout=8)",
    ),
)
def _check_06_1(a: Answers) -> str:
    options = a.value("safe_options")
    if not isinstance(options, SqsdOptions):
        raise NotYet("safe_options should be sqsd options, e.g. LAB_PROFILE.replace(...).")
    with lessons.sandbox("06", options) as box:
        job = {"type": "thumbnail", "image_id": fresh_id("slow"), "sizes": [512], "work_ms": 2000}
        [mid] = lessons.send_and_wait(box, job, timeout=30)
        statuses = lessons.stories(box, [mid])[mid].statuses
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


@register(
    "06.2",
    "Split a long job",
    (
        "One message per size; each sub-job carries its share of the work.",
        "return [dict(job, sizes=[size], work_ms=job['work_ms'] // len(job['sizes'])) for size in job['sizes']]",
    ),
)
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
    with lessons.sandbox("06", options) as box:
        lessons.send_and_wait(box, parts, timeout=30)
        deliveries = box.ledger.deliveries()
        dead = box.depth().dead_letter
    keys = [f"thumbnail:{job['image_id']}:{size}" for size in job["sizes"]]
    if dead or any(deliveries.get(key) != 1 for key in keys):
        raise NotYet(
            f"with a 2 s visibility timeout some sub-job was delivered twice or failed: {deliveries}."
        )
    return "six short sub-jobs instead of one long one: each finished inside the 2 s timeouts and ran once."


@register(
    "06.3",
    "Enough connections for a flash sale",
    (
        "HttpConnections is how many POSTs the daemon keeps open at once (AWS default 50, range 1-100).",
        "sale_options = LAB_PROFILE.replace(HttpConnections=10)",
    ),
)
def _check_06_3(a: Answers) -> str:
    options = a.value("sale_options")
    if not isinstance(options, SqsdOptions):
        raise NotYet("sale_options should be sqsd options, e.g. LAB_PROFILE.replace(...).")
    with lessons.sandbox("06", options) as box:
        _app(box).extensions["lab.concurrency"].reset()
        orders = [
            {"type": "order", "order_id": fresh_id("sale"), "amount": 1, "work_ms": 500} for _ in range(20)
        ]
        started = time.monotonic()
        lessons.send_and_wait(box, orders, timeout=30)
        took = time.monotonic() - started
        peak = _app(box).extensions["lab.concurrency"].snapshot()["peak"]
    if took > 4:
        raise NotYet(
            f"20 orders of 0.5 s took {took:.1f} s with at most {peak} at once; allow more connections."
        )
    return "the flash sale drained in a few seconds because the daemon POSTed many orders at once."


# -- 09 ------------------------------------------------------------------------------------------------
@register(
    "09.1",
    "Name the cause",
    (
        "Look at three things in order: is the daemon receiving (lab.events)? What does the worker answer? "
        "Where do the messages end up (metrics, DLQ)?",
        "Every POST is answered 400 and the messages pile up in the DLQ: the worker rejects them.",
    ),
)
def _check_09_1(a: Answers) -> str:
    diagnosis = a.value("diagnosis")
    lab = a.lab
    actual = getattr(lab, "mystery", None)
    if actual is None:
        raise NotYet("no mystery is running in your lab; run the cell with lessons.start_mystery(lab) first.")
    if diagnosis not in lessons.CAUSES:
        raise NotYet(f"diagnosis should be one of {', '.join(lessons.CAUSES)}.")
    if diagnosis == actual:
        return "that is the one. " + lessons.CAUSES[actual]
    counts = lessons.outcome_counts(lab)
    evidence = {
        "daemon-stopped": f"the daemon is running and has received {counts.get('received', 0)} messages",
        "worker-hangs": "every POST got an answer quickly",
        "wrong-path": "the worker answered at the path it was given; look at what it answered",
        "worker-rejects": "",
    }
    raise NotYet(f"not that one: {evidence[diagnosis]} (daemon events: {counts}).")


@register(
    "09.2",
    "Fix it and recover the sale",
    (
        "Two steps, in this order: put a handler back that reads the raw body, then bring the orders back.",
        "lessons.restore_handler(lab); lab.redrive()",
    ),
)
def _check_09_2(a: Answers) -> str:
    fix = a.function("fix")
    with lessons.sandbox("09", FAST_FAIL) as box:
        ids = lessons.start_mystery(box)
        _wait(box)
        posts_before = sum(1 for e in box.events if e.kind == "posted")
        fix(box)
        _wait(box)
        posts_after = sum(1 for e in box.events if e.kind == "posted")
        applied = sum(box.ledger.applied(f"order:sale-{n}") for n in range(len(ids)))
        dead = box.depth().dead_letter
    if posts_after == posts_before and dead:
        raise NotAttempted("fix(lab) changed nothing: the orders are still in the DLQ.")
    if applied == len(ids) and dead == 0:
        return "the worker reads the raw body again, and every order of the sale came back from the DLQ and was processed."
    raise NotYet(
        f"{applied} of {len(ids)} orders were processed and {dead} are in the DLQ; fix first, then redrive."
    )


# -- 10 ------------------------------------------------------------------------------------------------
@register(
    "10.1",
    "Write the .ebextensions file",
    (
        "The namespace is aws:elasticbeanstalk:sqsd (one 'sqsd'), and the option names are the ones in the table above.",
        "option_settings:\\n  aws:elasticbeanstalk:sqsd:\\n    HttpPath: /worker\\n    HttpConnections: 10\\n    "
        "InactivityTimeout: 120\\n    VisibilityTimeout: 150\\n    MaxRetries: 5",
    ),
)
def _check_10_1(a: Answers) -> str:
    import tempfile

    text = a.value("config_text")
    if not isinstance(text, str):
        raise NotYet("config_text should be the file's text, as a string.")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sqsd.config"
        path.write_text(text, encoding="utf-8")
        try:
            options = load_ebextensions(path)
        except ConfigError as exc:
            raise NotYet(f"EB would not accept it: {exc}") from None
    wanted = {
        "HttpPath": "/worker",
        "HttpConnections": 10,
        "InactivityTimeout": 120,
        "VisibilityTimeout": 150,
        "MaxRetries": 5,
    }
    for name, value in wanted.items():
        if getattr(options, name) != value:
            raise NotYet(f"{name} is {getattr(options, name)!r}; the task asks for {value!r}.")
    with lessons.sandbox("10", options) as box:
        [mid] = lessons.send_and_wait(box, {"type": "order", "order_id": fresh_id("cfg"), "amount": 1})
        line = lessons.request_for(box, mid).request_line
    if not line.startswith("POST /worker "):
        raise NotYet(f"the daemon sent {line!r}.")
    return (
        "the kit's .ebextensions reader accepted the file, and a daemon configured from it POSTed to /worker."
    )


@register(
    "10.2",
    "The worker instance's permissions",
    (
        "Three SQS actions run the daemon; periodic tasks and metrics need three more things.",
        "Add sqs:SendMessage, cloudwatch:PutMetricData, and DynamoDB item actions (GetItem, PutItem, UpdateItem, "
        "DeleteItem) on the leader table, arn:aws:dynamodb:*:*:table/*-stack-AWSEBWorkerCronLeaderRegistry*.",
    ),
)
def _check_10_2(a: Answers) -> str:
    policy = a.value("worker_policy")
    if not isinstance(policy, Mapping) or "Statement" not in policy:
        raise NotYet("worker_policy should be a policy document: a dict with Version and Statement.")
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    for statement in statements:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") == "Allow" and any(action in ("*", "sqs:*") for action in actions):
            raise NotYet("one statement allows every action of a service; list the ones the worker needs.")
    gaps = lessons.iam_gaps(policy)
    if gaps:
        raise NotYet(
            "missing: " + "; ".join(f"{need} ({lessons.WORKER_IAM_NEEDS[need]})" for need in gaps) + "."
        )
    return "the role lets the daemon receive, delete and retry, the leader enqueue periodic tasks, and the daemon report metrics."
