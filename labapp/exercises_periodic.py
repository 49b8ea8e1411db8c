"""Notebook 08, periodic tasks: the helpers that keep its cells short, and exercises 08.1-08.3.

The notebook drives the real pieces: `labapp.cron` evaluates schedules, `labapp.periodic.Scheduler`
enqueues through the lab's SQS endpoint, the daemon POSTs, the worker de-duplicates. Time is a
`Clock` the notebook moves by hand, so a quarter of an hour of scheduling takes a moment and
prints the same every run. IAM is the one thing moto does not check: `deny_except` plays it
with a botocore hook, and says so.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

from labapp import lessons
from labapp.checks import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.config import LAB_PROFILE
from labapp.cron import UTC, CronSchedule, CronTask, iso, iter_times, next_times, parse_cron_yaml
from labapp.daemon import Daemon
from labapp.errors import ConfigError
from labapp.httpserver import HttpServer
from labapp.inspector import RecordedRequest
from labapp.lab import Lab
from labapp.periodic import TASK_BODY, Lease, Scheduler, task_attributes
from labapp.queues import SqsClient, drain, sqs_client
from labapp.stack import lab_home
from labapp.worker import create_app

__all__ = [
    "BAD_EXAMPLES",
    "CLAIMED_ACTIONS",
    "DEPLOY_CRON",
    "Call",
    "Clock",
    "deny_except",
    "drain",
    "fresh_lease_file",
    "operations",
    "record_calls",
    "run_fleet",
    "show_calls",
    "show_in_zones",
    "show_schedules",
    "show_task_runs",
    "show_validation",
    "take_all",
    "when",
]


def _deploy_cron() -> Path:
    # The repository's deploy/ in an editable install; next to the notebooks' folder otherwise
    # (the Docker image installs the package and copies deploy/ into its working directory).
    candidates = [Path(__file__).resolve().parents[1], Path.cwd(), Path.cwd().parent]
    for root in candidates:
        if (root / "deploy" / "cron.yaml").is_file():
            return root / "deploy" / "cron.yaml"
    return candidates[0] / "deploy" / "cron.yaml"


DEPLOY_CRON = _deploy_cron()

# The three actions the common claim says a worker role needs, and nothing else (REFERENCE.md §7).
CLAIMED_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")


# -- time ------------------------------------------------------------------------------------------------
class Clock:
    """A clock the notebook moves by hand; pass it to a Scheduler as `clock=`."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> float:
        return self.now.timestamp()

    def set(self, moment: dt.datetime) -> None:
        """Jump to a moment (any time zone; it is kept in UTC)."""
        self.now = moment.astimezone(UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += dt.timedelta(seconds=seconds)

    def __repr__(self) -> str:
        return f"<Clock at {when(self.now)}>"


def when(moment: dt.datetime, zone: dt.tzinfo = UTC, date: bool = True) -> str:
    """Format a moment for a table, e.g. 'Mon 2024-05-06 09:00 UTC' (or in another time zone)."""
    local = moment.astimezone(zone)
    return local.strftime("%a %Y-%m-%d %H:%M %Z" if date else "%a %H:%M %Z")


def show_schedules(expressions: Iterable[str], after: dt.datetime, n: int = 3) -> None:
    """Print the next n times of each cron expression after a moment, in UTC."""
    print(f"next runs after {when(after)}, all in UTC:")
    for expression in expressions:
        times = ", ".join(t.strftime("%a %d %b %H:%M") for t in next_times(expression, after, n))
        print(f"  {expression:<18} {times}")


def show_in_zones(expression: str, after: dt.datetime, zones: Sequence[str], n: int = 4) -> None:
    """Print the next n times of an expression in UTC and on the wall clocks of some time zones."""
    from zoneinfo import ZoneInfo

    tzs = [ZoneInfo(name) for name in zones]
    print(f"{expression!r} in UTC".ljust(28) + "".join(f"{name:<20}" for name in zones).rstrip())
    for moment in next_times(expression, after, n):
        local = "".join(f"{when(moment, tz, date=False):<20}" for tz in tzs).rstrip()
        print(f"{when(moment):<28}{local}")


# -- cron.yaml validation ---------------------------------------------------------------------------------
def _cron(schedule: str = "*/15 * * * *", url: str = "/tasks/cleanup", extra: str = "") -> str:
    return f'version: 1\ncron:\n  - name: "cleanup"\n    url: "{url}"\n    schedule: "{schedule}"\n{extra}'


BAD_EXAMPLES = {
    "six fields, seconds first (Quartz style)": _cron("0 */15 * * * *"),
    "a misspelt day name": _cron("0 9 * * MON-FRY"),
    "a url without the leading slash": _cron(url="tasks/cleanup"),
    "a time zone key (there is none)": _cron(extra="    timezone: Europe/Berlin\n"),
    "a day that never comes": _cron("0 0 30 2 *"),
    "the same name twice": _cron() + _cron(url="/tasks/other").split("cron:\n", 1)[1],
    "no version line": _cron().split("\n", 1)[1],
}


def show_validation(examples: Mapping[str, str]) -> None:
    """Validate each cron.yaml text as EB would and print the verdict in one sentence."""
    for label, text in examples.items():
        try:
            tasks = parse_cron_yaml(text)
        except ConfigError as exc:
            print(f"{label}:\n    rejected: {exc}")
        else:
            print(f"{label}:\n    accepted: {', '.join(t.name for t in tasks)}")


# -- the leader ----------------------------------------------------------------------------------------------
def fresh_lease_file(name: str) -> Path:
    """Return the path of a leader lease file for this notebook, with any old lease removed."""
    path = lab_home() / f"lab-{name}-cron-leader.sqlite"
    for leftover in (path, path.with_name(path.name + "-journal")):
        leftover.unlink(missing_ok=True)
    return path


def run_fleet(schedulers: Sequence[Scheduler], clock: Clock, seconds: float, step: float = 10) -> None:
    """Tick every scheduler each `step` seconds of the clock for `seconds`; print who leads and enqueues."""
    lines: list[str] = []
    leading = {s.holder_id: s.is_leader for s in schedulers}
    for _ in range(round(seconds / step)):
        stamp = clock.now.strftime("%H:%M:%S")
        for scheduler in schedulers:
            runs = scheduler.tick()
            if scheduler.is_leader != leading[scheduler.holder_id]:
                leading[scheduler.holder_id] = scheduler.is_leader
                verb = "leads" if scheduler.is_leader else "is no longer the leader"
                lines.append(f"{stamp}  {scheduler.holder_id} {verb}")
            for run in runs:
                due = dt.datetime.strptime(run.scheduled_time, "%Y-%m-%dT%H:%M:%SZ").strftime("%H:%M")
                lines.append(f"{stamp}  {scheduler.holder_id} enqueues {run.task} for {due}")
        clock.advance(step)
    print("\n".join(lines) if lines else "(nobody led or enqueued anything)")


def _scheduled(message: Mapping[str, Any]) -> tuple[str, str]:
    attrs = message.get("MessageAttributes", {})
    return (
        attrs.get("beanstalk.sqsd.task_name", {}).get("StringValue", "?"),
        attrs.get("beanstalk.sqsd.scheduled_time", {}).get("StringValue", "?"),
    )


def take_all(lab: Lab) -> None:
    """Take every message off the lab's queue and say which task and time each one was for."""
    counts = collections.Counter(_scheduled(m) for m in drain(lab.sqs, lab.queues.url))
    total = sum(counts.values())
    print(f"{total} message{'s' if total != 1 else ''} taken off the queue:")
    for (task, scheduled), count in sorted(counts.items()):
        print(f"  {count} x {task} scheduled for {scheduled}")


def show_task_runs(lab: Lab) -> None:
    """Print, per task and scheduled time, how many POSTs the worker got and how often the task ran."""
    deliveries, applied = lab.ledger.deliveries(), lab.ledger.applications()
    rows = []
    for key in sorted(k for k in deliveries if k.startswith("task:")):
        _, task, scheduled = key.split(":", 2)
        rows.append((task, scheduled, deliveries[key], applied.get(key, 0)))
    lessons.print_rows(("task", "scheduled for", "POSTs", "runs"), rows)


# -- watching API calls --------------------------------------------------------------------------------------
class Call:
    """One API call a client made, as a botocore event hook saw it."""

    def __init__(self, operation: str, params: Mapping[str, Any], thread: str) -> None:
        self.operation = operation
        self.params = params
        self.thread = thread
        self.outcome = "pending"

    def __repr__(self) -> str:
        return f"<Call {self.operation} from {self.thread}: {self.outcome}>"


def _api_params(request_dict: Mapping[str, Any]) -> dict[str, Any]:
    # botocore sends SQS calls as JSON; with the older query protocol the body is already a dict.
    body = request_dict.get("body", b"")
    if isinstance(body, dict):
        return body
    try:
        params = json.loads(body or b"{}")
    except (TypeError, ValueError):
        return {}
    return params if isinstance(params, dict) else {}


def record_calls(client: Any) -> list[Call]:
    """Record every SQS call this client makes from now on (a 'before-call' hook); return the list."""
    calls: list[Call] = []
    lock = threading.Lock()
    pending: dict[int, Call] = {}

    def before(model: Any, params: Mapping[str, Any], **_: Any) -> None:
        call = Call(model.name, _api_params(params), threading.current_thread().name)
        with lock:
            calls.append(call)
            pending[threading.get_ident()] = call

    def after(http_response: Any, parsed: Mapping[str, Any], **_: Any) -> None:
        with lock:
            call = pending.pop(threading.get_ident(), None)
        if call is not None:
            error = parsed.get("Error", {}).get("Code") if http_response.status_code >= 300 else None
            call.outcome = error or "ok"

    client.meta.events.register("before-call.sqs.*", before)
    client.meta.events.register("after-call.sqs.*", after)
    return calls


def deny_except(client: Any, allowed: Iterable[str]) -> None:
    """Make this client answer AccessDenied, as IAM would, to any SQS action not in `allowed`.

    moto does not evaluate IAM policies; this hook plays the role's part so you can see what a
    scheduler with the claimed permissions does. Register record_calls first to see the denials.
    """
    allowed_actions = {action.lower() for action in allowed}

    def check(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        action = f"sqs:{model.name}"
        if action.lower() in allowed_actions:
            return None
        message = f"the instance role is not authorized to perform: {action} (simulated by the lab)"
        parsed = {"Error": {"Code": "AccessDenied", "Message": message}, "ResponseMetadata": {}}
        return AWSResponse("http://iam.simulated", 403, {}, None), parsed

    client.meta.events.register("before-call.sqs.*", check)


def operations(calls: Iterable[Call], thread_prefix: str = "") -> list[str]:
    """Return the distinct operations among these calls, optionally only from some threads."""
    return sorted({c.operation for c in calls if c.thread.startswith(thread_prefix)})


def _describe(params: Mapping[str, Any]) -> str:
    lines = [f"MessageBody: {params['MessageBody']!r}"] if "MessageBody" in params else []
    for name, value in sorted(params.get("MessageAttributes", {}).items()):
        lines.append(f"{name}: {value.get('StringValue')}")
    return "".join(f"\n    {line}" for line in lines)


def show_calls(calls: Iterable[Call]) -> None:
    """Print each distinct call once: operation, how often, the outcome, and the message it carried."""
    counts = collections.Counter((c.operation, c.outcome, _describe(c.params)) for c in calls)
    for (operation, outcome, detail), count in counts.items():
        print(f"{operation}{f' x{count}' if count > 1 else ''} -> {outcome}{detail}")
    if not counts:
        print("(no calls)")


# ==============================================================================================================
# Exercises
# ==============================================================================================================
WEEK_START = dt.datetime(2024, 5, 5, 0, 0, tzinfo=UTC)  # a Sunday


def _fires(schedule: CronSchedule, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    times = []
    for moment in iter_times(schedule, start - dt.timedelta(minutes=1)):
        if moment >= end:
            break
        times.append(moment)
    return times


@register(
    "08.1",
    "A cron.yaml for the cleanup task",
    (
        "Three keys per task: name, url and schedule. The schedule has five fields: minute hour "
        "day-of-month month day-of-week, read in UTC.",
        "Every 15 minutes is */15 in the minute field; Monday to Friday is 1-5 (or MON-FRI) in the "
        'day-of-week field: schedule: "*/15 * * * 1-5".',
    ),
)
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


@register(
    "08.2",
    "Two instances, one enqueue per due time",
    (
        "Every instance builds its own Scheduler; what they must share is the leader lease. Pass clock= "
        "so the check can move time.",
        "return Scheduler(sqs, queue_url, tasks, lease=Lease(lease_path), clock=clock, holder_id=name)",
    ),
)
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

    Like lessons.sandbox, but on the endpoint the notebook's lab already uses (no second lookup of
    it), with a client of its own; the learner's queue, ledger and recorded requests stay as they were.
    """
    sqs = _own_client(lab)
    url = str(sqs.create_queue(QueueName=f"lab-08-check-{uuid.uuid4().hex[:8]}")["QueueUrl"])
    logbook = getattr(lab, "logbook", None)
    if logbook is not None:
        logbook.paused = True  # the check's traffic is not the learner's
    with tempfile.TemporaryDirectory(prefix="lab-08-check-") as folder:
        app = create_app({"LEDGER_PATH": str(Path(folder) / "ledger.sqlite")})
        server = HttpServer(app, threads=4).start()
        daemon = Daemon(sqs, LAB_PROFILE, queue_url=url, http_url=server.url, wait_time_seconds=1)
        inspector = app.extensions["lab.inspector"]
        try:
            for body, attributes in messages:
                sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=dict(attributes))
            deadline = time.monotonic() + timeout
            while len(inspector.last()) < len(messages) and time.monotonic() < deadline:
                daemon.poll_once()
                daemon.wait_idle(timeout=timeout)
            return list(inspector.last())
        finally:
            daemon.close()
            server.stop()
            app.extensions["lab.ledger"].close()
            sqs.delete_queue(QueueUrl=url)
            if logbook is not None:
                logbook.paused = False


@register(
    "08.3",
    "Read a periodic task's POST",
    (
        "A task POST has an empty body: everything is in X-Aws-Sqsd-Taskname, X-Aws-Sqsd-Path and "
        "X-Aws-Sqsd-Scheduled-At. An ordinary message has no Taskname header.",
        "name = req.header('X-Aws-Sqsd-Taskname'); if not name: return None; parse the time with "
        "dt.datetime.strptime(text, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=dt.timezone.utc).",
    ),
)
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
