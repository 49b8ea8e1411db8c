"""A fast, deterministic simulator of a worker fleet scaling on an SQS queue.

The model, in one paragraph: messages arrive each second and wait in the queue (visible). Each
in-service instance offers `http_connections` slots, and a slot works through messages back to
back, so a busy fleet starts in_service x http_connections x tick_s / processing_time_s messages per
tick; by the renewal central limit theorem that count varies with a standard deviation of
processing_jitter x sqrt(mean), where processing_jitter is the coefficient of variation of one
message's processing time. Messages start in arrival order (FIFO by age). A new instance is in
service `launch_delay_s` after the policy asks for it; a removed instance drains its slots first.
Waits are whole ticks; a message's latency is its wait plus its own (lognormal) processing time.

Units: seconds for every time, messages per second for arrivals (summed into ticks when tick_s > 1).
`seed` drives only the fleet's noise and processing times; a profile takes its own seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import NamedTuple

import numpy as np

from labapp.errors import ConfigError
from labapp.scaling.policies import FleetState, Metrics, Policy
from labapp.scaling.units import require_positive

# Latency is kept for every message up to this many, else for this many evenly spaced ones.
LATENCY_SAMPLE = 100_000


class ScalingEvent(NamedTuple):
    """One change of desired capacity, as a scaling-activity log would show it."""

    time_s: float
    from_desired: int
    to_desired: int
    reason: str


@dataclasses.dataclass(frozen=True, eq=False)
class Timeline:
    """Everything one run produced: per-tick arrays, message latencies and scaling events."""

    tick_s: float
    time_s: np.ndarray  # start of each tick, seconds
    arrivals: np.ndarray  # messages sent during the tick
    visible: np.ndarray  # waiting at the end of the tick (ApproximateNumberOfMessagesVisible)
    in_flight: np.ndarray  # being processed (ApproximateNumberOfMessagesNotVisible), by Little's law
    started: np.ndarray  # messages handed to a slot during the tick
    desired: np.ndarray  # desired capacity at the end of the tick (billed instances)
    in_service: np.ndarray  # instances in service at the end of the tick
    oldest_age_s: np.ndarray  # age of the oldest visible message (ApproximateAgeOfOldestMessage)
    latency_s: np.ndarray  # wait + processing per message, arrival order (see LATENCY_SAMPLE)
    events: list[ScalingEvent]
    instance_hours: float  # desired capacity integrated over time: launching instances are billed too
    unfinished: int  # still waiting at the end; in latency_s they wait until the end (a lower bound)

    def summary(self) -> dict[str, float]:
        """Return the headline numbers of the run: latency percentiles, backlog, cost, actions."""
        lat = self.latency_s
        p50, p90, p99 = np.percentile(lat, [50, 90, 99]) if lat.size else (math.nan,) * 3
        return {
            "messages": int(self.arrivals.sum()),
            "latency_p50_s": float(p50),
            "latency_p90_s": float(p90),
            "latency_p99_s": float(p99),
            "max_backlog": int(self.visible.max(initial=0)),
            "max_oldest_age_s": float(self.oldest_age_s.max(initial=0.0)),
            "instance_hours": self.instance_hours,
            "max_instances": int(self.desired.max(initial=0)),
            "scaling_actions": len(self.events),
            "unfinished": self.unfinished,
        }


def simulate(
    arrivals: np.ndarray,
    policy: Policy,
    *,
    processing_time_s: float = 10.0,
    processing_jitter: float = 0.5,
    http_connections: int = 50,
    launch_delay_s: float = 180.0,
    initial_instances: int | None = None,
    tick_s: float = 1.0,
    seed: int = 0,
) -> Timeline:
    """Run `policy` against `arrivals` (messages per second) and return what happened at each tick.

    processing_time_s is the mean time one message holds one of sqsd's `http_connections` slots
    (the HttpConnections option), processing_jitter its coefficient of variation. launch_delay_s runs
    from the scaling decision to InService. initial_instances defaults to the policy's MinSize and
    starts warm. tick_s must be whole seconds. `seed` makes the run repeatable.
    """
    require_positive("processing_time_s", processing_time_s)
    require_positive("processing_jitter", processing_jitter, allow_zero=True)
    require_positive("launch_delay_s", launch_delay_s, allow_zero=True)
    if isinstance(http_connections, bool) or not isinstance(http_connections, int) or http_connections < 1:
        raise ConfigError(f"http_connections must be a whole number of 1 or more; got {http_connections!r}.")
    if not (tick_s >= 1 and float(tick_s).is_integer()):
        raise ConfigError(f"tick_s must be a whole number of seconds, 1 or more; got {tick_s}.")
    if initial_instances is None:
        initial_instances = int(getattr(policy, "MinSize", 1))
    if initial_instances < 0:
        raise ConfigError(f"initial_instances must be 0 or more; got {initial_instances}.")
    per_tick = _per_tick(np.asarray(arrivals, dtype=np.int64), int(tick_s))
    policy.reset()
    rng = np.random.default_rng(seed)
    n = per_tick.size
    model = _Model(
        rate=http_connections * tick_s / processing_time_s,
        jitter=processing_jitter,
        slots=http_connections,
        busy_ticks=processing_time_s / tick_s,
        launch_delay_s=launch_delay_s,
        tick_s=float(tick_s),
    )
    visible, started, in_flight, in_service, desired, events = _run(
        per_tick, policy, rng.standard_normal(n).tolist(), model, initial_instances
    )
    cum_arrived = np.cumsum(per_tick)
    cum_started = np.cumsum(started)
    times = np.arange(n) * tick_s
    return Timeline(
        tick_s=float(tick_s),
        time_s=times,
        arrivals=per_tick,
        visible=visible,
        in_flight=in_flight,
        started=started,
        desired=desired,
        in_service=in_service,
        oldest_age_s=_oldest_age(cum_arrived, cum_started, visible) * tick_s,
        latency_s=_latencies(cum_arrived, cum_started, tick_s, processing_time_s, processing_jitter, rng),
        events=events,
        instance_hours=float(desired.sum()) * tick_s / 3600.0,
        unfinished=int(visible[-1]) if n else 0,
    )


def _per_tick(arrivals: np.ndarray, tick: int) -> np.ndarray:
    if arrivals.ndim != 1 or (arrivals.size and arrivals.min() < 0):
        raise ConfigError("arrivals must be a one-dimensional array of message counts, 0 or more.")
    if tick == 1:
        return arrivals.copy()
    padded = np.zeros(-(-arrivals.size // tick) * tick, dtype=np.int64)
    padded[: arrivals.size] = arrivals
    return padded.reshape(-1, tick).sum(axis=1)


class _Model(NamedTuple):
    rate: float  # messages a busy instance starts per tick
    jitter: float  # coefficient of variation of one message's processing time
    slots: int  # HttpConnections
    busy_ticks: float  # processing time in ticks
    launch_delay_s: float
    tick_s: float


def _run(
    arrivals: np.ndarray, policy: Policy, z: list[float], model: _Model, initial: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[ScalingEvent]]:
    # The per-tick body is kept to plain int/float arithmetic on locals: it runs 86,400 times a day.
    rate, jitter, slots, busy_ticks, launch_delay_s, tick_s = model
    n = arrivals.size
    # Standard deviation of a tick's starts for each fleet size, grown when the fleet outgrows it.
    sd = [jitter * math.sqrt(k * rate) for k in range(2 * initial + 2)]
    visible_out = [0] * n
    started_out = [0] * n
    flight_out = [0] * n
    # (tick, in_service, desired) at each change, expanded to arrays at the end.
    changes: list[tuple[int, int, int]] = [(0, initial, initial)]
    events: list[ScalingEvent] = []
    pending: deque[float] = deque()
    since: list[float] = [-math.inf] * initial  # initial instances are warm from the start
    in_service = desired = initial
    # Derived from in_service, recomputed only when the fleet changes.
    mean_starts, sd_starts, max_flight = in_service * rate, sd[in_service], in_service * slots
    next_ready = math.inf
    fleet = FleetState(desired, 0, tuple(since))
    visible = 0
    carry = 0.0
    decide = policy.decide
    # tuple.__new__ skips the Python-level NamedTuple constructor: a third of the per-tick cost.
    new_metrics = tuple.__new__
    for t, (arrived, noise) in enumerate(zip(arrivals.tolist(), z, strict=True)):
        now = t * tick_s
        if now >= next_ready:
            while pending and pending[0] <= now:
                pending.popleft()
                since.append(now)
            next_ready = pending[0] if pending else math.inf
            in_service = len(since)
            if in_service >= len(sd):
                sd.extend(jitter * math.sqrt(k * rate) for k in range(len(sd), 2 * in_service + 1))
            mean_starts, sd_starts, max_flight = in_service * rate, sd[in_service], in_service * slots
            fleet = FleetState(desired, len(pending), tuple(since))
            changes.append((t, in_service, desired))
        visible += arrived
        capacity = mean_starts + sd_starts * noise + carry
        whole = int(capacity) if capacity > 0 else 0
        if visible > whole:
            start = whole
            carry = capacity - whole
        else:
            start = visible
            carry = 0.0
        visible -= start
        visible_out[t] = visible
        started_out[t] = start
        in_flight = start * busy_ticks  # Little's law
        if in_flight > max_flight:
            in_flight = max_flight
        flight_out[t] = flight = int(in_flight)
        decision = decide(now, new_metrics(Metrics, (visible, flight, in_service, desired)), fleet)
        if decision is not None and decision.desired != desired:
            new = max(decision.desired, 0)
            events.append(ScalingEvent(now, desired, new, decision.reason))
            if new > desired:
                pending.extend([now + launch_delay_s] * (new - desired))
                next_ready = pending[0]
            else:
                # Cancel launches first, then retire the newest instances (they are the least warm).
                for _ in range(desired - new):
                    if pending:
                        pending.pop()
                    else:
                        since.pop()
                next_ready = pending[0] if pending else math.inf
                in_service = len(since)
                mean_starts, sd_starts, max_flight = in_service * rate, sd[in_service], in_service * slots
            desired = new
            fleet = FleetState(desired, len(pending), tuple(since))
            changes.append((t, in_service, desired))
    return (
        np.asarray(visible_out, dtype=np.int64),
        np.asarray(started_out, dtype=np.int64),
        np.asarray(flight_out, dtype=np.int64),
        *_expand(changes, n),
        events,
    )


def _expand(changes: list[tuple[int, int, int]], n: int) -> tuple[np.ndarray, np.ndarray]:
    # A later change at the same tick wins: the value at the end of the tick is what counts.
    table = np.asarray(changes, dtype=np.int64)
    index = np.searchsorted(table[:, 0], np.arange(n), side="right") - 1
    return table[index, 1], table[index, 2]


def _oldest_age(cum_arrived: np.ndarray, cum_started: np.ndarray, visible: np.ndarray) -> np.ndarray:
    # The oldest waiting message is number cum_started + 1 in arrival order.
    arrived_at = np.searchsorted(cum_arrived, cum_started + 1, side="left")
    age = np.arange(visible.size) - arrived_at
    return np.where(visible > 0, age, 0).astype(np.float64)


def _latencies(
    cum_arrived: np.ndarray,
    cum_started: np.ndarray,
    tick_s: float,
    processing_time_s: float,
    jitter: float,
    rng: np.random.Generator,
) -> np.ndarray:
    total = int(cum_arrived[-1]) if cum_arrived.size else 0
    if total == 0:
        return np.zeros(0)
    # Message k (1-based, arrival order) arrived in the first tick where cum_arrived >= k and started
    # in the first tick where cum_started >= k; both are step functions of k, so between the union
    # of their breakpoints every message waits the same number of ticks.
    # Both inputs are sorted, so a stable sort only merges two runs (np.unique is far slower).
    breaks = np.sort(np.concatenate((cum_arrived, cum_started)), kind="stable")
    breaks = breaks[np.flatnonzero(np.diff(breaks, prepend=0))]
    arrived_at = np.searchsorted(cum_arrived, breaks, side="left")
    started_at = np.searchsorted(cum_started, breaks, side="left")  # == n when never started
    wait = (started_at - arrived_at) * tick_s
    if total <= LATENCY_SAMPLE:
        waits = np.repeat(wait, np.diff(breaks, prepend=0))
    else:
        # Evenly spaced messages in arrival order: a deterministic, stratified sample.
        picks = (np.arange(LATENCY_SAMPLE) * total) // LATENCY_SAMPLE + 1
        waits = wait[np.searchsorted(breaks, picks, side="left")]
    sigma2 = math.log1p(jitter * jitter)
    service = rng.lognormal(math.log(processing_time_s) - sigma2 / 2, math.sqrt(sigma2), waits.size)
    return waits + service
