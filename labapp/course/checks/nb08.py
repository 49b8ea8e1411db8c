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

from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.lab import Lab
from labapp.course.nb08 import Clock, _scheduled, when
from labapp.errors import ConfigError, WaitTimeout
from labapp.runtime.instance import Instance
from labapp.runtime.wait import wait_until
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import drain
from labapp.sqsd.cron import UTC, CronSchedule, CronTask, iso, iter_times, next_times, parse_cron_yaml
from labapp.sqsd.periodic import TASK_BODY, Lease, Scheduler, task_attributes
from labapp.worker.inspector import RecordedRequest

WEEK_START = dt.datetime(2024, 5, 5, 0, 0, tzinfo=UTC)  # a Sunday


def _fires(schedule: CronSchedule, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    times = []
    for moment in iter_times(schedule, start - dt.timedelta(minutes=1)):
        if moment >= end:
            break
        times.append(moment)
    return times


@register("08.1")
def _check_08_1(a: Answers) -> str:
    text = a.value("cleanup_cron")
    if not isinstance(text, str):
        raise NotYet(f"cleanup_cron should be the file's text, a string; it is a {type(text).__name__}.")
    try:
        tasks = parse_cron_yaml(text, "your cron.yaml")
    except ConfigError as exc:
        raise NotYet(f"Elastic Beanstalk would reject it: {exc}") from None
    task = next((t for t in tasks if t.name == "cleanup"), None)
    if task is None:
        raise NotYet(f"there is no task named 'cleanup'; found {', '.join(t.name for t in tasks)}.")
    if task.url != "/tasks/cleanup":
        raise NotYet(f"the task's url is {task.url!r}; the worker serves it at '/tasks/cleanup'.")
    week_end = WEEK_START + dt.timedelta(days=7)
    got = set(_fires(task.schedule, WEEK_START, week_end))
    wanted = {
        WEEK_START + dt.timedelta(minutes=m)
        for m in range(0, 7 * 24 * 60, 15)
        if (WEEK_START + dt.timedelta(minutes=m)).isoweekday() <= 5
    }
    extra, missing = sorted(got - wanted), sorted(wanted - got)
    if extra and extra[0].isoweekday() > 5:
        raise NotYet(f"it also runs at the weekend, e.g. {when(extra[0])}; limit the day-of-week field.")
    if missing:
        raise NotYet(
            f"in the week from {when(WEEK_START)} it runs {len(got)} times and misses {when(missing[0])}; "
            "every 15 minutes means minutes 0, 15, 30 and 45 of every hour."
        )
    if extra:
        raise NotYet(f"it runs more often than every 15 minutes, e.g. at {when(extra[0])}.")
    after = dt.datetime(2024, 5, 10, 23, 50, tzinfo=UTC)
    return (
        f"EB would accept it, and in one week it runs {len(got)} times, every 15 minutes from Monday 00:00 "
        f"to Friday 23:45 UTC; after {when(after)} the next run is {when(next_times(task.schedule, after)[0])}."
    )


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


def _fleet_messages(
    make_instance: Any, sqs: SqsClient, queue_url: str, folder: Path
) -> tuple[list[tuple[str, str]], list[str]]:
    """Run three instances, stop the leader at 09:06, run on; return what was sent and who stopped."""
    tasks = parse_cron_yaml(FLEET_CRON)
    clock = Clock(FLEET_START)
    lease_path = folder / "leader.sqlite"
    fleet = [make_instance(sqs, queue_url, tasks, clock, name, lease_path) for name in ("i-1", "i-2", "i-3")]
    try:
        if any(member is None for member in fleet):
            raise NotAttempted("make_instance returned None; return the Scheduler this instance runs.")
        if not all(isinstance(member, Scheduler) for member in fleet):
            raise NotYet(f"make_instance should return a Scheduler; it returned a {type(fleet[0]).__name__}.")
        for _ in range(39):  # 08:59:30 .. 09:05:50, every 10 s
            for member in fleet:
                member.tick()
            clock.advance(10)
        stopped = [m.holder_id for m in fleet if m.is_leader]
        survivors = [m for m in fleet if not m.is_leader] if len(stopped) < len(fleet) else fleet[1:]
        for _ in range(36):  # .. 09:11:50: the old leader has stopped ticking, as if it crashed
            for member in survivors:
                member.tick()
            clock.advance(10)
    finally:
        _close_leases(fleet)
    return [_scheduled(m) for m in drain(sqs, queue_url)], stopped


@register("08.2")
def _check_08_2(a: Answers) -> str:
    make_instance = a.function("make_instance")
    sqs = _own_client(a.lab)
    url = str(sqs.create_queue(QueueName=f"lab-08-check-{uuid.uuid4().hex[:8]}")["QueueUrl"])
    try:
        with tempfile.TemporaryDirectory(prefix="lab-08-check-") as folder:
            sent, stopped = _fleet_messages(make_instance, sqs, url, Path(folder))
    finally:
        sqs.delete_queue(QueueUrl=url)
    counts = collections.Counter(scheduled for _, scheduled in sent)
    due = ["2024-05-06T09:00:00Z", "2024-05-06T09:05:00Z", "2024-05-06T09:10:00Z"]
    strays = sorted(set(counts) - set(due))
    if strays:
        raise NotYet(
            f"a message was scheduled for {strays[0]}, a time the check's clock never reached: pass clock=clock."
        )
    if not sent:
        raise NotYet(
            "three instances ran from 08:59:30 to 09:12 and nobody enqueued anything; pass clock=clock."
        )
    for time_ in due[:2]:
        if counts[time_] > 1:
            raise NotYet(
                f"the run due at {time_[11:16]} was enqueued {counts[time_]} times, once per instance: "
                "give every instance a Lease on the same lease_path."
            )
        if counts[time_] == 0:
            raise NotYet(f"nobody enqueued the run due at {time_[11:16]}.")
    if len(stopped) != 1:
        raise NotYet(f"after the first runs {len(stopped)} instances thought they led; exactly one should.")
    if counts[due[2]] == 0:
        raise NotYet(
            f"after {stopped[0]} stopped, nobody enqueued the run due at 09:10: the lease must expire "
            "(keep the default ttl of 30 s) so another instance can take over."
        )
    if counts[due[2]] > 1:
        raise NotYet(f"the run due at 09:10 was enqueued {counts[due[2]]} times after the takeover.")
    return (
        f"three instances, one lease: 09:00 and 09:05 were enqueued once each; when {stopped[0]} stopped, "
        "another instance took the lease over and enqueued 09:10 once."
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


@register("08.3")
def _check_08_3(a: Answers) -> str:
    task_facts = a.function("task_facts")
    name = fresh_id("report")
    scheduled = dt.datetime(2024, 2, 29, 4, 0, tzinfo=UTC)
    task = CronTask(name, f"/tasks/{name}", CronSchedule.parse("0 4 * * *"))
    order = json.dumps({"type": "order", "order_id": fresh_id("order"), "amount": 2})
    requests = _deliver_privately(a.lab, [(TASK_BODY, task_attributes(task, scheduled)), (order, {})])
    post = next((r for r in requests if r.header("X-Aws-Sqsd-Taskname") == name), None)
    ordinary = next((r for r in requests if r.body == order.encode()), None)
    if post is None or ordinary is None:
        raise NotYet(
            "the check's messages never reached its worker; run the notebook's preflight cell again."
        )
    got = task_facts(post)
    if got is None:
        raise NotAttempted("task_facts returned None for a periodic task's POST.")
    if not isinstance(got, Mapping):
        raise NotYet(f"task_facts should return a dict; it returned a {type(got).__name__}.")
    for key, want in (("task", name), ("url", task.url)):
        if got.get(key) != want:
            raise NotYet(f"{key} is {got.get(key)!r}, but the POST says {want!r}.")
    stamp = got.get("scheduled_at")
    if isinstance(stamp, str):
        raise NotYet("scheduled_at is still the header's text; turn it into a datetime.")
    if not isinstance(stamp, dt.datetime):
        raise NotYet(f"scheduled_at should be a datetime; it is a {type(stamp).__name__}.")
    if stamp.tzinfo is None:
        raise NotYet("scheduled_at has no time zone; the header's Z means UTC, so attach dt.timezone.utc.")
    if stamp != scheduled:
        raise NotYet(f"scheduled_at is {iso(stamp)}, but the POST says {iso(scheduled)}.")
    if task_facts(ordinary) is not None:
        raise NotYet("task_facts should return None for an ordinary message's POST (it has no Taskname).")
    return (
        f"you read the task, its URL and its time ({when(scheduled)}) from the headers of an empty POST, "
        "and told it apart from an ordinary message."
    )
