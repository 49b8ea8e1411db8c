"""Notebook 08's exercises and helpers: the solution answers pass, wrong ones are 'not yet', stubs 'not attempted'.

The answers are the cells of solutions/08_periodic_tasks.ipynb themselves (and their learner stubs), run
against a real lab on the session's SQS endpoint.
"""

from __future__ import annotations

import collections
import datetime as dt
import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from labapp import course
from labapp.course import nb08 as periodic
from labapp.course.checks import core as checks
from labapp.course.checks import nb08  # noqa: F401 - importing registers 08.x
from labapp.errors import ConfigError
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import QueuePair
from labapp.sqsd.cron import UTC, load_cron, parse_cron_yaml
from labapp.sqsd.periodic import Lease, Scheduler

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "08_periodic_tasks.ipynb"


# -- the answers, taken from the notebook -------------------------------------------------------------------
def solution_cells() -> dict[str, str]:
    """Return exercise id -> source of the notebook cell that holds its solution region."""
    found = {}
    for cell in json.loads(SOLUTION.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for exercise_id in checks.split_solution(source)[1]:
            found[exercise_id] = source
    return found


def answer(exercise_id: str, learner: bool = False) -> dict[str, Any]:
    """Run the exercise's cell (or its learner copy) in a namespace like the notebook's."""
    source = solution_cells()[exercise_id]
    if learner:
        source = checks.split_solution(source)[0]
    namespace: dict[str, Any] = {"dt": dt, "Lease": Lease, "Scheduler": Scheduler}
    exec(compile(source, f"<08 cell {exercise_id}>", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def lab(emulator: Any) -> Iterator[course.Lab]:
    """The notebook's lab, on the session's endpoint (checks start their sandboxes there too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_ENDPOINT_URL", emulator.url)
        box = course.Lab("t08").start()
        try:
            yield box
        finally:
            box.stop()


@pytest.fixture
def check(lab: course.Lab) -> Callable[..., checks.Outcome]:
    """check('08.1', cleanup_cron=...) runs one checker with these notebook variables."""

    def run(exercise_id: str, **namespace: Any) -> checks.Outcome:
        return checks.run_check(checks.REGISTRY[exercise_id], {"lab": lab, **namespace})

    return run


def test_the_notebook_has_a_solution_for_each_exercise() -> None:
    assert sorted(solution_cells()) == ["08.1", "08.2", "08.3"]
    for exercise_id in ("08.1", "08.2", "08.3"):
        assert "solution is in" not in checks.solution_text(exercise_id)


def test_the_learner_copy_is_generated_from_the_solution() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_learner", ROOT / "tools" / "make_learner_notebooks.py"
    )
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    learner = ROOT / "notebooks" / SOLUTION.name
    assert learner.read_text(encoding="utf-8") == tool.expected_learner_text(SOLUTION)


# -- 08.1 a cron.yaml for the warehouse -------------------------------------------------------------------------
def warehouse_yaml(pick: str, sync: str, pick_url: str = "/tasks/pick-list") -> str:
    return (
        f'version: 1\ncron:\n  - name: "pick-list"\n    url: "{pick_url}"\n    schedule: "{pick}"\n'
        f'  - name: "stock-sync"\n    url: "/tasks/stock-sync"\n    schedule: "{sync}"\n'
    )


def test_08_1_solution_is_correct(check: Callable[..., checks.Outcome]) -> None:
    outcome = check("08.1", **answer("08.1"))
    assert outcome.status == checks.CORRECT, outcome
    assert "pick-list ran 6 times" in outcome.reason and "stock-sync ran 150 times" in outcome.reason


@pytest.mark.parametrize(
    ("pick", "sync"),
    [("30 4 * * MON-SAT", "0,20,40 6-15 * * MON-FRI"), ("30 4 * * 1,2,3,4,5,6", "*/20 6-15 * * mon-fri")],
)
def test_08_1_other_spellings_are_correct(check: Callable[..., checks.Outcome], pick: str, sync: str) -> None:
    assert check("08.1", warehouse_cron=warehouse_yaml(pick, sync)).status == checks.CORRECT


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # Berlin's wall-clock hours written as if they were UTC: the run comes two hours late.
        (warehouse_yaml("30 6 * * 1-6", "*/20 6-15 * * 1-5"), "at 08:30 Berlin time (06:30 UTC)"),
        # Winter's offset (UTC+1) in July: an hour late.
        (warehouse_yaml("30 5 * * 1-6", "*/20 6-15 * * 1-5"), "at 07:30 Berlin time"),
        (warehouse_yaml("30 4 * * 1-5", "*/20 6-15 * * 1-5"), "on Mon, Tue, Wed, Thu, Fri, at 06:30"),
        (warehouse_yaml("30 4 * * 1-6", "*/20 6-16 * * 1-5"), "from 08:00 to 18:40 Berlin time"),
        (warehouse_yaml("30 4 * * 1-6", "*/20 6-15 * * 1-5", pick_url="/pick-list"), "url"),
        (warehouse_yaml("30 4 * * 1-6", "*/20 6-15 * * MON-FRY"), "would reject it"),
        ({"cron": []}, "a string"),
    ],
)
def test_08_1_wrong_answers_say_when_the_task_ran(
    check: Callable[..., checks.Outcome], text: Any, says: str
) -> None:
    outcome = check("08.1", warehouse_cron=text)
    assert outcome.status == checks.NOT_YET, outcome
    assert says in outcome.reason


def test_08_1_stub_is_not_attempted(check: Callable[..., checks.Outcome]) -> None:
    assert check("08.1", **answer("08.1", learner=True)).status == checks.NOT_ATTEMPTED
    assert check("08.1").status == checks.NOT_ATTEMPTED


# -- 08.2 two environments, one leader each ----------------------------------------------------------------------
def test_08_2_solution_is_correct(check: Callable[..., checks.Outcome]) -> None:
    outcome = check("08.2", **answer("08.2"))
    assert outcome.status == checks.CORRECT, outcome


def _no_lease(sqs: Any, url: str, tasks: Any, clock: Any, name: str, env: str, folder: Path) -> Scheduler:
    return Scheduler(sqs, url, tasks, clock=clock, holder_id=name)


def _one_lease(sqs: Any, url: str, tasks: Any, clock: Any, name: str, env: str, folder: Path) -> Scheduler:
    # What the notebook showed for one environment, applied to both: one leader for all four.
    return Scheduler(sqs, url, tasks, lease=Lease(folder / "leader.sqlite"), clock=clock, holder_id=name)


def _own_lease(sqs: Any, url: str, tasks: Any, clock: Any, name: str, env: str, folder: Path) -> Scheduler:
    return Scheduler(sqs, url, tasks, lease=Lease(folder / f"{name}.sqlite"), clock=clock, holder_id=name)


def _no_clock(sqs: Any, url: str, tasks: Any, clock: Any, name: str, env: str, folder: Path) -> Scheduler:
    return Scheduler(sqs, url, tasks, lease=Lease(folder / f"{env}.sqlite"), holder_id=name)


def _endless(sqs: Any, url: str, tasks: Any, clock: Any, name: str, env: str, folder: Path) -> Scheduler:
    lease = Lease(folder / f"{env}.sqlite", ttl=3600)
    return Scheduler(sqs, url, tasks, lease=lease, clock=clock, holder_id=name)


def _not_a_scheduler(sqs: Any, url: str, tasks: Any, clock: Any, name: str, env: str, folder: Path) -> str:
    return name


@pytest.mark.parametrize(
    ("make_instance", "says"),
    [
        (_no_lease, "reached its queue 2 times"),
        (_one_lease, "staging's queue got no run at all; at 09:06 the leaders were: prod-1"),
        (_own_lease, "reached its queue 2 times"),
        (_no_clock, "a clock of their own"),
        (_endless, "stopped at 09:06; after that, production's run due at 09:10 reached its queue 0 times"),
        (_not_a_scheduler, "should return a Scheduler"),
    ],
)
def test_08_2_wrong_answers_say_what_reached_each_queue(
    check: Callable[..., checks.Outcome], make_instance: Callable[..., Any], says: str
) -> None:
    outcome = check("08.2", make_instance=make_instance)
    assert outcome.status == checks.NOT_YET, outcome
    assert says in outcome.reason


def test_08_2_stub_is_not_attempted(check: Callable[..., checks.Outcome]) -> None:
    assert check("08.2", **answer("08.2", learner=True)).status == checks.NOT_ATTEMPTED


# -- 08.3 skip a run that comes too late -------------------------------------------------------------------------
def test_08_3_solution_is_correct(check: Callable[..., checks.Outcome]) -> None:
    outcome = check("08.3", **answer("08.3"))
    assert outcome.status == checks.CORRECT, outcome


def _decide(parse: Callable[[Any], dt.datetime], ordinary: Any = None) -> Callable[[Any, dt.datetime], Any]:
    def run_or_skip(req: Any, now: dt.datetime) -> Any:
        if not req.header("X-Aws-Sqsd-Taskname"):
            return ordinary
        return "run" if now - parse(req) <= dt.timedelta(minutes=15) else "skip"

    return run_or_skip


def _scheduled(req: Any) -> dt.datetime:
    return dt.datetime.strptime(req.header("X-Aws-Sqsd-Scheduled-At"), "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )


def _arrival(req: Any) -> dt.datetime:
    # The moment the message was sent, not the one it was due: every run looks fresh.
    return dt.datetime.strptime(req.header("X-Aws-Sqsd-Sent-At"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _naive(req: Any) -> dt.datetime:
    return dt.datetime.strptime(req.header("X-Aws-Sqsd-Scheduled-At"), "%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("run_or_skip", "says"),
    [
        (_decide(_naive), "TypeError"),
        (_decide(_scheduled, ordinary="run"), "for an ordinary order's POST"),
        (lambda req, now: "run" if req.header("X-Aws-Sqsd-Taskname") else None, "182 minutes before"),
        (lambda req, now: "skip" if req.header("X-Aws-Sqsd-Taskname") else None, "2 minutes before"),
    ],
)
def test_08_3_wrong_answers_say_what_the_function_returned(
    check: Callable[..., checks.Outcome], run_or_skip: Callable[..., Any], says: str
) -> None:
    outcome = check("08.3", run_or_skip=run_or_skip)
    assert outcome.status == checks.NOT_YET, outcome
    assert says in outcome.reason


def test_08_3_stub_is_not_attempted(check: Callable[..., checks.Outcome]) -> None:
    assert check("08.3", **answer("08.3", learner=True)).status == checks.NOT_ATTEMPTED


# -- the helpers the notebook calls --------------------------------------------------------------------------
def test_every_bad_example_is_rejected_with_a_sentence() -> None:
    for label, text in periodic.BAD_EXAMPLES.items():
        with pytest.raises(ConfigError) as caught:
            parse_cron_yaml(text)
        assert str(caught.value).endswith("."), label


def test_the_deploy_cron_yaml_is_the_one_the_notebook_shows() -> None:
    names = [task.name for task in load_cron(periodic.DEPLOY_CRON)]
    assert names == ["nightly-report", "ledger-heartbeat"]


def drain_schedule(sqs: SqsClient, url: str) -> list[tuple[str, str]]:
    pairs = []
    for message in periodic.drain(sqs, url):
        attrs = message["MessageAttributes"]
        name = attrs["beanstalk.sqsd.task_name"]["StringValue"]
        pairs.append((name, attrs["beanstalk.sqsd.scheduled_time"]["StringValue"]))
    return sorted(pairs)


def test_run_fleet_with_a_shared_lease_enqueues_once_and_hands_over(
    sqs: SqsClient, queues: QueuePair, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = load_cron(periodic.DEPLOY_CRON)
    clock = periodic.Clock(dt.datetime(2024, 5, 6, 8, 59, 30, tzinfo=UTC))
    lease_file = periodic.fresh_lease_file("t08-fleet")
    fleet = [
        Scheduler(sqs, queues.url, tasks, lease=Lease(lease_file), clock=clock, holder_id=name)
        for name in ("a", "b")
    ]
    periodic.run_fleet(fleet, clock, seconds=60)
    periodic.run_fleet(fleet[1:], clock, seconds=15 * 60)
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "08:59:30  a leads",
        "09:00:00  a enqueues ledger-heartbeat for 09:00",
        "09:00:50  b leads",
        "09:15:00  b enqueues ledger-heartbeat for 09:15",
    ]
    assert drain_schedule(sqs, queues.url) == [
        ("ledger-heartbeat", "2024-05-06T09:00:00Z"),
        ("ledger-heartbeat", "2024-05-06T09:15:00Z"),
    ]


def test_deny_except_plays_iam_and_record_calls_sees_the_denied_send(
    emulator: Any, queues: QueuePair, sqs: SqsClient
) -> None:
    limited = sqs_client(emulator.url)
    calls = periodic.record_calls(limited)
    periodic.deny_except(limited, periodic.CLAIMED_ACTIONS)
    tasks = load_cron(periodic.DEPLOY_CRON)
    clock = periodic.Clock(dt.datetime(2024, 5, 6, 9, 29, 50, tzinfo=UTC))
    leader = Scheduler(limited, queues.url, tasks, clock=clock, holder_id="c")
    assert leader.tick() == []
    clock.advance(10)
    assert leader.tick() == []  # 09:30 is due, but the send is denied
    limited.receive_message(QueueUrl=queues.url, WaitTimeSeconds=0)  # an allowed action still works
    outcomes = collections.Counter((call.operation, call.outcome) for call in calls)
    assert outcomes == {("SendMessage", "AccessDenied"): 1, ("ReceiveMessage", "ok"): 1}
    [send] = [call for call in calls if call.operation == "SendMessage"]
    assert send.params["MessageBody"] == "elasticbeanstalk scheduled job"
    assert send.params["MessageAttributes"]["beanstalk.sqsd.scheduled_time"]["StringValue"] == (
        "2024-05-06T09:30:00Z"
    )
    assert periodic.drain(sqs, queues.url) == []
    assert periodic.operations(calls) == ["ReceiveMessage", "SendMessage"]


def test_when_and_the_clock_speak_utc() -> None:
    clock = periodic.Clock(dt.datetime(2024, 5, 6, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert periodic.when(clock.now) == "Mon 2024-05-06 09:00 UTC"
    clock.advance(90)
    assert clock() == dt.datetime(2024, 5, 6, 9, 1, 30, tzinfo=UTC).timestamp()


def test_the_worker_role_policy_covers_every_need_and_the_claim_misses_the_leader_table() -> None:
    assert periodic.role_gaps(periodic.worker_role_policy()) == []
    claimed = {"Statement": [{"Effect": "Allow", "Action": list(periodic.CLAIMED_ACTIONS), "Resource": "*"}]}
    missing = {action for action, _ in periodic.role_gaps(claimed)}
    assert set(periodic.LEADER_TABLE_ACTIONS) <= missing
    assert {
        "sqs:SendMessage",
        "cloudwatch:PutMetricData",
        "elasticbeanstalk:PutInstanceStatistics",
    } <= missing
    # A statement on another table does not count: the resource must match the leader table's name.
    other_table = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "arn:aws:dynamodb:*:*:table/orders"}
    assert set(periodic.LEADER_TABLE_ACTIONS) <= {
        a for a, _ in periodic.role_gaps({"Statement": [other_table]})
    }


def test_deny_except_checks_a_batch_call_against_the_single_calls_action(
    emulator: Any, queues: QueuePair, sqs: SqsClient
) -> None:
    # The daemon deletes in batches; a role with sqs:DeleteMessage allows DeleteMessageBatch.
    limited = sqs_client(emulator.url)
    calls = periodic.record_calls(limited)
    periodic.deny_except(limited, periodic.CLAIMED_ACTIONS)
    sqs.send_message(QueueUrl=queues.url, MessageBody="x")
    [message] = sqs.receive_message(QueueUrl=queues.url, WaitTimeSeconds=1)["Messages"]
    entry = {"Id": "1", "ReceiptHandle": message["ReceiptHandle"]}
    limited.delete_message_batch(QueueUrl=queues.url, Entries=[entry])
    with pytest.raises(ClientError, match="AccessDenied"):
        limited.send_message_batch(QueueUrl=queues.url, Entries=[{"Id": "1", "MessageBody": "y"}])
    outcomes = {(call.operation, call.outcome) for call in calls}
    assert outcomes == {("DeleteMessageBatch", "ok"), ("SendMessageBatch", "AccessDenied")}
    assert periodic.iam_action("ChangeMessageVisibilityBatch") == "sqs:ChangeMessageVisibility"
