"""Periodic tasks as a worker environment runs them: `cron.yaml`, a cron evaluator and a leader.

On AWS, one instance of the environment is the leader; it enqueues a message with the body
`elasticbeanstalk scheduled job` and three `beanstalk.sqsd.*` attributes at each scheduled time,
and whichever instance receives it POSTs an empty body to the task URL (REFERENCE.md §4).
Schedules are standard five-field cron expressions evaluated in UTC.

Leader election: real Elastic Beanstalk keeps a lease in a DynamoDB table (a leader registry
named like `AWSEBWorkerCronLeaderRegistry`), which is why a worker instance profile needs
DynamoDB access to that table as well as `sqs:SendMessage` on the worker queue. The lab keeps
the same kind of lease (holder id, expires_at) in a small SQLite file that every local scheduler
opens; the holder renews it on each tick and another scheduler takes it over once it expires.

Missed times: the lease row also records how far the schedule has been enqueued, so a new
leader continues where the old one stopped. When several times of one task fell due since that
point (a paused laptop, a leader gap), only the latest one is enqueued and the others are logged
as skipped, so a task never fires in a burst. Runs older than `max_catch_up` seconds (an hour by
default) are dropped altogether, so a lease file left from yesterday does not replay the past.
Delivery is at least once: if a send fails, the window is tried again on the next tick, and the
worker de-duplicates on (task, scheduled time).
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import itertools
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from labapp.errors import ConfigError
from labapp.queues import SqsClient

log = logging.getLogger("labapp.periodic")

TASK_BODY = "elasticbeanstalk scheduled job"
UTC = dt.timezone.utc
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# A matching day is at most a few years away (29 February); beyond that a schedule never runs.
SEARCH_DAYS = 366 * 9


# -- the cron expression ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i


FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field(
        "month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    ),
    # 7 is Sunday as well as 0, as in Vixie cron.
    _Field("day-of-week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")),
)


def _number(text: str, field: _Field) -> int:
    upper = text.upper()
    if upper in (n.upper() for n in field.names):
        return field.low + [n.upper() for n in field.names].index(upper)
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a number" + (" or a name" if field.names else ""))
    value = int(text)
    if not field.low <= value <= field.high:
        raise ValueError(f"{value} is outside {field.low}-{field.high}")
    return value


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise ValueError(f"step {step_text!r} must be a whole number above 0")
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _number(first, field), _number(last, field)
            if low > high:
                raise ValueError(f"range {base} runs backwards")
        else:
            low = _number(base, field)
            # `5/15` means from 5 to the end in steps of 15, as in cronie.
            high = field.high if slash else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


@dataclasses.dataclass(frozen=True)
class CronSchedule:
    """A parsed five-field cron expression (minute hour day-of-month month day-of-week), in UTC."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse an expression, raising ConfigError that names the field at fault."""
        parts = str(expression).split()
        if len(parts) != 5:
            raise ConfigError(
                f"schedule {expression!r} needs 5 fields (minute hour day-of-month month day-of-week); "
                f"it has {len(parts)}."
            )
        sets = []
        for text, field in zip(parts, FIELDS, strict=True):
            try:
                sets.append(_parse_field(text, field))
            except ValueError as exc:
                raise ConfigError(
                    f"schedule {expression!r} has a bad {field.name} field {text!r}: {exc}."
                ) from None
        minutes, hours, days, months, weekdays = sets
        schedule = cls(
            expression=str(expression),
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=frozenset(d % 7 for d in weekdays),
            # Vixie cron: a day field counts as restricted unless it starts with '*'.
            days_restricted=not parts[2].startswith("*"),
            weekdays_restricted=not parts[4].startswith("*"),
        )
        if schedule.days_restricted and not schedule.weekdays_restricted:
            longest = max(calendar.monthrange(2024, m)[1] for m in months)  # 2024 is a leap year
            if min(days) > longest:
                raise ConfigError(f"schedule {expression!r} never runs: no chosen month has day {min(days)}.")
        return schedule

    def day_matches(self, day: dt.date) -> bool:
        """Return True if the schedule runs on this day (OR of the day fields when both are restricted)."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def matches(self, moment: dt.datetime) -> bool:
        """Return True if the schedule fires at this minute (UTC)."""
        moment = _utc(moment)
        return moment.minute in self.minutes and moment.hour in self.hours and self.day_matches(moment.date())


def _utc(moment: dt.datetime) -> dt.datetime:
    # Naive datetimes are taken to be UTC, the only time zone cron.yaml knows.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iter_times(schedule: str | CronSchedule, after: dt.datetime) -> Iterator[dt.datetime]:
    """Yield the times the schedule fires strictly after `after`, in order, as UTC datetimes."""
    cron = schedule if isinstance(schedule, CronSchedule) else CronSchedule.parse(schedule)
    start = _utc(after).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    hours, minutes = sorted(cron.hours), sorted(cron.minutes)
    day, idle = start.date(), 0
    while idle < SEARCH_DAYS:
        if cron.day_matches(day):
            idle = 0
            for hour, minute in itertools.product(hours, minutes):
                moment = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                if moment >= start:
                    yield moment
        else:
            idle += 1
        day += dt.timedelta(days=1)


def next_times(schedule: str | CronSchedule, after: dt.datetime, n: int = 1) -> list[dt.datetime]:
    """Return the next n times the schedule fires strictly after `after` (UTC)."""
    return list(itertools.islice(iter_times(schedule, after), n))


def iso(moment: dt.datetime) -> str:
    """Format a time as sqsd does for scheduled_time, e.g. 2024-05-01T03:00:00Z."""
    return _utc(moment).strftime(ISO_FORMAT)


# -- cron.yaml ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CronTask:
    """One entry of cron.yaml."""

    name: str
    url: str
    schedule: CronSchedule


TOP_KEYS = ("version", "cron")
TASK_KEYS = ("name", "url", "schedule")


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} needs a non-empty string {key!r}.")
    if any(c in value for c in "\r\n"):
        raise ConfigError(f"{where}: {key} must be on one line (it is sent as an HTTP header).")
    return value


def parse_cron_yaml(text: str, source: str = "cron.yaml") -> list[CronTask]:
    """Parse and validate cron.yaml text, raising ConfigError with one clear sentence."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source} must be a mapping with 'version: 1' and a 'cron' list.")
    unknown = sorted(set(map(str, document)) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(
            f"{source} has unknown keys {', '.join(unknown)}; only version and cron are allowed."
        )
    if "version" not in document:
        raise ConfigError(f"{source} needs 'version: 1' at the top.")
    if document["version"] != 1 or isinstance(document["version"], bool):
        raise ConfigError(f"{source} must say 'version: 1'; got version {document['version']!r}.")
    entries = document.get("cron")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source} needs a 'cron' list with at least one task.")
    tasks: list[CronTask] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{source} task {number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping with name, url and schedule.")
        extra = sorted(set(map(str, entry)) - set(TASK_KEYS))
        if extra:
            raise ConfigError(
                f"{where} has unknown keys {', '.join(extra)}; only name, url and schedule are allowed."
            )
        name = _text(entry, "name", where)
        where = f"{source} task {name!r}"
        if any(task.name == name for task in tasks):
            raise ConfigError(f"{source} names task {name!r} twice; task names must be unique.")
        url = _text(entry, "url", where)
        if not url.startswith("/") or any(c.isspace() for c in url):
            raise ConfigError(
                f"{where}: url must be a path starting with '/' and without spaces; got {url!r}."
            )
        try:
            schedule = CronSchedule.parse(_text(entry, "schedule", where))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        tasks.append(CronTask(name, url, schedule))
    return tasks


def load_cron(path: str | Path) -> list[CronTask]:
    """Read and validate a cron.yaml file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file} does not exist; periodic tasks live in cron.yaml at the bundle root.")
    return parse_cron_yaml(file.read_text(encoding="utf-8"), str(file))


# -- the leader lease ----------------------------------------------------------------------------------
LEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS leader (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL,
    done_through REAL
)
"""


class Lease:
    """A leader lease in a SQLite file, standing in for EB's DynamoDB leader registry."""

    def __init__(self, path: str | Path, ttl: float = 30.0, name: str = "cron") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl = ttl
        self.name = name
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
        self._db.execute(LEASE_SCHEMA)

    def acquire(self, holder: str, now: float) -> tuple[bool, float | None]:
        """Take or renew the lease; return (is leader, time the schedule is enqueued through)."""
        with self._lock:
            # IMMEDIATE takes the write lock first, so two schedulers cannot both see an expired lease.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT holder, expires_at, done_through FROM leader WHERE name = ?", (self.name,)
                ).fetchone()
                leads = row is None or row[0] == holder or row[1] <= now
                if leads:
                    self._db.execute(
                        "INSERT INTO leader (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) "
                        "DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                        (self.name, holder, now + self.ttl),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if leads and row is not None and row[0] != holder:
            log.info("cron: %s takes over the lease from %s", holder, row[0])
        return leads, (row[2] if leads and row is not None else None)

    def advance(self, holder: str, through: float) -> bool:
        """Record that the schedule is enqueued through `through`; False if holder lost the lease."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE leader SET done_through = ? WHERE name = ? AND holder = ?",
                (through, self.name, holder),
            )
        return cursor.rowcount == 1

    def release(self, holder: str) -> None:
        """Give the lease up at once so another scheduler can lead on its next tick."""
        with self._lock:
            self._db.execute(
                "UPDATE leader SET expires_at = 0 WHERE name = ? AND holder = ?", (self.name, holder)
            )

    def close(self) -> None:
        """Close the lease file (the lease itself stays until it expires or is released)."""
        with self._lock:
            self._db.close()


# -- the scheduler -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ScheduledRun:
    """One message the leader enqueued for a task."""

    task: str
    url: str
    scheduled_time: str
    message_id: str


def task_attributes(task: CronTask, scheduled: dt.datetime) -> dict[str, dict[str, str]]:
    """Return the String message attributes that mark a message as a periodic task."""
    values = {
        "beanstalk.sqsd.path": task.url,
        "beanstalk.sqsd.task_name": task.name,
        "beanstalk.sqsd.scheduled_time": iso(scheduled),
    }
    return {key: {"DataType": "String", "StringValue": value} for key, value in values.items()}


class Scheduler:
    """Enqueue periodic-task messages for cron.yaml, only while holding the leader lease."""

    def __init__(
        self,
        sqs: SqsClient,
        queue_url: str,
        tasks: Sequence[CronTask],
        *,
        lease: Lease | None = None,
        clock: Callable[[], float] = time.time,
        holder_id: str | None = None,
        max_catch_up: float = 3600.0,
    ) -> None:
        if queue_url.endswith(".fifo"):
            raise ConfigError(
                "Periodic tasks need a standard worker queue; EB does not support them with FIFO."
            )
        self.sqs = sqs
        self.queue_url = queue_url
        self.tasks = list(tasks)
        self.lease = lease
        self.clock = clock
        self.holder_id = holder_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.is_leader = False
        self.max_catch_up = max_catch_up
        self._done_through: float | None = None  # used when there is no shared lease

    def _window_start(self, now: float) -> float | None:
        if self.lease is None:
            self.is_leader = True
            return self._done_through
        was_leader = self.is_leader
        self.is_leader, done_through = self.lease.acquire(self.holder_id, now)
        if self.is_leader != was_leader:
            log.info(
                "cron: %s is %s",
                self.holder_id,
                "now the leader" if self.is_leader else "no longer the leader",
            )
        return done_through

    def _mark_done(self, now: float) -> None:
        if self.lease is None:
            self._done_through = now
        elif not self.lease.advance(self.holder_id, now):
            self.is_leader = False
            log.warning(
                "cron: %s lost the lease while enqueueing; the next leader may repeat a run", self.holder_id
            )

    def tick(self) -> list[ScheduledRun]:
        """Renew the lease and, as leader, enqueue one message per task due since the last tick."""
        now = self.clock()
        start = self._window_start(now)
        if not self.is_leader:
            return []
        if start is None:
            # The first leader ever starts the schedule now rather than replaying the past.
            self._mark_done(now)
            return []
        start = max(start, now - self.max_catch_up)
        runs: list[ScheduledRun] = []
        window_end = dt.datetime.fromtimestamp(now, UTC)
        for task in self.tasks:
            # Strictly after the window start: a time equal to it was handled by the previous tick.
            latest, count = None, 0
            for moment in iter_times(task.schedule, dt.datetime.fromtimestamp(start, UTC)):
                if moment > window_end:
                    break
                latest, count = moment, count + 1
            if latest is None:
                continue
            if count > 1:
                log.warning(
                    "cron: %s missed %d runs; enqueueing only the latest (%s)",
                    task.name,
                    count - 1,
                    iso(latest),
                )
            try:
                runs.append(self._enqueue(task, latest))
            except (BotoCoreError, ClientError) as exc:
                # Keep the window open so the next tick tries again; the worker drops duplicates.
                log.error("cron: could not enqueue %s: %s", task.name, exc)
                return runs
        self._mark_done(now)
        return runs

    def _enqueue(self, task: CronTask, scheduled: dt.datetime) -> ScheduledRun:
        reply = self.sqs.send_message(
            QueueUrl=self.queue_url, MessageBody=TASK_BODY, MessageAttributes=task_attributes(task, scheduled)
        )
        log.info("cron: enqueued %s for %s", task.name, iso(scheduled))
        return ScheduledRun(task.name, task.url, iso(scheduled), reply["MessageId"])

    def run(self, stop: threading.Event) -> None:
        """Tick once a second until stop is set, then give up the lease."""
        while not stop.is_set():
            try:
                self.tick()
            except sqlite3.Error as exc:
                log.error("cron: the lease file %s failed: %s", self.lease and self.lease.path, exc)
            stop.wait(1)
        if self.lease is not None and self.is_leader:
            self.lease.release(self.holder_id)
        self.is_leader = False
