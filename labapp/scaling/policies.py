"""Autoscaling policies for a worker fleet, as pure objects that a driver feeds with metrics.

One interface, two drivers: `labapp.simulate` calls `decide()` once per simulated tick, and a live
fleet controller can call it once per (compressed) tick with real queue metrics. A policy never
reads a clock; `now` is passed in, in seconds.

Elastic Beanstalk's own trigger (`aws:autoscaling:trigger`) cannot watch the queue: `QueueDepth` is
NOT a valid `MeasureName` and no SQS metric is offered (see `EB_MEASURE_NAMES`). What teams really
run is a CloudWatch alarm on `AWS/SQS ApproximateNumberOfMessagesVisible` plus a scaling policy on
the environment's Auto Scaling group; `ThresholdPolicy` models that. AWS recommends target tracking
on backlog per instance instead; `TargetTrackingPolicy` models that.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple, Protocol

from labapp.errors import ConfigError

# MeasureName values that aws:autoscaling:trigger accepts; note that no SQS metric is among them.
EB_MEASURE_NAMES = frozenset(
    {
        "CPUUtilization",
        "NetworkIn",
        "NetworkOut",
        "DiskWriteOps",
        "DiskReadBytes",
        "DiskReadOps",
        "DiskWriteBytes",
        "Latency",
        "RequestCount",
        "HealthyHostCount",
        "UnhealthyHostCount",
        "TargetResponseTime",
    }
)

# EB's real defaults. EB writes Period and BreachDuration in minutes; this kit uses seconds throughout.
EB_TRIGGER_DEFAULTS: dict[str, str | int] = {
    "MeasureName": "NetworkOut",
    "Statistic": "Average",
    "Unit": "Bytes",
    "Period": 300,
    "EvaluationPeriods": 1,
    "BreachDuration": 300,
    "UpperThreshold": 6000000,
    "LowerThreshold": 2000000,
    "UpperBreachScaleIncrement": 1,
    "LowerBreachScaleIncrement": -1,
}
EB_ASG_DEFAULTS: dict[str, int] = {"MinSize": 1, "MaxSize": 4, "Cooldown": 360}


class Metrics(NamedTuple):
    """What CloudWatch would show at one instant: queue depth and group size."""

    visible: int  # AWS/SQS ApproximateNumberOfMessagesVisible
    in_flight: int  # AWS/SQS ApproximateNumberOfMessagesNotVisible
    in_service: int  # GroupInServiceInstances
    desired: int  # GroupDesiredCapacity

    @property
    def backlog_per_instance(self) -> float:
        """Return visible messages per in-service instance, counting an empty group as one."""
        # A backlog with no instance must still read as a breach, not as a division error.
        return self.visible / (self.in_service if self.in_service > 0 else 1)


class FleetState(NamedTuple):
    """What the Auto Scaling group knows about its instances; the driver rebuilds it on change."""

    desired: int
    pending: int = 0  # launched, not yet InService
    in_service_since: tuple[float, ...] = ()  # sorted times each InService instance entered service

    def warmed(self, now: float, warmup_s: float) -> int:
        """Count in-service instances that finished their warm-up by `now`."""
        return bisect.bisect_right(self.in_service_since, now - warmup_s)

    def warming(self, now: float, warmup_s: float) -> int:
        """Count instances still launching or warming up at `now`."""
        return self.pending + len(self.in_service_since) - self.warmed(now, warmup_s)


class Decision(NamedTuple):
    """A new desired capacity and the sentence a scaling-event log shows for it."""

    desired: int
    reason: str


class Policy(Protocol):
    """Anything that turns a stream of metrics into scaling decisions."""

    def reset(self) -> None:
        """Forget all samples, alarms and timers so a new run starts clean."""

    def decide(self, now: float, metrics: Metrics, fleet: FleetState) -> Decision | None:
        """Take one sample at `now` (seconds) and return a new desired capacity, or None."""


def target_from_latency(acceptable_latency_s: float, avg_processing_s: float, concurrency: int = 1) -> float:
    """Return the backlog-per-instance target AWS suggests: acceptable latency / time per message."""
    # AWS's example (10 s / 0.1 s = 100) assumes one message at a time; sqsd's HttpConnections
    # lets one instance work on `concurrency` messages at once, which divides its time per message.
    _number("acceptable_latency_s", acceptable_latency_s, 0, strict=True)
    _number("avg_processing_s", avg_processing_s, 0, strict=True)
    _whole("concurrency", concurrency, 1)
    return acceptable_latency_s * concurrency / avg_processing_s


def _whole(name: str, value: object, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number; got {value!r}.")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise ConfigError(f"{name} must be {bound}; got {value}.")


def _number(name: str, value: object, low: float, *, strict: bool, high: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{name} must be a number; got {value!r}.")
    if value < low or (strict and value == low):
        raise ConfigError(f"{name} must be {'more than' if strict else 'at least'} {low:g}; got {value}.")
    if value > high:
        raise ConfigError(f"{name} must be at most {high:g}; got {value}.")


def _check_sizes(min_size: int, max_size: int) -> None:
    _whole("MinSize", min_size, 0)
    _whole("MaxSize", max_size, 1)
    if max_size < min_size:
        raise ConfigError(f"MaxSize must be at least MinSize ({min_size}); got {max_size}.")


def _plain(value: float) -> str:
    """Return a metric value as people write it: 18,750 or 0.45, never 1.875e+04."""
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2g}"


def _clamp(value: int, low: int, high: int) -> int:
    return low if value < low else high if value > high else value


def _into_bounds(desired: int, low: int, high: int) -> Decision:
    # The group enforces MinSize/MaxSize at once, whatever the alarms or cooldown say.
    return Decision(_clamp(desired, low, high), "desired capacity outside MinSize..MaxSize")


_STATISTIC: dict[str, Callable[[list[float]], float]] = {
    "Average": lambda s: sum(s) / len(s),
    "Minimum": min,
    "Maximum": max,
    "Sum": sum,
}


@dataclasses.dataclass
class ThresholdPolicy:
    """A CloudWatch alarm pair plus simple scaling, named like EB's trigger and ASG options.

    The metric is messages visible per in-service instance (`Metrics.backlog_per_instance`),
    sampled at every `decide()` call, as if the driver published a custom metric each tick.
    Periods are aligned to multiples of `Period` from time 0; a period's statistic is known at the
    first call at or after its end. The high alarm (statistic > UpperThreshold) or low alarm
    (statistic < LowerThreshold) goes into ALARM after `periods_to_alarm` consecutive breaching
    periods and stays there until a period does not breach.

    BreachDuration vs Period x EvaluationPeriods: EB documents both ("how long the metric may be
    beyond its limit" and "how many consecutive periods") without saying how they combine. This
    model requires both, so the alarm needs max(EvaluationPeriods, ceil(BreachDuration / Period))
    periods. With EB's defaults (300 s, 1, 300 s) that is one period of five minutes.

    While an alarm is in ALARM, Auto Scaling keeps re-running its action (AWS: once a minute; here
    at every call), and `Cooldown` (seconds from the last action) decides when it may act again.
    AWS starts the cooldown when the launch completes, so real gaps are a little longer.
    """

    UpperThreshold: float
    LowerThreshold: float
    Statistic: str = "Average"
    Period: float = 300.0
    EvaluationPeriods: int = 1
    BreachDuration: float = 300.0
    UpperBreachScaleIncrement: int = 1
    LowerBreachScaleIncrement: int = -1
    MinSize: int = 1
    MaxSize: int = 4
    Cooldown: float = 360.0

    def __post_init__(self) -> None:
        if self.Statistic not in _STATISTIC:
            raise ConfigError(f"Statistic must be one of {', '.join(_STATISTIC)}; got {self.Statistic!r}.")
        _number("Period", self.Period, 0, strict=True)
        _whole("EvaluationPeriods", self.EvaluationPeriods, 1, 600)
        _number("BreachDuration", self.BreachDuration, 0, strict=True)
        _number("UpperThreshold", self.UpperThreshold, 0, strict=False)
        _number("LowerThreshold", self.LowerThreshold, 0, strict=False)
        if self.LowerThreshold >= self.UpperThreshold:
            raise ConfigError(
                f"LowerThreshold must be below UpperThreshold ({self.UpperThreshold}); got {self.LowerThreshold}."
            )
        _whole("UpperBreachScaleIncrement", self.UpperBreachScaleIncrement, 0)
        _whole("LowerBreachScaleIncrement", -self.LowerBreachScaleIncrement, 0)
        _check_sizes(self.MinSize, self.MaxSize)
        _number("Cooldown", self.Cooldown, 0, strict=False)
        self.periods_to_alarm = max(self.EvaluationPeriods, math.ceil(self.BreachDuration / self.Period))
        self.reset()

    def reset(self) -> None:
        """Forget all samples, alarms and the cooldown so a new run starts clean."""
        self._period_end = -math.inf
        self._samples: list[float] = []
        self._high_run = 0
        self._low_run = 0
        self._alarm = 0  # +1 high alarm in ALARM, -1 low alarm in ALARM, 0 both OK
        self._last_value = 0.0
        self._last_action = -math.inf

    def decide(self, now: float, metrics: Metrics, fleet: FleetState) -> Decision | None:
        """Record one sample, close a finished period, and return a scaling action if one is due."""
        if now >= self._period_end:
            self._close_period(now)
        self._samples.append(metrics.visible / (metrics.in_service if metrics.in_service > 0 else 1))
        desired = fleet.desired
        if not self.MinSize <= desired <= self.MaxSize:
            return _into_bounds(desired, self.MinSize, self.MaxSize)
        if self._alarm == 0 or now < self._last_action + self.Cooldown:
            return None
        return self._act(now, desired)

    def _close_period(self, now: float) -> None:
        samples = self._samples
        if samples:
            value = _STATISTIC[self.Statistic](samples)
            self._last_value = value
            self._high_run = self._high_run + 1 if value > self.UpperThreshold else 0
            self._low_run = self._low_run + 1 if value < self.LowerThreshold else 0
            if self._high_run >= self.periods_to_alarm:
                self._alarm = 1
            elif self._low_run >= self.periods_to_alarm:
                self._alarm = -1
            else:
                self._alarm = 0
            self._samples = []
        self._period_end = (math.floor(now / self.Period) + 1) * self.Period

    def _act(self, now: float, desired: int) -> Decision | None:
        high = self._alarm > 0
        step = self.UpperBreachScaleIncrement if high else self.LowerBreachScaleIncrement
        new = _clamp(desired + step, self.MinSize, self.MaxSize)
        if new == desired:
            return None
        self._last_action = now
        sign, limit = (">", self.UpperThreshold) if high else ("<", self.LowerThreshold)
        return Decision(
            new,
            f"{self.Statistic} messages visible per instance {_plain(self._last_value)} {sign} {limit:g} "
            f"for {self.periods_to_alarm} period(s) of {self.Period:g} s",
        )


@dataclasses.dataclass
class TargetTrackingPolicy:
    """Target tracking on backlog per instance, AWS's recommended way to scale on an SQS queue.

    Backlog is ApproximateNumberOfMessages (the visible messages); the metric is backlog divided by
    in-service instances that have finished `InstanceWarmup`, averaged into one datapoint every
    `DatapointPeriod` seconds. Desired capacity is ceil(backlog / TargetValue) within MinSize..MaxSize.

    Like the two alarms AWS creates for a target tracking policy, this scales out after
    `ScaleOutDatapoints` (3) datapoints above the target, and scales in only after
    `ScaleInDatapoints` (15) datapoints below `ScaleInFraction` (90 %) of it: fast out, slow in,
    because a missing instance costs latency at once while a spare one only costs money.
    Warm-up: instances still warming up count toward desired capacity but not toward the metric, so
    a scale-out already under way is not repeated; scale-in waits until no instance is warming up.

    Scale-in removes at most `ScaleInStep` instances (default 1; None: straight to the computed
    capacity), and the low-datapoint count then starts again. This is a choice of this model:
    a fleet with enough capacity shows almost no backlog, so the formula alone would drop it to
    MinSize, rebuild the backlog, and thrash; stepping down lets it follow a slow decline.
    """

    TargetValue: float
    InstanceWarmup: float = 300.0
    DisableScaleIn: bool = False
    MinSize: int = 1
    MaxSize: int = 4
    DatapointPeriod: float = 60.0
    ScaleOutDatapoints: int = 3
    ScaleInDatapoints: int = 15
    ScaleInFraction: float = 0.9
    ScaleInStep: int | None = 1

    def __post_init__(self) -> None:
        _number("TargetValue", self.TargetValue, 0, strict=True)
        _number("InstanceWarmup", self.InstanceWarmup, 0, strict=False)
        if not isinstance(self.DisableScaleIn, bool):
            raise ConfigError(f"DisableScaleIn must be True or False; got {self.DisableScaleIn!r}.")
        _check_sizes(self.MinSize, self.MaxSize)
        _number("DatapointPeriod", self.DatapointPeriod, 0, strict=True)
        _whole("ScaleOutDatapoints", self.ScaleOutDatapoints, 1)
        _whole("ScaleInDatapoints", self.ScaleInDatapoints, 1)
        _number("ScaleInFraction", self.ScaleInFraction, 0, strict=True, high=1)
        if self.ScaleInStep is not None:
            _whole("ScaleInStep", self.ScaleInStep, 1)
        self.reset()

    def reset(self) -> None:
        """Forget all samples and datapoint counts so a new run starts clean."""
        self._period_end = -math.inf
        self._visible_sum = 0
        self._count = 0
        self._high_run = 0
        self._low_run = 0

    def decide(self, now: float, metrics: Metrics, fleet: FleetState) -> Decision | None:
        """Record one sample and, when a datapoint completes, return a new capacity if one is due."""
        decision = self._close_period(now, fleet) if now >= self._period_end else None
        self._visible_sum += metrics.visible
        self._count += 1
        if decision is None and not self.MinSize <= fleet.desired <= self.MaxSize:
            return _into_bounds(fleet.desired, self.MinSize, self.MaxSize)
        return decision

    def _close_period(self, now: float, fleet: FleetState) -> Decision | None:
        self._period_end = (math.floor(now / self.DatapointPeriod) + 1) * self.DatapointPeriod
        if self._count == 0:
            return None
        backlog = self._visible_sum / self._count
        self._visible_sum = 0
        self._count = 0
        warmed = fleet.warmed(now, self.InstanceWarmup)
        value = backlog / (warmed if warmed > 0 else 1)
        self._high_run = self._high_run + 1 if value > self.TargetValue else 0
        self._low_run = self._low_run + 1 if value < self.ScaleInFraction * self.TargetValue else 0
        needed = _clamp(math.ceil(backlog / self.TargetValue), self.MinSize, self.MaxSize)
        why = f"backlog {backlog:.0f} / target {self.TargetValue:g} per instance"
        if self._high_run >= self.ScaleOutDatapoints and needed > fleet.desired:
            return Decision(needed, f"{why} for {self._high_run} datapoint(s) above target")
        if (
            self._low_run >= self.ScaleInDatapoints
            and not self.DisableScaleIn
            and needed < fleet.desired
            and fleet.warming(now, self.InstanceWarmup) == 0
        ):
            self._low_run = 0
            if self.ScaleInStep is not None:
                needed = max(needed, fleet.desired - self.ScaleInStep)
            return Decision(needed, f"{why} for {self.ScaleInDatapoints} datapoints below target")
        return None
