"""Notebook 11, incident drills: every seeded fault is injected, can be told from the evidence alone, and is
fixed by its solution; wrong diagnoses and tempting wrong fixes are 'not yet' with the evidence; stubs are
'not attempted'; seeds are stable and replayable; the proxy behaves like nginx.

The drills run on one lab (course.start("11")) on the session's SQS endpoint, and each 11.2 check starts a
private lab of its own, so the per-fault tests take 15 to 30 s each.
"""

from __future__ import annotations

import collections
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from labapp import course, settings
from labapp.cli import main
from labapp.course import nb11
from labapp.course.checks import core as checks
from labapp.course.checks import nb11 as checks11
from labapp.course.nb11 import STRAY, Fault
from labapp.errors import ConfigError
from labapp.runtime.proxy import ReverseProxy
from labapp.runtime.servers import HttpServer

#: A seed for every fault: whole-number seeds are seats, and seats 0 to 6 go round the rota.
SEEDS = {fault: str(seat) for seat, fault in enumerate(nb11._ROTA)}
#: `ok: <id> - 200 - 0.012`, `http-err: <id> (2) 404 - 0.003`, `socket-err: <id> (1) ETIMEDOUT - 3.001`.
LOG_LINE = re.compile(
    r"^\S+ (?P<kind>ok|http-err|socket-err): (?P<mid>\S+) (?:\((?P<count>\d+)\) (?P<word>\S+)|- 200) - [\d.]+$"
)


@pytest.fixture(scope="module")
def lab(emulator: Any) -> Iterator[Any]:
    """The notebook's lab, on the session's endpoint; progress is not recorded."""
    saved = {name: os.environ.get(name) for name in (settings.ENDPOINT_ENV, settings.PROGRESS_ENV)}
    os.environ[settings.ENDPOINT_ENV] = emulator.url
    os.environ[settings.PROGRESS_ENV] = "off"
    shop = course.start("11")
    yield shop
    shop.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def run(exercise_id: str, **namespace: Any) -> checks.Outcome:
    return checks.run_check(checks.REGISTRY[exercise_id], namespace)


def solution_fix(fault: Fault) -> Any:
    """The fix ex.solution() shows for this fault, defined as a learner would paste it."""
    namespace: dict[str, Any] = {"course": course, "json": json, "request": request}
    exec(checks.exercise_texts()["11.2"]["solutions"][fault.name], namespace)
    return namespace["fix"]


# -- the evidence alone tells the faults apart ---------------------------------------------------------
def diagnose(log: str, dead_letters: list[str], max_retries: int) -> Fault | None:
    """Name the fault from the daemon's log file and the DLQ's bodies only, as a learner must."""
    answers, oks, receives = collections.Counter(), collections.Counter(), 0
    paths = set(re.findall(r"message: sent to %\[http://[^/]+(/\S*)\]", log))
    for line in log.splitlines():
        match = LOG_LINE.match(line)
        if match is None:
            continue
        receives = max(receives, int(match["count"] or 0))
        if match["kind"] == "ok":
            oks[match["mid"]] += 1
        else:
            answers[match["word"]] += 1
    if answers["ETIMEDOUT"]:
        return Fault.WORKER_HANGS
    if answers["404"] or paths != {nb11.SHOP_PATH}:
        return Fault.WRONG_HTTP_PATH
    if answers["202"]:
        return Fault.ANSWERS_202
    if answers["504"]:
        return Fault.PROXY_CUT_OFF
    if receives > max_retries:
        return Fault.NO_DLQ
    if any(n > 1 for n in oks.values()):
        return Fault.SHORT_VISIBILITY
    if any(body != STRAY for body in dead_letters):
        return Fault.POISON_MESSAGE
    return None


def evidence_of(lab: Any) -> Fault | None:
    bodies = [m["Body"] for m in lab.dead_letters(100)]
    return diagnose(lab.sqsd_log_path.read_text(), bodies, nb11.SHOP_OPTIONS.MaxRetries)


def test_the_healthy_shop_shows_no_fault_and_only_the_ping_in_the_dlq(lab: Any) -> None:
    nb11.open_shop(lab)
    nb11.send_usual_traffic(lab)
    lab.wait_until_idle()
    assert [m["Body"] for m in lab.dead_letters()] == [STRAY]
    assert evidence_of(lab) is None
    assert all(lab.ledger.applied(f"order:W-10{n}") for n in range(1, 7))


# Words of each wrong diagnosis' explanation that name the evidence which rules it out.
RULED_OUT_SAYS = {
    Fault.WORKER_HANGS: "Your POSTs were answered",
    Fault.WRONG_HTTP_PATH: "no POST was answered 404",
    Fault.ANSWERS_202: "no POST in your log was answered 202",
    Fault.SHORT_VISIBILITY: "no message was POSTed again",
    Fault.POISON_MESSAGE: "a poison message fails every time",
    Fault.PROXY_CUT_OFF: "no POST in your log was answered 504",
    Fault.NO_DLQ: "no message was received more than MaxRetries",
}


@pytest.mark.parametrize("fault", list(Fault), ids=[f.name for f in Fault])
def test_each_fault_is_injected_told_from_its_evidence_and_fixed(lab: Any, fault: Fault) -> None:
    drill = nb11.start_drill(lab, seed=SEEDS[fault], quiet=True)
    drill.wait()
    seen = evidence_of(lab)
    assert seen is fault, f"{seen}: {lab.sqsd_log_path.read_text()[-1500:]}"
    right = run("11.1", drill=drill, diagnosis=fault)
    assert right.status == checks.CORRECT, right
    assert checks11.verdicts()[fault.name] in right.reason
    for wrong in Fault:
        if wrong is not fault:
            outcome = run("11.1", drill=drill, diagnosis=wrong)
            assert outcome.status == checks.NOT_YET, outcome
            assert (
                outcome.reason.startswith(f"not {wrong.value}: ") and RULED_OUT_SAYS[wrong] in outcome.reason
            )
    fixed = run("11.2", drill=drill, fix=solution_fix(fault))
    assert fixed.status == checks.CORRECT, fixed


def redrive_only(lab: Any) -> None:
    lab.redrive()


def reads_text_amounts() -> Any:
    try:
        data = json.loads(request.get_data())
        if isinstance(data.get("amount"), str):
            data["amount"] = float(data["amount"])
        return course.process(data), 200
    except ValueError as exc:
        return f"rejected: {exc}", 400


def cause_only(lab: Any) -> None:
    course.install_handler(lab, reads_text_amounts)  # and no redrive


def rolled_back_but_dlq_purged(lab: Any) -> None:
    from labapp.sqs import purge

    course.install_handler(lab, nb11.shop_handler)
    purge(lab.sqs, lab.queues.dlq_url)


def visibility_still_short(lab: Any) -> None:
    course.apply_options(lab, lab.options.replace(VisibilityTimeout=2))  # the job takes 2.5 s
    lab.redrive()


@pytest.mark.parametrize(
    ("fault", "fix", "says"),
    [
        (Fault.WRONG_HTTP_PATH, redrive_only, "the cause is still there"),
        (Fault.POISON_MESSAGE, cause_only, "Bring them back once the cause is gone"),
        (Fault.ANSWERS_202, rolled_back_but_dlq_purged, "deleted unread"),
        (Fault.SHORT_VISIBILITY, visibility_still_short, "the cause is still there"),
    ],
    ids=["redrive-without-fix", "fix-without-redrive", "purged-the-dlq", "visibility-still-short"],
)
def test_a_tempting_wrong_fix_is_not_yet_with_what_happened(
    lab: Any, fault: Fault, fix: Any, says: str
) -> None:
    drill = nb11.Drill(SEEDS[fault], lab, {})
    outcome = run("11.2", drill=drill, fix=fix)
    assert outcome.status == checks.NOT_YET, outcome
    assert says in outcome.reason, outcome


# -- stubs, types, solutions --------------------------------------------------------------------------
def blank_fix(lab: Any) -> None:
    """Remove the cause of the incident, then bring back what it sent to the DLQ."""
    ...  # your code here


def test_stubs_are_not_attempted_and_need_no_lab() -> None:
    drill = nb11.Drill("3", None, {})  # type: ignore[arg-type]  # a stub is recognised before any lab runs
    assert run("11.1", drill=drill, diagnosis=...).status == checks.NOT_ATTEMPTED
    assert run("11.2", drill=drill, fix=blank_fix).status == checks.NOT_ATTEMPTED
    assert run("11.1", diagnosis=Fault.NO_DLQ).status == checks.NOT_ATTEMPTED  # the drill cell never ran


def test_a_diagnosis_must_be_a_fault(lab: Any) -> None:
    drill = nb11.Drill("3", lab, {})
    outcome = run("11.1", drill=drill, diagnosis="the database")
    assert outcome.status == checks.NOT_YET and "Fault.WORKER_HANGS" in outcome.reason
    assert run("11.1", drill=drill, diagnosis=3).status == checks.NOT_YET
    assert run("11.1", drill=drill, diagnosis=Fault.WORKER_HANGS.value).status == checks.CORRECT  # seat 3


def test_the_solution_shown_is_the_one_for_the_learners_own_seed() -> None:
    for fault, seed in SEEDS.items():
        answers = checks.Answers({"drill": nb11.Drill(seed, None, {})})  # type: ignore[arg-type]
        diagnosis = checks.REGISTRY["11.1"].solution
        fix = checks.REGISTRY["11.2"].solution
        assert diagnosis is not None and fix is not None
        assert diagnosis(answers).startswith(f"diagnosis = Fault.{fault.name}\n# ")
        code = fix(answers)
        compile(code, f"solution of {fault.name}", "exec")
        assert code.startswith("def fix(lab):")
    waiting = checks.REGISTRY["11.2"].solution
    assert waiting is not None
    with pytest.raises(checks.NotAttempted):
        waiting(checks.Answers({}))


# -- seeds ----------------------------------------------------------------------------------------------
def test_a_seed_always_draws_the_same_fault_and_seats_in_a_row_draw_all_seven() -> None:
    assert {nb11.fault_of_seed(str(seat)) for seat in range(1, 8)} == set(Fault)
    assert nb11.fault_of_seed("alice@pc-7") is nb11.fault_of_seed(" alice@pc-7 ")
    spread = collections.Counter(nb11.fault_of_seed(f"learner{n}@host") for n in range(700))
    assert set(spread) == set(Fault) and min(spread.values()) > 60


def test_the_seed_is_lab_learner_or_user_at_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.LEARNER_ENV, "seat-12")
    assert settings.learner() == "seat-12"
    monkeypatch.delenv(settings.LEARNER_ENV)
    assert re.fullmatch(r".+@.+", settings.learner())


def test_labapp_drill_tells_an_instructor_a_seeds_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drill", "solution-notebook"]) == 0
    assert capsys.readouterr().out.strip() == (
        "Drill seed 'solution-notebook' holds Fault.POISON_MESSAGE: a poison message."
    )


# -- the proxy ------------------------------------------------------------------------------------------
@pytest.fixture
def upstream() -> Iterator[HttpServer]:
    app = Flask("upstream")
    release = threading.Event()

    @app.post("/<path:path>")
    def echo(path: str) -> Any:
        if path == "slow":
            release.wait(2)
        headers = {"X-Seen-Msgid": request.headers.get("X-Aws-Sqsd-Msgid", "")}
        return f"{request.full_path} {request.get_data(as_text=True)}", 201, headers

    with HttpServer(app) as server:
        yield server
        release.set()


def test_the_proxy_passes_requests_and_answers_through(upstream: HttpServer) -> None:
    import requests

    with ReverseProxy(upstream.url, read_timeout=1) as front:
        reply = requests.post(
            f"{front.url}/orders?x=1", data=b"{}", headers={"X-Aws-Sqsd-Msgid": "m-1"}, timeout=5
        )
    assert (reply.status_code, reply.text, reply.headers["X-Seen-Msgid"]) == (201, "/orders?x=1 {}", "m-1")


def test_the_proxy_gives_up_with_a_504_after_its_read_timeout(upstream: HttpServer) -> None:
    import requests

    with ReverseProxy(upstream.url, read_timeout=0.3) as front:
        began = time.monotonic()
        reply = requests.post(f"{front.url}/slow", data=b"{}", timeout=5)
        took = time.monotonic() - began
        assert front.timeouts == 1
    assert reply.status_code == 504 and "Gateway Time-out" in reply.text
    assert 0.25 < took < 1.5


def test_the_proxy_answers_502_when_nothing_listens_and_refuses_bad_settings(upstream: HttpServer) -> None:
    import requests

    gone = upstream.url
    upstream.stop()
    with ReverseProxy(gone) as front:
        assert requests.post(f"{front.url}/orders", data=b"{}", timeout=10).status_code == 502
        with pytest.raises(ConfigError):
            front.read_timeout = 0
    with pytest.raises(ConfigError):
        ReverseProxy("https://example.com")
