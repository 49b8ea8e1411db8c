"""The checks of notebook 08, periodic tasks: each one drives a real lab and reads what happened."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.lab import Lab
from labapp.course.nb08 import Clock, _scheduled, when
from labapp.errors import ConfigError, WaitTimeout
from labapp.runtime.instance import Instance
from labapp.runtime.wait import wait_until
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import drain
from labapp.sqsd.cron import UTC, CronSchedule, CronTask, iso, iter_times, parse_cron_yaml
from labapp.sqsd.periodic import TASK_BODY, Lease, Scheduler, task_attributes
from labapp.worker.inspector import RecordedRequest

BERLIN = ZoneInfo("Europe/Berlin")
WEEK_START = dt.datetime(2024, 7, 8, 0, 0, tzinfo=UTC)  # a Monday in July: Berlin is on summer time, UTC+2
WEEK_END = WEEK_START + dt.timedelta(days=7)
#: What the warehouse asked for, in Berlin time: (task, weekdays 1-7, first and last minute of the day, step).
WAREHOUSE = {
    "pick-list": ((1, 2, 3, 4, 5, 6), 6 * 60 + 30, 6 * 60 + 30, 1),
    "stock-sync": ((1, 2, 3, 4, 5), 8 * 60, 17 * 60 + 40, 20),
}


def _fires(schedule: CronSchedule, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    times = []
    for moment in iter_times(schedule, start - dt.timedelta(minutes=1)):
        if moment >= end:
            break
        times.append(moment)
    return times


def _wanted(days: Sequence[int], first: int, last: int, step: int) -> set[dt.datetime]:
    wanted = set()
    for minute in range(0, 7 * 24 * 60):
        moment = WEEK_START + dt.timedelta(minutes=minute)
        local = moment.astimezone(BERLIN)
        of_day = local.hour * 60 + local.minute
        if local.isoweekday() in days and first <= of_day <= last and (of_day - first) % step == 0:
            wanted.add(moment)
    return wanted


def _describe(times: Iterable[dt.datetime]) -> str:
    """Say when a task ran in the check's week: how often, which days, from when to when in Berlin and UTC."""
    times = sorted(times)
    if not times:
        return "never ran"
    days = sorted({t.astimezone(BERLIN).strftime("%a") for t in times}, key=lambda d: _DAYS.index(d))
    local = sorted({t.astimezone(BERLIN).strftime("%H:%M") for t in times})
    utc = sorted({t.strftime("%H:%M") for t in times})
    span = f"at {local[0]}" if len(local) == 1 else f"from {local[0]} to {local[-1]}"
    utc_span = utc[0] if len(utc) == 1 else f"{utc[0]} to {utc[-1]}"
    return f"ran {len(times)} times, on {', '.join(days)}, {span} Berlin time ({utc_span} UTC)"


_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@register("08.1")
def _check_08_1(a: Answers) -> str:
    text = a.value("warehouse_cron")
    if not isinstance(text, str):
        raise NotYet(f"warehouse_cron should be the file's text, a string; it is a {type(text).__name__}.")
    try:
        tasks = {t.name: t for t in parse_cron_yaml(text, "your cron.yaml")}
    except ConfigError as exc:
        raise NotYet(f"Elastic Beanstalk would reject it: {exc}") from None
    said = []
    for name, (days, first, last, step) in WAREHOUSE.items():
        task = tasks.get(name)
        if task is None:
            raise NotYet(f"the file has no task named {name!r}; it has {', '.join(tasks) or 'none'}.")
        if task.url != f"/tasks/{name}":
            raise NotYet(f"{name}'s url is {task.url!r}; the worker serves it at '/tasks/{name}'.")
        got, wanted = set(_fires(task.schedule, WEEK_START, WEEK_END)), _wanted(days, first, last, step)
        if got != wanted:
            raise NotYet(
                f"in the week from {when(WEEK_START)}, {name} {_describe(got)}; "
                f"the warehouse asked for {_describe(wanted).removeprefix('ran ')}."
            )
        said.append(f"{name} {_describe(got)}")
    return "EB would accept the file, and in a July week " + "; ".join(said) + "."


FLEET_CRON = 'version: 1\ncron:\n  - name: "tick"\n    url: "/tasks/tick"\n    schedule: "*/5 * * * *"\n'


FLEET_START = dt.datetime(2024, 5, 6, 8, 59, 30, tzinfo=UTC)


def _own_client(lab: Lab) -> SqsClient:
    # A check's calls must not show up in hooks the notebook put on lab.sqs (record_calls).
    assert lab.endpoint is not None, "the lab is not running"
    return sqs_client(lab.endpoint.url)


def _close_leases(fleet: Iterable[Any]) -> None:
    for member in fleet:
        lease = getattr(member, "lease", None)
        if isinstance(lease, Lease):
            lease.close()


#: The check's two environments, each with two instances, each with its own queue and the same cron.yaml.
ENVIRONMENTS = {"production": ("prod-1", "prod-2"), "staging": ("stage-1", "stage-2")}
DUE = ("09:00", "09:05", "09:10")


def _two_environments(
    make_instance: Any, sqs: SqsClient, urls: Mapping[str, str], folder: Path
) -> tuple[dict[str, collections.Counter[str]], list[str], str | None]:
    """Run both environments from 08:59:30 to 09:12, stopping production's leader at 09:06.

    Return, per environment, how often each scheduled time (HH:MM) reached its queue; who
    led at 09:06; and who production's leader was then (None if none).
    """
    tasks = parse_cron_yaml(FLEET_CRON)
    clock = Clock(FLEET_START)
    fleet = [
        (env, make_instance(sqs, urls[env], tasks, clock, name, env, folder))
        for env, names in ENVIRONMENTS.items()
        for name in names
    ]
    try:
        if any(member is None for _, member in fleet):
            raise NotAttempted("make_instance returned None; return the Scheduler this instance runs.")
        if not all(isinstance(member, Scheduler) for _, member in fleet):
            kind = type(next(m for _, m in fleet if not isinstance(m, Scheduler))).__name__
            raise NotYet(f"make_instance should return a Scheduler; it returned a {kind}.")
        for _ in range(39):  # 08:59:30 .. 09:05:50, every 10 s
            for _, member in fleet:
                member.tick()
            clock.advance(10)
        leaders = [m.holder_id for _, m in fleet if m.is_leader]
        if any(m.clock is not clock for _, m in fleet):
            leaders.append("(the instances read a clock of their own, not the check's, which moved to 09:06)")
        crashed = next((m.holder_id for env, m in fleet if env == "production" and m.is_leader), None)
        for _ in range(36):  # .. 09:11:50: production's leader has stopped ticking, as if it crashed
            for _, member in fleet:
                if member.holder_id != crashed:
                    member.tick()
            clock.advance(10)
    finally:
        _close_leases(m for _, m in fleet)
    sent = {env: collections.Counter(_scheduled(m)[1][11:16] for m in drain(sqs, urls[env])) for env in urls}
    return sent, leaders, crashed


@register("08.2")
def _check_08_2(a: Answers) -> str:
    make_instance = a.function("make_instance")
    sqs = _own_client(a.lab)
    tag = uuid.uuid4().hex[:8]
    urls = {env: str(sqs.create_queue(QueueName=f"lab-08-{env}-{tag}")["QueueUrl"]) for env in ENVIRONMENTS}
    try:
        with tempfile.TemporaryDirectory(prefix="lab-08-check-") as folder:
            sent, leaders, crashed = _two_environments(make_instance, sqs, urls, Path(folder))
    finally:
        for url in urls.values():
            sqs.delete_queue(QueueUrl=url)
    for env, counts in sent.items():
        strays = sorted(set(counts) - set(DUE))
        if strays:
            raise NotYet(f"{env}'s queue got a run for {strays[0]}, a time the check's clock never reached.")
    at_once = ", ".join(leaders) or "nobody"
    for env, counts in sent.items():
        if not counts:
            raise NotYet(f"{env}'s queue got no run at all; at 09:06 the leaders were: {at_once}.")
        for due in DUE[:2]:
            if counts[due] > 1:
                raise NotYet(
                    f"{env}'s run due at {due} reached its queue {counts[due]} times; "
                    f"at 09:06 the leaders were: {at_once}."
                )
            if counts[due] == 0:
                raise NotYet(f"{env}'s run due at {due} never reached its queue.")
    if sent["production"][DUE[2]] != 1:
        raise NotYet(
            f"{crashed} led production and stopped at 09:06; after that, production's run due at 09:10 "
            f"reached its queue {sent['production'][DUE[2]]} times."
        )
    if sent["staging"][DUE[2]] != 1:
        raise NotYet(f"staging's run due at 09:10 reached its queue {sent['staging'][DUE[2]]} times.")
    return (
        f"one leader per environment ({at_once}); every run reached its own queue once, and when {crashed} "
        "stopped, another production instance took over and sent 09:10 once."
    )


def _deliver_privately(
    lab: Lab, messages: Sequence[tuple[str, Mapping[str, Any]]], timeout: float = 20
) -> list[RecordedRequest]:
    """Run messages through a queue, daemon and worker of the check's own; return the POSTs they made.

    Like sandbox, but on the endpoint the notebook's lab already uses (no second lookup of
    it), with a client of its own; the learner's queue, ledger and recorded requests stay as they were.
    """
    sqs = _own_client(lab)
    url = str(sqs.create_queue(QueueName=f"lab-08-check-{uuid.uuid4().hex[:8]}")["QueueUrl"])
    logbook = getattr(lab, "logbook", None)
    if logbook is not None:
        logbook.paused = True  # the check's traffic is not the learner's
    with tempfile.TemporaryDirectory(prefix="lab-08-check-") as folder:
        instance = Instance(
            sqs, url, ledger_path=Path(folder) / "ledger.sqlite", threads=4, wait_time_seconds=1
        )
        inspector = instance.worker.inspector
        try:
            instance.start(poll=False)
            daemon = instance.daemon
            assert daemon is not None
            for body, attributes in messages:
                sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=dict(attributes))

            def all_posted() -> bool:
                daemon.poll_once()
                daemon.wait_idle(timeout=timeout)
                return len(inspector.last()) >= len(messages)

            with contextlib.suppress(WaitTimeout):
                wait_until(all_posted, timeout, "the check's POSTs", interval=0)
            return list(inspector.last())
        finally:
            instance.stop()
            sqs.delete_queue(QueueUrl=url)
            if logbook is not None:
                logbook.paused = False


#: 08.3's clock: the check asks at 05:02 Berlin time (04:02 UTC), in winter.
STALE_NOW = dt.datetime(2024, 2, 29, 5, 2, tzinfo=BERLIN)
STALE_AFTER = dt.timedelta(minutes=15)


@register("08.3")
def _check_08_3(a: Answers) -> str:
    run_or_skip = a.function("run_or_skip")
    name = fresh_id("report")
    task = CronTask(name, f"/tasks/{name}", CronSchedule.parse("0 * * * *"))
    fresh, stale = dt.datetime(2024, 2, 29, 4, 0, tzinfo=UTC), dt.datetime(2024, 2, 29, 1, 0, tzinfo=UTC)
    order = json.dumps({"type": "order", "order_id": fresh_id("order"), "amount": 2})
    messages = [(TASK_BODY, task_attributes(task, t)) for t in (fresh, stale)] + [(order, {})]
    requests = _deliver_privately(a.lab, messages)
    by_time = {r.header("X-Aws-Sqsd-Scheduled-At"): r for r in requests if r.header("X-Aws-Sqsd-Taskname")}
    ordinary = next((r for r in requests if r.body == order.encode()), None)
    if len(by_time) < 2 or ordinary is None:
        raise NotYet(
            "the check's messages never reached its worker; run the notebook's preflight cell again."
        )
    now = f"now={STALE_NOW.isoformat()} ({iso(STALE_NOW)})"
    answers = {t: run_or_skip(by_time[iso(t)], STALE_NOW) for t in (fresh, stale)}
    if all(answer is None for answer in answers.values()):
        raise NotAttempted("run_or_skip returned None for both periodic-task POSTs.")
    for moment, want in ((fresh, "run"), (stale, "skip")):
        late = STALE_NOW - moment
        if answers[moment] != want:
            raise NotYet(
                f"for the run scheduled at {iso(moment)}, {late.total_seconds() / 60:.0f} minutes before "
                f"{now}, run_or_skip returned {answers[moment]!r}."
            )
    other = run_or_skip(ordinary, STALE_NOW)
    if other is not None:
        raise NotYet(f"for an ordinary order's POST (no X-Aws-Sqsd-Taskname) run_or_skip returned {other!r}.")
    return (
        f"with {now}, the run due 2 minutes earlier runs, the one due 3 hours earlier is skipped, "
        "and an ordinary order is not a task."
    )
