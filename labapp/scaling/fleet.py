"""A live local fleet scaled by the simulator's own policy objects.

An instance is one process running the worker app and a daemon, as an EB worker instance runs both.
Each tick a `FleetController` reads the real queue attributes, asks the policy, launches instances
(in service after the launch delay) and stops them with SIGTERM, which lets the daemon drain. Instances
boot ahead of time, like an Auto Scaling warm pool, so a launch takes the launch delay and not the
second Python needs to import. `time_scale` compresses time: at 60 a 300 s Period passes in 5 s.
Every time in the API is in scaled seconds, as in the simulator, except `tick_wall_s` and `stop_timeout_s`.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from labapp.errors import ConfigError, LabError, WaitTimeout
from labapp.runtime.instance import Handle, InstanceProcess
from labapp.runtime.wait import wait_until
from labapp.scaling.agreement import WITHIN_ONE_SHARE, Agreement, agreement, policy_period
from labapp.scaling.policies import FleetState, Metrics, Policy
from labapp.scaling.simulate import ScalingEvent, Timeline, simulate
from labapp.settings import lab_home
from labapp.sqs.client import sqs_client
from labapp.sqs.queues import QueuePair, depth, ensure_queues, send_messages
from labapp.sqsd.options import LAB_PROFILE
from labapp.worker.ledger import Ledger

log = logging.getLogger("labapp.fleet")

# The agreement with the simulator lives in its own module; the fleet's callers find it here too.
__all__ = [
    "WITHIN_ONE_SHARE",
    "Agreement",
    "FleetController",
    "LiveTimeline",
    "Reconciliation",
    "agreement",
    "policy_period",
]

BOOT_TIMEOUT_S = 60.0  # wall seconds for the first instances and the warm pool to import and bind
#: What each message asks the kit's worker to do: charge an order, or make an image's thumbnails.
SCENARIOS = ("order", "thumbnail")


@dataclasses.dataclass
class _Instance:
    handle: Handle
    ready_at: float  # scaled time it enters service
    since: float = -math.inf  # scaled time it entered service; the first instances start warm


@dataclasses.dataclass(frozen=True, eq=False)
class LiveTimeline:
    """What a live run recorded at each tick; times are scaled seconds from the start of the run."""

    time_scale: float
    wall_s: np.ndarray  # wall seconds since the start of the run
    time_s: np.ndarray  # the same instants, scaled
    visible: np.ndarray  # ApproximateNumberOfMessages, read from the endpoint
    in_flight: np.ndarray  # ApproximateNumberOfMessagesNotVisible
    desired: np.ndarray
    in_service: np.ndarray
    events: list[ScalingEvent]
    sent: int

    def desired_at(self, times: np.ndarray) -> np.ndarray:
        """Return desired capacity at scaled `times`, holding each tick's value until the next tick."""
        if not self.desired.size:
            return np.zeros(np.shape(times), dtype=np.int64)
        return self.desired[np.maximum(np.searchsorted(self.time_s, times, side="right") - 1, 0)]


class Reconciliation(NamedTuple):
    """Where every sent message ended up; `lost` must be 0."""

    sent: int
    applied: int  # business ids in the shared ledger
    queued: int  # visible, in flight or delayed in the worker queue
    dead_letter: int
    repeated: int = 0  # POSTs beyond the first for one business id: delivery is at least once

    @property
    def lost(self) -> int:
        return self.sent - self.applied - self.queued - self.dead_letter

    def __str__(self) -> str:
        return (
            f"sent {self.sent:,} = applied {self.applied:,} + queued {self.queued:,} + DLQ {self.dead_letter:,}; "
            f"lost {self.lost:,} ({self.repeated:,} repeated POSTs)"
        )


class FleetController:
    """Play a traffic profile against local instances scaled by `policy`; a context manager.

    `policy` decides and `arrivals` is the traffic (messages per scaled second); `endpoint_url` the
    SQS endpoint; `time_scale` how many scaled seconds pass per wall second. `processing_time_s`,
    `http_connections`, `launch_delay_s` and `initial_instances` mean what they mean to
    `simulate()`; the defaults are lab-sized (a message takes a minute, 5 connections), so a
    laptop keeps up. `tick_wall_s` is the wall time between ticks and `stop_timeout_s` how long
    an instance may drain after SIGTERM. `overtime_s` (scaled) lets the run go on past the end of
    the trace while messages are still queued: a machine slower than the fleet's nominal pace
    still shows the whole drain. `scenario` is what each message asks of the worker: an "order"
    to charge or a "thumbnail" to make (see SCENARIOS). Tests pass `clock`, `launcher` (one Handle
    per instance) and `read_metrics` (visible, in flight) to run without processes.
    """

    def __init__(
        self,
        policy: Policy,
        arrivals: np.ndarray,
        *,
        endpoint_url: str,
        time_scale: float = 60.0,
        processing_time_s: float = 60.0,
        http_connections: int = 5,
        launch_delay_s: float = 120.0,
        initial_instances: int | None = None,
        tick_wall_s: float = 0.2,
        stop_timeout_s: float = 15.0,
        overtime_s: float = 0.0,
        scenario: str = "thumbnail",
        clock: Callable[[], float] = time.monotonic,
        launcher: Callable[[str], Handle] | None = None,
        read_metrics: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ConfigError(f"scenario must be one of {', '.join(SCENARIOS)}; got {scenario!r}.")
        if not time_scale > 0:
            raise ConfigError(f"time_scale must be more than 0; got {time_scale}.")
        self.work_ms = round(processing_time_s * 1000 / time_scale)
        if not 1 <= self.work_ms <= 600_000:
            raise ConfigError(f"processing_time_s / time_scale must be 1 ms to 600 s; got {self.work_ms} ms.")
        self.policy, self.arrivals = policy, np.asarray(arrivals, dtype=np.int64)
        self.endpoint_url, self.time_scale, self.tick_wall_s = endpoint_url, float(time_scale), tick_wall_s
        self.processing_time_s, self.http_connections = processing_time_s, http_connections
        self.launch_delay_s, self.stop_timeout_s, self.scenario = launch_delay_s, stop_timeout_s, scenario
        self.overtime_s = overtime_s
        self.initial = int(getattr(policy, "MinSize", 1)) if initial_instances is None else initial_instances
        self.max_size = max(self.initial, int(getattr(policy, "MaxSize", self.initial)))
        self.clock, self._launcher, self._read_metrics = clock, launcher, read_metrics
        self.run_id = uuid.uuid4().hex[:8]
        self.run_dir = lab_home() / "fleet" / self.run_id
        self.queues: QueuePair | None = None
        self.handles: list[Handle] = []  # every instance ever booted, so stop() misses none
        self.desired = self.sent = 0
        self.finished = threading.Event()
        self._spares: list[Handle] = []  # the warm pool
        self._pending: list[_Instance] = []
        self._serving: list[_Instance] = []
        self._rows: list[tuple[float, ...]] = []
        self._events: list[ScalingEvent] = []
        self._t0 = clock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- one step -----------------------------------------------------------------------------
    def now(self) -> float:
        """Return scaled seconds since the run started."""
        return (self.clock() - self._t0) * self.time_scale

    def tick(self) -> None:
        """Bring due instances into service, read the queue, ask the policy and act on its answer."""
        now = self.now()
        while self._pending and self._pending[0].ready_at <= now and self._pending[0].handle.booted():
            instance = self._pending.pop(0)
            instance.handle.enter_service()
            instance.since = now if instance.ready_at > -math.inf else -math.inf
            self._serving.append(instance)
        assert self._read_metrics is not None
        visible, in_flight = self._read_metrics()
        fleet = FleetState(self.desired, len(self._pending), tuple(i.since for i in self._serving))
        decision = self.policy.decide(
            now, Metrics(visible, in_flight, len(self._serving), self.desired), fleet
        )
        if decision is not None and max(decision.desired, 0) != self.desired:
            self._events.append(ScalingEvent(now, self.desired, max(decision.desired, 0), decision.reason))
            self.scale_to(max(decision.desired, 0), now)
        self._rows.append(
            (self.clock() - self._t0, now, visible, in_flight, self.desired, len(self._serving))
        )

    def scale_to(self, desired: int, now: float) -> None:
        """Launch from the warm pool (else boot), or cancel launches first, then retire the newest."""
        for _ in range(desired - self.desired):
            handle = self._spares.pop(0) if self._spares else self._boot()
            self._pending.append(_Instance(handle, now + self.launch_delay_s))
        for _ in range(self.desired - desired):
            (self._pending or self._serving).pop().handle.terminate()
        self.desired = desired

    def _boot(self) -> Handle:
        assert self._launcher is not None
        self.handles.append(self._launcher(f"instance-{len(self.handles) + 1}"))
        return self.handles[-1]

    # -- the run ------------------------------------------------------------------------------
    def start(self) -> FleetController:
        """Make fresh queues, boot the first instances and the warm pool, then start the clock."""
        atexit.register(self.stop)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            sqs = sqs_client(self.endpoint_url)
            name, retries = f"fleet-{self.run_id}", LAB_PROFILE.MaxRetries
            self.queues = queues = ensure_queues(sqs, name, retries, LAB_PROFILE.VisibilityTimeout)
            Ledger(self.run_dir / "ledger.sqlite").close()  # schema and WAL before instances share it
            if self._launcher is None:
                url, connections = queues.url, self.http_connections
                self._launcher = lambda n: InstanceProcess(
                    n, self.run_dir, self.endpoint_url, url, connections
                )
            if self._read_metrics is None:
                self._read_metrics = lambda: _queue_metrics(sqs, queues.url)
            self.policy.reset()
            self.boot()
            self._t0 = self.clock()
            self.tick()  # the first instances enter service, warm, at time 0
            for target in (self._loop, self._send):
                self._threads.append(threading.Thread(target=target, name=f"fleet{target.__name__}"))
                self._threads[-1].start()
        except BaseException:
            self.stop()
            raise
        return self

    def boot(self) -> None:
        """Boot the first instances and a warm pool big enough to reach MaxSize; wait until all are up."""
        self.scale_to(self.initial, -math.inf)
        # The pool covers the first scale-out to MaxSize; a later one boots what it lacks.
        self._spares = [self._boot() for _ in range(self.max_size - self.initial)]
        try:
            wait_until(lambda: all(h.booted() for h in self.handles), BOOT_TIMEOUT_S, "instances to boot")
        except WaitTimeout:
            raise LabError(f"Instances did not boot in {BOOT_TIMEOUT_S:.0f}s; see {self.run_dir}.") from None

    def played_out(self) -> bool:
        """True once the trace is over and the last tick saw an empty queue, or the overtime is spent."""
        now, end = self.now(), self.arrivals.size
        if now < end:
            return False
        if now >= end + self.overtime_s:
            return True
        visible, in_flight = self._rows[-1][2:4] if self._rows else (0, 0)
        return self.sent >= int(self.arrivals.sum()) and visible + in_flight == 0

    def _loop(self) -> None:
        try:
            while not self._stop.is_set() and not self.played_out():
                began = self.clock()
                try:
                    self.tick()
                except (BotoCoreError, ClientError) as exc:
                    log.warning("fleet: tick skipped, the endpoint did not answer: %s", exc)
                self._stop.wait(max(0.0, self.tick_wall_s - (self.clock() - began)))
        finally:
            self.finished.set()  # even when a policy raises, so that wait() and run() return

    def _send(self) -> None:
        # The messages of scaled second k go out at wall time k / time_scale, ten per batch.
        assert self.queues is not None
        sqs, url = sqs_client(self.endpoint_url), self.queues.url
        second = owed = 0
        while not self._stop.is_set() and (second < self.arrivals.size or owed):
            due = min(self.arrivals.size, math.floor(self.now()) + 1)
            owed += int(self.arrivals[second:due].sum())
            second = max(second, due)
            try:
                while owed and not self._stop.is_set():
                    batch = min(10, owed)
                    send_messages(sqs, url, [self._body(self.sent + i) for i in range(batch)])
                    self.sent += batch
                    owed -= batch
            except (BotoCoreError, ClientError, LabError) as exc:
                log.warning("fleet: send failed, retrying: %s", exc)
            self._stop.wait(0.02)

    def _body(self, number: int) -> str:
        key = "order_id" if self.scenario == "order" else "image_id"
        body: dict[str, Any] = {
            "type": self.scenario,
            key: f"{self.run_id}-{number}",
            "work_ms": self.work_ms,
        }
        if self.scenario == "order":
            body["amount"] = 10.0
        return json.dumps(body)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the traffic profile has played out and every message is sent; False on timeout."""
        done = self.finished.wait(timeout)
        for thread in self._threads[1:]:  # the sender: it may be a batch behind the clock
            thread.join(timeout)
        return done and not any(t.is_alive() for t in self._threads[1:])

    def run(self) -> LiveTimeline:
        """Start, play the whole profile, stop every instance, and return the timeline."""
        with self:
            self.wait()
        return self.timeline()

    def stop(self) -> None:
        """Stop ticking and sending, SIGTERM every instance, and SIGKILL any still running after the timeout."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for handle in self.handles:
            handle.terminate()
        deadline = time.monotonic() + self.stop_timeout_s
        for handle in self.handles:
            if not handle.wait(max(0.0, deadline - time.monotonic())):
                log.warning("fleet: an instance ignored SIGTERM for %ss; killing it", self.stop_timeout_s)
                handle.kill()
        self._threads, self._pending, self._serving, self._spares = [], [], [], []
        atexit.unregister(self.stop)

    def __enter__(self) -> FleetController:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- results ------------------------------------------------------------------------------
    def timeline(self) -> LiveTimeline:
        """Return what the run recorded so far."""
        table = np.asarray(self._rows, dtype=float).reshape(-1, 6)
        visible, in_flight, desired, in_service = (table[:, i].astype(np.int64) for i in range(2, 6))
        wall, scaled, events = table[:, 0], table[:, 1], list(self._events)
        return LiveTimeline(
            self.time_scale, wall, scaled, visible, in_flight, desired, in_service, events, self.sent
        )

    def reconcile(self) -> Reconciliation:
        """Count the sent messages in the shared ledger, the queue and the DLQ; call it after stop()."""
        assert self.queues is not None
        ledger = Ledger(self.run_dir / "ledger.sqlite")
        prefix = f"{self.scenario}:{self.run_id}-"
        applied = sum(1 for bid in ledger.applications() if bid.startswith(prefix))
        repeated = sum(n - 1 for bid, n in ledger.deliveries().items() if bid.startswith(prefix) and n > 1)
        ledger.close()
        d = depth(sqs_client(self.endpoint_url), self.queues)
        queued = d.visible + d.in_flight + d.delayed
        return Reconciliation(self.sent, applied, queued, d.dead_letter, repeated)

    def simulated(self, processing_jitter: float = 0.0, seed: int = 0) -> Timeline:
        """Run the simulator on the same arrivals, policy, processing time and launch delay."""
        return simulate(
            self.arrivals,
            self.policy,
            processing_time_s=self.processing_time_s,
            processing_jitter=processing_jitter,
            http_connections=self.http_connections,
            launch_delay_s=self.launch_delay_s,
            initial_instances=self.initial,
            seed=seed,
        )


def _queue_metrics(sqs: Any, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attrs.get(names[0], 0)), int(attrs.get(names[1], 0))
