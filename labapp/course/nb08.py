"""Notebook 08, periodic tasks: the helpers that keep its cells short (its checks: checks/nb08.py).

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
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

from labapp.course.lab import Lab
from labapp.course.observe import print_rows
from labapp.errors import ConfigError
from labapp.settings import ROOT, lab_home
from labapp.sqs.queues import drain
from labapp.sqsd.cron import UTC, next_times, parse_cron_yaml
from labapp.sqsd.periodic import Scheduler


def _deploy_cron() -> Path:
    # The repository's deploy/ in an editable install; next to the notebooks' folder otherwise
    # (the Docker image installs the package and copies deploy/ into its working directory).
    candidates = [ROOT, Path.cwd(), Path.cwd().parent]
    for root in candidates:
        if (root / "deploy" / "cron.yaml").is_file():
            return root / "deploy" / "cron.yaml"
    return candidates[0] / "deploy" / "cron.yaml"


DEPLOY_CRON = _deploy_cron()


# The three actions the common claim says a worker role needs, and nothing else (docs/aws-behaviour.md#claim-iam-minimal).
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
    print_rows(("task", "scheduled for", "POSTs", "runs"), rows)


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


#: SQS's batch calls have no IAM action of their own: IAM checks the single call's action
#: (AWS: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-batch-api.html).
BATCH_CALLS = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}
BATCH_CALLS["ChangeMessageVisibilityBatch"] = "ChangeMessageVisibility"


def iam_action(operation: str) -> str:
    """Return the IAM action that authorises an SQS API call, e.g. sqs:DeleteMessage for DeleteMessageBatch."""
    return f"sqs:{BATCH_CALLS.get(operation, operation)}"


def deny_except(client: Any, allowed: Iterable[str]) -> None:
    """Make this client answer AccessDenied, as IAM would, to any SQS action not in `allowed`.

    moto does not evaluate IAM policies; this hook plays the role's part so you can see what a
    scheduler with the claimed permissions does. Register record_calls first to see the denials.
    """
    allowed_actions = {action.lower() for action in allowed}

    def check(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        action = iam_action(model.name)
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


# -- the worker role -----------------------------------------------------------------------------------------
#: The leader table's item actions and the tables they apply to (docs/aws-behaviour.md#cron-iam).
LEADER_TABLE = "*-stack-AWSEBWorkerCronLeaderRegistry*"
LEADER_TABLE_ACTIONS = (
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
)
# Example resources a worker's calls name, to test a policy's Resource patterns against.
_QUEUE = "arn:aws:sqs:eu-west-1:111122223333:awseb-e-abc123-stack-AWSEBWorkerQueue-1A2B3C"
_TABLE = (
    "arn:aws:dynamodb:eu-west-1:111122223333:table/awseb-e-abc123-stack-AWSEBWorkerCronLeaderRegistry-9Z8Y"
)
#: What a worker instance's role must allow, why, and on what (docs/aws-behaviour.md#worker-role, #cron-iam).
WORKER_ROLE_NEEDS: tuple[tuple[str, str, str], ...] = (
    ("sqs:ReceiveMessage", _QUEUE, "the daemon receives messages"),
    ("sqs:DeleteMessage", _QUEUE, "the daemon deletes a message after a 200"),
    ("sqs:ChangeMessageVisibility", _QUEUE, "the daemon sets ErrorVisibilityTimeout after a failure"),
    ("sqs:SendMessage", _QUEUE, "the leader enqueues each periodic task"),
    *(
        (action, _TABLE, "the instances elect the leader in the leader table")
        for action in LEADER_TABLE_ACTIONS
    ),
    ("cloudwatch:PutMetricData", "*", "the daemon publishes the ElasticBeanstalk/SQSD Health metric"),
    ("elasticbeanstalk:PutInstanceStatistics", "*", "AWS's managed worker policy grants it too"),
)


def worker_role_policy() -> dict[str, Any]:
    """Return an IAM policy document that allows what WORKER_ROLE_NEEDS lists, one statement per purpose."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WorkerQueue",
                "Effect": "Allow",
                "Action": [
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:ReceiveMessage",
                    "sqs:SendMessage",
                ],
                "Resource": "arn:aws:sqs:*:*:awseb-e-*-stack-AWSEBWorkerQueue-*",
            },
            {
                "Sid": "CronLeaderTable",
                "Effect": "Allow",
                "Action": list(LEADER_TABLE_ACTIONS),
                "Resource": f"arn:aws:dynamodb:*:*:table/{LEADER_TABLE}",
            },
            {
                "Sid": "HealthAndMetrics",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData", "elasticbeanstalk:PutInstanceStatistics"],
                "Resource": "*",
            },
        ],
    }


def _listed(statement: Mapping[str, Any], key: str) -> list[str]:
    value = statement.get(key, [])
    return [value] if isinstance(value, str) else [str(v) for v in value]


def role_gaps(policy: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return (action, why) for each need in WORKER_ROLE_NEEDS that the policy's Allow statements miss."""
    import fnmatch

    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, Mapping) else list(statements)
    allows = [s for s in statements if isinstance(s, Mapping) and s.get("Effect") == "Allow"]

    def allowed(action: str, resource: str) -> bool:
        # IAM matches actions without regard to case, and both patterns with * and ?.
        return any(
            any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(s, "Action"))
            and any(fnmatch.fnmatchcase(resource, r) for r in _listed(s, "Resource"))
            for s in allows
        )

    return [(action, why) for action, resource, why in WORKER_ROLE_NEEDS if not allowed(action, resource)]


def show_role_gaps(policy: Mapping[str, Any]) -> None:
    """Print what the policy misses, one purpose per line, or that it covers everything."""
    gaps = role_gaps(policy)
    by_why: dict[str, list[str]] = {}
    for action, why in gaps:
        by_why.setdefault(why, []).append(action)
    for why, actions in by_why.items():
        print(f"{', '.join(actions)}\n    {why}")
    if not gaps:
        print("nothing missing: the policy allows every action a worker instance needs")
