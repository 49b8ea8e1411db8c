"""Periodic tasks as a worker environment runs them: a leader enqueues each task at its time.

On AWS, one instance of the environment is the leader; it enqueues a message with the body
`elasticbeanstalk scheduled job` and three `beanstalk.sqsd.*` attributes at each scheduled time,
and whichever instance receives it POSTs an empty body to the task URL (docs/aws-behaviour.md#cron-post).
Schedules are five-field cron expressions in UTC (labapp/cron.py).

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

import dataclasses
import datetime as dt
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from labapp.errors import ConfigError
from labapp.sqs.client import SqsClient
from labapp.sqsd.cron import UTC, CronTask, iso, iter_times

log = logging.getLogger("labapp.periodic")

TASK_BODY = "elasticbeanstalk scheduled job"


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
    """Enqueue periodic-task messages for cron.yaml, only while holding the leader lease.

    `sqs` and `queue_url` are where the messages go and `tasks` the parsed cron.yaml; `lease` the
    shared leader lease (None: this scheduler always leads); `clock` the time source (a notebook
    moves one by hand); `holder_id` names this instance in the lease; `max_catch_up` drops runs
    missed longer ago than this many seconds.
    """

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
