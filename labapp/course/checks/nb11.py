"""The checks of notebook 11, incident drills: the diagnosis against the seed's fault, the fix on a lab of its own.

11.1 compares the learner's diagnosis with the fault the drill's seed holds, and explains a wrong
one from the learner's own evidence (the daemon's events, which are what its log says). 11.2
breaks a private lab with the same seed, lets the fault do its damage, runs `fix(lab)`, sends the
next traffic and accounts for every message.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import dis
import json
from collections.abc import Callable
from typing import Any

from labapp.course.checks.core import Answers, NotAttempted, NotYet, exercise_texts, register
from labapp.course.handlers import sandbox
from labapp.course.lab import Lab
from labapp.course.nb11 import (
    IMPORT_MS,
    SHOP_OPTIONS,
    SHOP_PATH,
    STRAY,
    Drill,
    Fault,
    fault_of_seed,
    is_quiet,
    send,
    start_drill,
    traffic,
)
from labapp.errors import WaitTimeout
from labapp.runtime.wait import wait_until
from labapp.sqsd.events import DaemonEvent, EventKind

MAX_RETRIES = SHOP_OPTIONS.MaxRetries
#: How long 11.2 lets the fault do its damage before it calls fix(lab), and then waits for the shop.
DAMAGE_S = 20
SETTLE_S = 30
#: More than both waves hold, so a look at the DLQ sees every message in it.
DLQ_LOOK = 100


# -- what the evidence says -----------------------------------------------------------------------
def answer_of(event: DaemonEvent) -> str:
    """The daemon's log word for one answer: the status, or the errno when nothing came back."""
    return str(event.status) if event.status is not None else event.detail.split(":", 1)[0] or "no answer"


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What the daemon's log of one drill shows (its lines are made from these events)."""

    answers: collections.Counter[str]  # every answer, e.g. {"200": 7, "404": 3}
    failed: dict[str, collections.Counter[str]]  # real messages (not the ping) that failed: their answers
    real: int  # how many real messages were sent
    paths: set[str]  # the paths the daemon POSTed to
    most_receives: int
    dead_letters: int
    dead_real: int  # of them, orders and price lists (the rest are pings)


def evidence(drill: Drill) -> Evidence:
    """Read one drill's evidence from its lab's daemon events and DLQ depth."""
    lab = drill.lab
    real = {mid for mid, body in drill.sent.items() if body != STRAY}
    answers: collections.Counter[str] = collections.Counter()
    failed: dict[str, collections.Counter[str]] = {}
    paths: set[str] = set()
    most = 0
    for event in list(lab.events):
        mid = event.message_id or ""
        most = max(most, event.receive_count or 0)
        if event.kind is EventKind.POSTED:
            paths.add("/" + (event.url or "").split("/", 3)[-1])
        elif event.kind is EventKind.RESPONSE:
            answers[answer_of(event)] += 1
            if event.status != 200 and mid in real:
                failed.setdefault(mid, collections.Counter())[answer_of(event)] += 1
    bodies = [m["Body"] for m in lab.dead_letters(DLQ_LOOK)] if lab.worker is not None else []
    dead_real = sum(body != STRAY for body in bodies)
    return Evidence(answers, failed, len(real), paths, most, len(bodies), dead_real)


def _listed(counts: collections.Counter[str]) -> str:
    return ", ".join(f"{word} ×{n}" for word, n in sorted(counts.items())) or "none yet"


def _not_poison(seen: Evidence) -> str:
    if not seen.failed and seen.dead_real:
        return (
            f"no order or price list was refused: each of their POSTs was answered 200, and still {seen.dead_real} "
            "of them are in the DLQ."
        )
    if not seen.failed:
        return (
            "no order or price list failed; only the load-test script's ping did, and nothing can read that "
            "one: the DLQ is its place."
        )
    if len(seen.failed) == seen.real:
        return "every message failed, so the cause is not in one message but in what they all pass through."
    words: collections.Counter[str] = sum(seen.failed.values(), collections.Counter())
    proxy = (
        " 504 is the proxy's Gateway Time-out, not the worker refusing a message." if "504" in words else ""
    )
    return f"the {len(seen.failed)} messages that failed got {_listed(words)} between them.{proxy}"


#: Why a wrong diagnosis does not fit: each sentence is true of any drill whose fault is another.
RULED_OUT: dict[Fault, Callable[[Evidence], str]] = {
    Fault.WORKER_HANGS: lambda e: (
        "a hung worker answers nothing, so the daemon logs `socket-err: ... ETIMEDOUT` after "
        f"InactivityTimeout ({SHOP_OPTIONS.InactivityTimeout} s). Your POSTs were answered: {_listed(e.answers)}."
    ),
    Fault.WRONG_HTTP_PATH: lambda e: (
        f"the `message: sent to` lines end in {', '.join(sorted(e.paths)) or SHOP_PATH}, the path the worker "
        f"serves, and no POST was answered 404 ({_listed(e.answers)})."
    ),
    Fault.ANSWERS_202: lambda e: f"no POST in your log was answered 202: {_listed(e.answers)}.",
    Fault.SHORT_VISIBILITY: lambda e: (
        "no message was POSTed again while an earlier POST of it was still running: each message's POSTs "
        "came one after another."
    ),
    Fault.POISON_MESSAGE: lambda e: (
        "a poison message fails every time while the rest go through; here " + _not_poison(e)
    ),
    Fault.PROXY_CUT_OFF: lambda e: (
        "a proxy that cuts long jobs off answers 504, always after the same time; no POST in your log was "
        f"answered 504 ({_listed(e.answers)})."
    ),
    Fault.NO_DLQ: lambda e: (
        f"no message was received more than MaxRetries ({MAX_RETRIES}) times (the most was {e.most_receives}), "
        f"and the DLQ holds {e.dead_letters}: the queue's RedrivePolicy does its work."
    ),
}


def verdicts() -> dict[str, str]:
    """Return each fault's name -> what its evidence shows, from exercises.yaml."""
    found: dict[str, str] = exercise_texts()["11.1"]["evidence"]
    return found


def _drill(a: Answers) -> Drill:
    drill = a.value("drill")
    if not isinstance(drill, Drill):
        raise NotYet("`drill` should be what course.nb11.start_drill(lab) returned; run that cell again.")
    return drill


def _diagnosis(a: Answers) -> Fault:
    value = a.value("diagnosis")
    names = ", ".join(f"Fault.{f.name}" for f in Fault)
    if isinstance(value, str):
        try:
            return Fault(value)
        except ValueError:
            raise NotYet(f"diagnosis should be one of {names}.") from None
    raise NotYet(f"diagnosis should be one of {names}; it is a {type(value).__name__}.")


def _diagnosis_solution(a: Answers) -> str:
    fault = fault_of_seed(_drill(a).seed)
    return f"diagnosis = Fault.{fault.name}\n# {verdicts()[fault.name]}"


@register("11.1", solution=_diagnosis_solution)
def _check_11_1(a: Answers) -> str:
    drill = _drill(a)
    diagnosis = _diagnosis(a)
    actual = fault_of_seed(drill.seed)
    if diagnosis is actual:
        return f"that is it: {verdicts()[actual.name]}"
    seen = evidence(drill)
    if not seen.answers:
        raise NotYet("your log has no answered POST yet; let the drill run (drill.wait()), then look again.")
    raise NotYet(f"not {diagnosis.value}: {RULED_OUT[diagnosis](seen)}")


# -- 11.2: the fix, on a lab of its own -----------------------------------------------------------
def _blank(function: Callable[..., Any]) -> bool:
    """True for a function whose body is only `...` or `pass` (and a docstring): the learner's stub."""
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    steps = [(i.opname, i.argval) for i in dis.get_instructions(code) if i.opname not in ("RESUME", "NOP")]
    return steps in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def _dead_bodies(box: Lab) -> list[Any]:
    # Every one: a fault that is not fixed leaves both waves there, eighteen messages.
    return [m["Body"] for m in box.dead_letters(DLQ_LOOK)]


def _damage_done(box: Lab, fault: Fault) -> bool:
    """Has the fault done all its harm to the first traffic, so that a fix meets all of it?"""
    if fault is Fault.NO_DLQ:  # never quiet: the ping goes round for ever
        return any((e.receive_count or 0) > MAX_RETRIES + 1 for e in list(box.events))
    return is_quiet(box)


def _business_ids(body: Any) -> list[str]:
    if isinstance(body, dict) and body.get("type") == "order":
        return [f"order:{body['order_id']}"]
    if isinstance(body, dict):
        rows = len(body["csv"].splitlines()) - 1
        return [f"import:{body['import_id']}:{row}" for row in range(2, rows + 2)]
    return []


def _name(body: Any) -> str:
    """Name a message by its business id, whether it is the body as sent (a dict) or as SQS holds it (text)."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError:
            return "the ping"
    return str(body.get("order_id") or body.get("import_id")) if isinstance(body, dict) else "the ping"


def _names(bodies: list[Any], most: int = 4) -> str:
    names = [_name(body) for body in bodies]
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _answers(box: Lab, sent: dict[str, Any], pings: bool = False) -> dict[str, list[str]]:
    """Each real message's answers (and the pings', with `pings`), in order; none yet is an empty list."""
    answers: dict[str, list[str]] = {mid: [] for mid, body in sent.items() if pings or body != STRAY}
    for event in list(box.events):
        if event.kind is EventKind.RESPONSE and event.message_id in answers:
            answers[event.message_id].append(answer_of(event))
    return answers


def _account(box: Lab, before: dict[str, Any], after: dict[str, Any]) -> str:
    """Return the success sentence once every message is accounted for; else raise NotYet saying what is not."""
    real = [body for body in [*before.values(), *after.values()] if body != STRAY]
    undone = [body for body in real if not all(box.ledger.applied(b) for b in _business_ids(body))]
    dead = _dead_bodies(box)
    dead_real = [body for body in dead if body != STRAY]
    depth = box.depth()
    late = {mid: got for mid, got in _answers(box, after).items() if got != ["200"]}
    if late:
        words = collections.Counter(word for got in late.values() for word in got)
        raise NotYet(
            f"after your fix, {_names([after[mid] for mid in late])} got {_listed(words)} between them, "
            "where each should have been done by one POST answered 200: the cause is still there."
        )
    if undone:
        raise NotYet(
            f"{len(undone)} of the {len(real)} orders and price lists were never done: {_names(undone)}, "
            f"all sent before your fix ({len(dead_real)} messages of them in the DLQ). Bring them back once "
            "the cause is gone."
        )
    pings, going = dead.count(STRAY), depth.visible + depth.in_flight
    if pings < 2:
        where = (
            f"{going} message(s) still go round the worker queue."
            if going
            else f"only {pings} of 2 is there: the other was deleted unread."
        )
        raise NotYet(
            f"the load-test script's pings belong in the DLQ, where someone can look at them; {where}"
        )
    if dead_real:
        raise NotYet(
            f"the DLQ still holds {_names(dead_real)}: their work was done, but the DLQ should hold only what "
            "needs a person. Bring them back after the fix; the worker answers their duplicates 200."
        )
    return (
        "after your fix every new order and price list was done by its first POST, everything from before "
        "it was done too, and only the load-test pings wait in the DLQ."
    )


def _fix_solution(a: Answers) -> str:
    fault = fault_of_seed(_drill(a).seed)
    code: dict[str, str] = exercise_texts()["11.2"]["solutions"]
    return code[fault.name]


@register("11.2", solution=_fix_solution)
def _check_11_2(a: Answers) -> str:
    drill = _drill(a)
    fix = a.function("fix")
    if _blank(fix):
        raise NotAttempted("`fix(lab)` has no body yet; write what you would do, then run the cell.")
    fault = fault_of_seed(drill.seed)
    with sandbox("11") as box:
        first = start_drill(box, drill.seed, quiet=True)
        with contextlib.suppress(WaitTimeout):  # what is not done by then is part of the story
            wait_until(lambda: _damage_done(box, fault), DAMAGE_S, "the fault's damage", interval=0.2)
        fix(box)
        after = send(box, traffic(2, text_amount=fault is Fault.POISON_MESSAGE))

        def settled() -> bool:
            answers = _answers(box, after, pings=True)
            if any(got[:1] not in ([], ["200"]) for mid, got in answers.items() if after[mid] != STRAY):
                return True  # the cause is still there: no need to wait for the rest
            told = all(
                len(got) >= (MAX_RETRIES if after[mid] == STRAY else 1) for mid, got in answers.items()
            )
            return told and is_quiet(box)

        with contextlib.suppress(WaitTimeout):
            wait_until(settled, SETTLE_S, "the shop to settle", interval=0.2)
        verdict = _account(box, first.sent, after)
        visibility = box.options.VisibilityTimeout
        if fault is Fault.SHORT_VISIBILITY and visibility * 1000 <= IMPORT_MS:
            # A run can miss the race it loses; the numbers cannot.
            raise NotYet(
                f"every message was done this time, but VisibilityTimeout={visibility} s is not longer than a "
                f"price list's {IMPORT_MS / 1000:g} s import, so a slower run posts it twice: the cause is "
                "still there."
            )
        return verdict
