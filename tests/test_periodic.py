"""cron.yaml parsing, the cron evaluator, the leader lease and the scheduler against the real emulator."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labapp.errors import ConfigError
from labapp.runtime.servers import HttpServer
from labapp.sqs.client import SqsClient
from labapp.sqs.queues import QueuePair, drain
from labapp.sqsd.cron import CronSchedule, load_cron, next_times, parse_cron_yaml
from labapp.sqsd.periodic import TASK_BODY, Lease, Scheduler
from labapp.worker import state as worker_state

UTC = dt.timezone.utc


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: dt.datetime) -> None:
        self.now = moment.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += seconds


def cron_text(*tasks: tuple[str, str, str]) -> str:
    lines = ["version: 1", "cron:"]
    for name, url, schedule in tasks:
        lines += [f'  - name: "{name}"', f'    url: "{url}"', f'    schedule: "{schedule}"']
    return "\n".join(lines) + "\n"


def scheduled(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(task name, scheduled time) of each message, sorted."""
    attrs = [m["MessageAttributes"] for m in messages]
    return sorted(
        (a["beanstalk.sqsd.task_name"]["StringValue"], a["beanstalk.sqsd.scheduled_time"]["StringValue"])
        for a in attrs
    )


# -- cron.yaml ------------------------------------------------------------------------------------
def test_parses_the_reference_example(tmp_path: Path) -> None:
    file = tmp_path / "cron.yaml"
    file.write_text(cron_text(("nightly-report", "/tasks/report", "0 3 * * *")))
    [task] = load_cron(file)
    assert (task.name, task.url, task.schedule.expression) == ("nightly-report", "/tasks/report", "0 3 * * *")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cron:\n  - {name: a, url: /a, schedule: '* * * * *'}\n", "needs 'version: 1'"),
        ("version: 2\ncron:\n  - {name: a, url: /a, schedule: '* * * * *'}\n", "must say 'version: 1'"),
        ("version: '1'\ncron:\n  - {name: a, url: /a, schedule: '* * * * *'}\n", "got version '1'"),
        (cron_text(("a", "/a", "* * * * *"), ("a", "/b", "0 * * * *")), "names task 'a' twice"),
        (cron_text(("a", "tasks/a", "* * * * *")), "url must be a path starting with '/'"),
        (cron_text(("a", "/a", "61 * * * *")), "bad minute field '61': 61 is outside 0-59"),
        (cron_text(("a", "/a", "0 24 * * *")), "bad hour field"),
        (cron_text(("a", "/a", "0 0 0 * *")), "bad day-of-month field"),
        (cron_text(("a", "/a", "0 0 * FOO *")), "bad month field 'FOO'"),
        (cron_text(("a", "/a", "0 0 * * 8")), "bad day-of-week field"),
        (cron_text(("a", "/a", "*/0 * * * *")), "bad minute field '*/0': step '0'"),
        (cron_text(("a", "/a", "30-10 * * * *")), "range 30-10 runs backwards"),
        (cron_text(("a", "/a", "0 3 * *")), "needs 5 fields"),
        (cron_text(("a", "/a", "0 0 31 2 *")), "never runs"),
        ("version: 1\ncron: []\n", "at least one task"),
        (
            "version: 1\ncron:\n  - {name: a, url: /a, schedule: '* * * * *'}\nleader: x\n",
            "unknown keys leader",
        ),
        (
            "version: 1\ncron:\n  - {name: a, url: /a, schedule: '* * * * *', timezone: CET}\n",
            "unknown keys timezone",
        ),
        ("version: 1\ncron:\n  - {name: a, schedule: '* * * * *'}\n", "needs a non-empty string 'url'"),
        ("version: 1\ncron:\n  - just-a-string\n", "must be a mapping"),
        ("- version: 1\n", "must be a mapping with 'version: 1'"),
        ("version: 1\ncron: [\n", "not valid YAML"),
    ],
)
def test_rejects_bad_cron_yaml_with_one_sentence(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=r"^cron\.yaml") as caught:
        parse_cron_yaml(text)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_a_missing_file_says_where_cron_yaml_lives(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bundle root"):
        load_cron(tmp_path / "cron.yaml")


def test_a_non_utf8_cron_yaml_names_the_file_and_the_byte(tmp_path: Path) -> None:
    # Before: a UnicodeDecodeError traceback.
    file = tmp_path / "cron.yaml"
    text = cron_text(("caf\xe9", "/a", "* * * * *"))
    file.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_cron(file)
    message = str(caught.value)
    assert (
        message.startswith(str(file)) and f"offset {text.index(chr(0xE9))}" in message and "0xE9" in message
    ), message
    assert "\n" not in message


def bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * width) + "]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # cron.yaml shares the .ebextensions loader and its limits.
        ("version: 1\n" + bomb() + "cron: [{name: *a8, url: /a, schedule: '* * * * *'}]\n", "200,000 values"),
        ("version: 1\ncron: " + "[" * 5000 + "]" * 5000 + "\n", "more than 50 levels deep"),
        ("version: 1\ncron: []\n" + "# pad\n" * 50_000, "larger than 262,144 bytes"),
        (cron_text(("a", "/a", "9" * 5000 + " * * * *")), "bad minute field"),
        (cron_text(("a", "/a", "1-" + "9" * 5000 + " * * * *")), "is outside 0-59"),
        (cron_text(("a", "/a", "*/" + "9" * 5000 + " 0 * * " + "1" * 5000)), "bad day-of-week field"),
        (cron_text(("a" * 10_000, "/a", "* * * * *"), ("a" * 10_000, "/b", "* * * * *")), "twice"),
        (cron_text(("a", "/" + "a b" * 10_000, "* * * * *")), "url must be a path"),
        (cron_text(("a", "/a", "x" * 10_000)), "needs 5 fields"),
        ("version: " + "7" * 5000 + "\ncron: []\n", "cannot read"),
        ("version: [" + ", ".join(["1"] * 5000) + "]\ncron: []\n", "got version"),
        ("version: 1\n" + "".join(f"k{i}{'x' * 50}: 1\n" for i in range(500)) + "cron: []\n", "unknown keys"),
        ("version: 1\ncron:\n  - !Ref task\n", "not valid YAML"),
    ],
    ids=[
        "alias-bomb",
        "deep",
        "too-big",
        "long-number",
        "long-range",
        "long-step",
        "long-name",
        "long-url",
        "long-schedule",
        "huge-version",
        "list-version",
        "many-keys",
        "cloudformation-tag",
    ],
)
def test_hostile_cron_yaml_gets_one_short_sentence_at_once(text: str, expected: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        parse_cron_yaml(text)
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert expected in message, message[:500]
    assert "\n" not in message and len(message) <= 300, message[:500]
    assert elapsed < 2, f"took {elapsed:.1f} s"


# -- the cron evaluator (cases checked by hand against a calendar) ----------------------------------
def test_daily_at_three_utc() -> None:
    assert next_times("0 3 * * *", at(2024, 5, 1, 2, 59, 30), 2) == [
        at(2024, 5, 1, 3, 0),
        at(2024, 5, 2, 3, 0),
    ]
    # Exactly 03:00 is not "after" 03:00.
    assert next_times("0 3 * * *", at(2024, 5, 1, 3, 0), 1) == [at(2024, 5, 2, 3, 0)]


def test_every_fifteen_minutes_crosses_the_hour() -> None:
    assert next_times("*/15 * * * *", at(2024, 5, 1, 23, 31), 3) == [
        at(2024, 5, 1, 23, 45),
        at(2024, 5, 2, 0, 0),
        at(2024, 5, 2, 0, 15),
    ]


def test_both_day_fields_restricted_means_either_day() -> None:
    # January 2024: the 1st is a Monday; the other Mondays are 8, 15, 22, 29; then 1 February (a Thursday).
    assert next_times("0 0 1 * MON", at(2023, 12, 31, 12, 0), 6) == [
        at(2024, 1, 1),
        at(2024, 1, 8),
        at(2024, 1, 15),
        at(2024, 1, 22),
        at(2024, 1, 29),
        at(2024, 2, 1),
    ]


def test_a_star_day_field_means_the_other_one_decides() -> None:
    assert next_times("0 0 * * MON", at(2024, 1, 30), 2) == [at(2024, 2, 5), at(2024, 2, 12)]
    assert next_times("0 0 1 * *", at(2024, 1, 30), 2) == [at(2024, 2, 1), at(2024, 3, 1)]


def test_names_ranges_lists_and_steps() -> None:
    # Weekdays 09:00 and 17:30 in Q1; 2024-03-29 is a Friday, 2024-03-30 a Saturday.
    cron = CronSchedule.parse("0,30 9-17/8 * jan-MAR Mon-Fri")
    assert sorted(cron.hours) == [9, 17]
    assert next_times(cron, at(2024, 3, 29, 17, 15), 3) == [
        at(2024, 3, 29, 17, 30),
        at(2025, 1, 1, 9, 0),
        at(2025, 1, 1, 9, 30),
    ]
    assert sorted(CronSchedule.parse("5/20 * * * *").minutes) == [5, 25, 45]


def test_seven_is_sunday_and_leap_days_are_found() -> None:
    assert CronSchedule.parse("0 0 * * 7").weekdays == CronSchedule.parse("0 0 * * SUN").weekdays == {0}
    assert next_times("0 12 29 2 *", at(2024, 3, 1), 1) == [at(2028, 2, 29, 12, 0)]


def test_times_are_utc_whatever_zone_is_given() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    assert next_times("0 3 * * *", dt.datetime(2024, 5, 1, 5, 30, tzinfo=paris), 1) == [at(2024, 5, 2, 3, 0)]
    assert next_times("0 3 * * *", dt.datetime(2024, 5, 1, 2, 0), 1) == [at(2024, 5, 1, 3, 0)]
    assert CronSchedule.parse("0 3 * * *").matches(at(2024, 5, 1, 3, 0, 59))


# -- the scheduler against the real queue -----------------------------------------------------------
def test_enqueues_one_task_message_with_the_sqsd_attributes(sqs: SqsClient, queues: QueuePair) -> None:
    clock = FakeClock(at(2024, 5, 1, 2, 59, 30))
    tasks = parse_cron_yaml(cron_text(("nightly-report", "/tasks/report", "0 3 * * *")))
    scheduler = Scheduler(sqs, queues.url, tasks, clock=clock)

    assert scheduler.tick() == []  # the first tick only starts the schedule
    clock.advance(29)
    assert scheduler.tick() == []
    clock.advance(1)  # 03:00:00
    [run] = scheduler.tick()
    clock.advance(1)
    assert scheduler.tick() == []

    [message] = drain(sqs, queues.url)
    assert message["MessageId"] == run.message_id
    assert message["Body"] == TASK_BODY == "elasticbeanstalk scheduled job"
    assert message["MessageAttributes"] == {
        "beanstalk.sqsd.path": {"DataType": "String", "StringValue": "/tasks/report"},
        "beanstalk.sqsd.task_name": {"DataType": "String", "StringValue": "nightly-report"},
        "beanstalk.sqsd.scheduled_time": {"DataType": "String", "StringValue": "2024-05-01T03:00:00Z"},
    }


def test_every_due_time_gets_one_message_when_ticks_keep_up(sqs: SqsClient, queues: QueuePair) -> None:
    clock = FakeClock(at(2024, 5, 1, 9, 59, 59))
    tasks = parse_cron_yaml(
        cron_text(("quarter", "/tasks/q", "*/15 * * * *"), ("hourly", "/tasks/h", "0 * * * *"))
    )
    scheduler = Scheduler(sqs, queues.url, tasks, clock=clock)
    for _ in range(3601):  # one tick a second from 09:59:59 to 10:59:59
        scheduler.tick()
        clock.advance(1)
    assert scheduled(drain(sqs, queues.url)) == [
        ("hourly", "2024-05-01T10:00:00Z"),
        ("quarter", "2024-05-01T10:00:00Z"),
        ("quarter", "2024-05-01T10:15:00Z"),
        ("quarter", "2024-05-01T10:30:00Z"),
        ("quarter", "2024-05-01T10:45:00Z"),
    ]


def test_after_a_long_pause_only_the_latest_missed_run_is_enqueued(sqs: SqsClient, queues: QueuePair) -> None:
    clock = FakeClock(at(2024, 5, 1, 10, 1))
    tasks = parse_cron_yaml(
        cron_text(("quarter", "/tasks/q", "*/15 * * * *"), ("daily", "/tasks/d", "0 3 * * *"))
    )
    scheduler = Scheduler(sqs, queues.url, tasks, clock=clock)
    scheduler.tick()
    clock.set(at(2024, 5, 1, 11, 40))  # 10:15 .. 11:30 were missed: six quarter runs, no daily run
    runs = scheduler.tick()
    assert [(r.task, r.scheduled_time) for r in runs] == [("quarter", "2024-05-01T11:30:00Z")]
    assert scheduled(drain(sqs, queues.url)) == [("quarter", "2024-05-01T11:30:00Z")]


def test_runs_older_than_the_catch_up_limit_are_dropped(sqs: SqsClient, queues: QueuePair) -> None:
    clock = FakeClock(at(2024, 5, 1, 2, 0))
    tasks = parse_cron_yaml(cron_text(("daily", "/tasks/d", "0 3 * * *")))
    scheduler = Scheduler(sqs, queues.url, tasks, clock=clock, max_catch_up=3600)
    scheduler.tick()
    clock.set(at(2024, 5, 1, 5, 0))  # 03:00 was missed two hours ago: too old to run now
    assert scheduler.tick() == []
    clock.set(at(2024, 5, 2, 3, 30))  # 03:00 today is within the hour: it still runs
    assert [r.scheduled_time for r in scheduler.tick()] == ["2024-05-02T03:00:00Z"]


def test_a_fifo_queue_is_refused(sqs: SqsClient) -> None:
    with pytest.raises(ConfigError, match="FIFO"):
        Scheduler(sqs, "http://127.0.0.1:1/123456789012/jobs.fifo", [])


# -- leader election --------------------------------------------------------------------------------
def test_two_schedulers_sharing_a_lease_enqueue_each_time_once(
    sqs: SqsClient, queues: QueuePair, tmp_path: Path
) -> None:
    clock = FakeClock(at(2024, 5, 1, 12, 0, 30))
    tasks = parse_cron_yaml(cron_text(("minutely", "/tasks/m", "* * * * *")))
    leases = [Lease(tmp_path / "leader.sqlite", ttl=30), Lease(tmp_path / "leader.sqlite", ttl=30)]
    a, b = (
        Scheduler(sqs, queues.url, tasks, lease=lease, clock=clock, holder_id=h)
        for lease, h in zip(leases, "ab", strict=True)
    )
    for _ in range(4 * 60):  # both tick every second for four minutes
        a.tick()
        b.tick()
        assert a.is_leader != b.is_leader
        clock.advance(1)
    expected = [("minutely", f"2024-05-01T12:{m:02d}:00Z") for m in range(1, 5)]
    assert scheduled(drain(sqs, queues.url)) == expected
    assert a.is_leader  # the first to tick took the lease and kept renewing it
    for lease in leases:
        lease.close()


def test_a_standby_takes_over_when_the_lease_expires(
    sqs: SqsClient, queues: QueuePair, tmp_path: Path
) -> None:
    clock = FakeClock(at(2024, 5, 1, 12, 0, 30))
    tasks = parse_cron_yaml(cron_text(("minutely", "/tasks/m", "* * * * *")))
    lease_a, lease_b = Lease(tmp_path / "leader.sqlite", ttl=30), Lease(tmp_path / "leader.sqlite", ttl=30)
    a = Scheduler(sqs, queues.url, tasks, lease=lease_a, clock=clock, holder_id="a")
    b = Scheduler(sqs, queues.url, tasks, lease=lease_b, clock=clock, holder_id="b")
    a.tick()
    clock.set(at(2024, 5, 1, 12, 1, 0))
    assert [r.scheduled_time for r in a.tick()] == ["2024-05-01T12:01:00Z"]

    # a stops ticking (its instance died); until the lease expires at 12:01:30 nobody enqueues.
    clock.set(at(2024, 5, 1, 12, 1, 29))
    assert b.tick() == [] and not b.is_leader
    clock.set(at(2024, 5, 1, 12, 1, 30))
    assert b.tick() == [] and b.is_leader  # nothing was due between 12:01:00 and 12:01:30
    clock.set(at(2024, 5, 1, 12, 2, 0))
    assert [r.scheduled_time for r in b.tick()] == ["2024-05-01T12:02:00Z"]

    # a comes back: it finds the lease held and stays a standby.
    assert a.tick() == [] and not a.is_leader
    assert scheduled(drain(sqs, queues.url)) == [
        ("minutely", "2024-05-01T12:01:00Z"),
        ("minutely", "2024-05-01T12:02:00Z"),
    ]
    lease_a.close()
    lease_b.close()


def test_a_stopped_leader_hands_over_at_once(sqs: SqsClient, queues: QueuePair, tmp_path: Path) -> None:
    clock = FakeClock(at(2024, 5, 1, 12, 0, 30))
    tasks = parse_cron_yaml(cron_text(("minutely", "/tasks/m", "* * * * *")))
    lease_a, lease_b = Lease(tmp_path / "leader.sqlite", ttl=30), Lease(tmp_path / "leader.sqlite", ttl=30)
    a = Scheduler(sqs, queues.url, tasks, lease=lease_a, clock=clock, holder_id="a")
    b = Scheduler(sqs, queues.url, tasks, lease=lease_b, clock=clock, holder_id="b")
    stop = threading.Event()
    thread = threading.Thread(target=a.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 5
    while not a.is_leader and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and not a.is_leader

    clock.set(at(2024, 5, 1, 12, 1, 0))  # well before the 30 s lease would have expired
    assert [r.scheduled_time for r in b.tick()] == ["2024-05-01T12:01:00Z"]
    lease_a.close()
    lease_b.close()


# -- end to end: scheduler -> queue -> daemon -> worker -------------------------------------------------
def test_a_scheduled_task_reaches_the_worker_as_an_empty_post(
    sqs: SqsClient, queues: QueuePair, worker: HttpServer, run_daemon: Callable[..., Any]
) -> None:
    clock = FakeClock(at(2024, 5, 1, 2, 59, 59))
    tasks = parse_cron_yaml(cron_text(("nightly-report", "/tasks/nightly-report", "0 3 * * *")))
    scheduler = Scheduler(sqs, queues.url, tasks, clock=clock)
    scheduler.tick()
    clock.advance(1)
    [run] = scheduler.tick()
    run_daemon(queues.url, worker.url)

    inspector = worker_state.of(worker.app).inspector
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done = [r for r in inspector.last() if r.path == "/tasks/nightly-report" and r.status == 200]
        if done:
            break
        time.sleep(0.05)
    [request] = done
    assert request.method == "POST" and request.body == b""
    assert request.header("X-Aws-Sqsd-Taskname") == "nightly-report"
    assert request.header("X-Aws-Sqsd-Scheduled-At") == "2024-05-01T03:00:00Z"
    assert request.header("X-Aws-Sqsd-Path") == "/tasks/nightly-report"
    assert request.header("X-Aws-Sqsd-Msgid") == run.message_id
    assert worker_state.of(worker.app).ledger.applied("task:nightly-report:2024-05-01T03:00:00Z")
