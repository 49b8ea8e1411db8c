"""`cron.yaml` as Elastic Beanstalk reads it: parsing, validation and a five-field cron evaluator in UTC."""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labapp.errors import ConfigError, clipped, quoted
from labapp.sqsd.documents import DOCUMENT_LIMIT_WHAT, MAX_DOCUMENT_BYTES, parse_document, read_file_text

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
        raise ValueError(f"{quoted(text)} is not a number" + (" or a name" if field.names else ""))
    # Compared as text first: int() of thousands of digits is slow, and past 4,300 it raises.
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(field.high)) or not field.low <= int(digits) <= field.high:
        raise ValueError(f"{clipped(digits)} is outside {field.low}-{field.high}")
    return int(digits)


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            digits = step_text.lstrip("0")
            if not (step_text.isascii() and step_text.isdigit()) or not digits:
                raise ValueError(f"step {quoted(step_text)} must be a whole number above 0")
            # Any step past the field's span picks only the first value; int() of 5,000 digits raises.
            step = int(digits) if len(digits) <= len(str(field.high)) else field.high + 1
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _number(first, field), _number(last, field)
            if low > high:
                raise ValueError(f"range {clipped(base)} runs backwards")
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
                f"schedule {quoted(expression)} needs 5 fields (minute hour day-of-month month day-of-week); "
                f"it has {len(parts)}."
            )
        sets = []
        for text, field in zip(parts, FIELDS, strict=True):
            try:
                sets.append(_parse_field(text, field))
            except ValueError as exc:
                raise ConfigError(
                    f"schedule {quoted(expression)} has a bad {field.name} field {quoted(text)}: {exc}."
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
                raise ConfigError(
                    f"schedule {quoted(expression)} never runs: no chosen month has day {min(days)}."
                )
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
    document = parse_document(text, source, json_first=False, json_allowed=False, cloudformation_tags=False)
    if not isinstance(document, dict):
        raise ConfigError(f"{source} must be a mapping with 'version: 1' and a 'cron' list.")
    unknown = sorted(set(map(str, document)) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(
            f"{source} has unknown keys {clipped(', '.join(unknown))}; only version and cron are allowed."
        )
    if "version" not in document:
        raise ConfigError(f"{source} needs 'version: 1' at the top.")
    if document["version"] != 1 or isinstance(document["version"], bool):
        raise ConfigError(f"{source} must say 'version: 1'; got version {quoted(document['version'])}.")
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
                f"{where} has unknown keys {clipped(', '.join(extra))}; only name, url and schedule are allowed."
            )
        name = _text(entry, "name", where)
        where = f"{source} task {quoted(name)}"
        if any(task.name == name for task in tasks):
            raise ConfigError(f"{source} names task {quoted(name)} twice; task names must be unique.")
        url = _text(entry, "url", where)
        if not url.startswith("/") or any(c.isspace() for c in url):
            raise ConfigError(
                f"{where}: url must be a path starting with '/' and without spaces; got {quoted(url)}."
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
    text = read_file_text(file, MAX_DOCUMENT_BYTES, DOCUMENT_LIMIT_WHAT)
    return parse_cron_yaml(text, str(file))
