"""Scaling policies driven by hand, one second per call, with answers worked out on paper."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from labapp.errors import ConfigError
from labapp.scaling.policies import (
    EB_ASG_DEFAULTS,
    EB_MEASURE_NAMES,
    EB_TRIGGER_DEFAULTS,
    Decision,
    FleetState,
    Metrics,
    Policy,
    TargetTrackingPolicy,
    ThresholdPolicy,
    target_from_latency,
)

WARM = -math.inf


class FakeFleet:
    """A group that applies decisions at once and puts launches in service `launch_s` later."""

    def __init__(self, desired: int, launch_s: float = 0.0) -> None:
        self.desired = desired
        self.launch_s = launch_s
        self.since: list[float] = [WARM] * desired
        self.pending: list[float] = []

    def state(self, now: float) -> FleetState:
        ready = [t for t in self.pending if t <= now]
        self.pending = [t for t in self.pending if t > now]
        self.since.extend(ready)
        return FleetState(self.desired, len(self.pending), tuple(self.since))

    def apply(self, now: float, decision: Decision) -> None:
        if decision.desired > self.desired:
            self.pending += [now + self.launch_s] * (decision.desired - self.desired)
        for _ in range(self.desired - decision.desired):
            (self.pending or self.since).pop()
        self.desired = decision.desired


def drive(
    policy: Policy,
    visible: Callable[[int], int],
    seconds: int,
    fleet: FakeFleet,
    in_service: int | None = None,
) -> list[tuple[int, int]]:
    """Feed `policy` one sample a second and return (second, new desired) for each decision."""
    decisions = []
    for t in range(seconds):
        state = fleet.state(t)
        count = len(state.in_service_since) if in_service is None else in_service
        decision = policy.decide(t, Metrics(visible(t), 0, count, fleet.desired), state)
        if decision is not None:
            decisions.append((t, decision.desired))
            fleet.apply(t, decision)
    return decisions


def threshold(**options: object) -> ThresholdPolicy:
    base: dict[str, object] = {
        "UpperThreshold": 10,
        "LowerThreshold": 1,
        "Period": 60,
        "EvaluationPeriods": 2,
        "BreachDuration": 120,
        "Cooldown": 90,
    }
    return ThresholdPolicy(**{**base, **options})  # type: ignore[arg-type]


# --- ThresholdPolicy -----------------------------------------------------------------------------


def test_alarm_fires_after_two_breaching_periods_then_cooldown_spaces_actions() -> None:
    # Periods [0,60) and [60,120) breach; their statistic is known at t=120. The alarm stays in
    # ALARM, so the next action waits exactly Cooldown (90 s), then MaxSize (4) stops it.
    decisions = drive(threshold(), lambda t: 50, 600, FakeFleet(1), in_service=1)
    assert decisions == [(120, 2), (210, 3), (300, 4)]


def test_breach_duration_longer_than_periods_needs_more_periods() -> None:
    policy = threshold(EvaluationPeriods=1, BreachDuration=180)
    assert policy.periods_to_alarm == 3
    assert drive(policy, lambda t: 50, 200, FakeFleet(1), in_service=1)[0] == (180, 2)


def test_eb_defaults_alarm_after_one_five_minute_period() -> None:
    policy = ThresholdPolicy(UpperThreshold=10, LowerThreshold=1)
    assert policy.periods_to_alarm == 1
    assert drive(policy, lambda t: 50, 700, FakeFleet(1), in_service=1) == [(300, 2), (660, 3)]


def test_one_breach_then_a_quiet_period_does_not_alarm() -> None:
    decisions = drive(threshold(), lambda t: 50 if t < 60 else 5, 400, FakeFleet(1), in_service=1)
    assert decisions == []


@pytest.mark.parametrize(("statistic", "fires"), [("Average", False), ("Maximum", True), ("Sum", True)])
def test_statistic_is_taken_over_the_period_samples(statistic: str, fires: bool) -> None:
    # One sample of 300 in a period of 60 zeros: Average 5, Maximum 300, Sum 300.
    policy = threshold(Statistic=statistic, EvaluationPeriods=1, BreachDuration=60, LowerThreshold=0)
    decisions = drive(policy, lambda t: 300 if t == 30 else 0, 61, FakeFleet(1), in_service=1)
    assert decisions == ([(60, 2)] if fires else [])


def test_minimum_needs_every_sample_to_breach() -> None:
    policy = threshold(Statistic="Minimum", EvaluationPeriods=1, BreachDuration=60)
    assert drive(policy, lambda t: 0 if t == 30 else 50, 61, FakeFleet(1), in_service=1) == []
    policy = threshold(Statistic="Minimum", EvaluationPeriods=1, BreachDuration=60)
    assert drive(policy, lambda t: 11, 61, FakeFleet(1), in_service=1) == [(60, 2)]


def test_metric_is_messages_per_in_service_instance() -> None:
    # 40 visible over 4 instances is 10 per instance: not above UpperThreshold 10.
    policy = threshold(EvaluationPeriods=1, BreachDuration=60, MaxSize=8)
    assert drive(policy, lambda t: 40, 200, FakeFleet(4), in_service=4) == []
    assert Metrics(40, 0, 4, 4).backlog_per_instance == 10
    assert Metrics(7, 0, 0, 1).backlog_per_instance == 7  # no instance: counted as one


def test_low_alarm_scales_in_one_at_a_time_down_to_min_size() -> None:
    policy = threshold(Cooldown=30, MinSize=1, EvaluationPeriods=1, BreachDuration=60)
    assert drive(policy, lambda t: 0, 300, FakeFleet(3), in_service=3) == [(60, 2), (90, 1)]


def test_desired_outside_bounds_is_pulled_in_at_once() -> None:
    policy = threshold(MinSize=2, MaxSize=3)
    assert policy.decide(0, Metrics(0, 0, 1, 1), FleetState(1)) == (
        2,
        "desired capacity outside MinSize..MaxSize",
    )
    assert policy.decide(1, Metrics(0, 0, 5, 5), FleetState(5))[0] == 3  # type: ignore[index]


def test_reset_forgets_alarm_and_cooldown() -> None:
    policy = threshold()
    first = drive(policy, lambda t: 50, 300, FakeFleet(1), in_service=1)
    policy.reset()
    assert drive(policy, lambda t: 50, 300, FakeFleet(1), in_service=1) == first


def test_reason_names_the_statistic_and_threshold() -> None:
    policy = threshold(EvaluationPeriods=1, BreachDuration=60)
    fleet = FleetState(1, 0, (WARM,))
    reasons = [policy.decide(t, Metrics(50, 0, 1, 1), fleet) for t in range(61)]
    decision = reasons[60]
    assert decision is not None
    assert "Average" in decision.reason and "> 10" in decision.reason


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"Statistic": "Median"}, "Statistic"),
        ({"Period": 0}, "Period"),
        ({"EvaluationPeriods": 0}, "EvaluationPeriods"),
        ({"EvaluationPeriods": 1.5}, "EvaluationPeriods"),
        ({"BreachDuration": -1}, "BreachDuration"),
        ({"UpperThreshold": -1}, "UpperThreshold"),
        ({"LowerThreshold": 20}, "LowerThreshold"),
        ({"UpperBreachScaleIncrement": -1}, "UpperBreachScaleIncrement"),
        ({"LowerBreachScaleIncrement": 1}, "LowerBreachScaleIncrement"),
        ({"MinSize": -1}, "MinSize"),
        ({"MaxSize": 0}, "MaxSize"),
        ({"MinSize": 5, "MaxSize": 4}, "MaxSize"),
        ({"Cooldown": -5}, "Cooldown"),
    ],
)
def test_threshold_option_errors_name_the_option(options: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name} must") as info:
        threshold(**options)
    assert str(info.value).count(".") >= 1 and "\n" not in str(info.value)


def test_eb_constants_match_the_platform() -> None:
    assert EB_TRIGGER_DEFAULTS["Statistic"] == "Average"
    assert EB_TRIGGER_DEFAULTS["Period"] == 300 and EB_TRIGGER_DEFAULTS["BreachDuration"] == 300
    assert EB_TRIGGER_DEFAULTS["EvaluationPeriods"] == 1
    assert (
        EB_TRIGGER_DEFAULTS["UpperBreachScaleIncrement"],
        EB_TRIGGER_DEFAULTS["LowerBreachScaleIncrement"],
    ) == (
        1,
        -1,
    )
    assert EB_ASG_DEFAULTS == {"MinSize": 1, "MaxSize": 4, "Cooldown": 360}
    assert "QueueDepth" not in EB_MEASURE_NAMES
    defaults = ThresholdPolicy(UpperThreshold=10, LowerThreshold=1)
    assert (defaults.MinSize, defaults.MaxSize, defaults.Cooldown, defaults.Period) == (1, 4, 360, 300)


# --- TargetTrackingPolicy ------------------------------------------------------------------------


def tracking(**options: object) -> TargetTrackingPolicy:
    base: dict[str, object] = {"TargetValue": 100, "MaxSize": 20}
    return TargetTrackingPolicy(**{**base, **options})  # type: ignore[arg-type]


def test_target_from_latency_matches_aws_example() -> None:
    assert target_from_latency(10, 0.1) == pytest.approx(100)
    assert target_from_latency(60, 10, concurrency=50) == pytest.approx(300)
    with pytest.raises(ConfigError, match=r"^avg_processing_s"):
        target_from_latency(10, 0)
    with pytest.raises(ConfigError, match=r"^acceptable_latency_s"):
        target_from_latency(-1, 1)
    with pytest.raises(ConfigError, match=r"^concurrency"):
        target_from_latency(10, 1, concurrency=0)


def test_scale_out_to_ceil_backlog_over_target_after_three_datapoints() -> None:
    # Datapoints close at 60, 120 and 180; the third above target scales out to ceil(950/100).
    assert drive(tracking(), lambda t: 950, 200, FakeFleet(1, launch_s=1000)) == [(180, 10)]


def test_scale_out_is_capped_by_max_size() -> None:
    assert drive(tracking(MaxSize=6), lambda t: 950, 200, FakeFleet(1)) == [(180, 6)]


def test_warming_instances_count_toward_capacity_so_scale_out_is_not_repeated() -> None:
    # The nine new instances are in service at 240 and warm until 540; the metric stays above
    # target (950 over one warm instance) but 10 are already on the way, so nothing more happens.
    fleet = FakeFleet(1, launch_s=60)
    assert drive(tracking(InstanceWarmup=300), lambda t: 950, 600, fleet) == [(180, 10)]


def test_scale_out_continues_when_backlog_grows_during_warm_up() -> None:
    fleet = FakeFleet(1, launch_s=60)
    decisions = drive(tracking(InstanceWarmup=300), lambda t: 950 if t < 240 else 1450, 400, fleet)
    assert decisions == [(180, 10), (300, 15)]


def test_scale_in_waits_for_warm_up_to_finish() -> None:
    # Backlog vanishes at 240: 15 low datapoints are there at 1140 (300..1140), but the instances
    # that entered service at 240 warm up until 1440, the first datapoint after that scales in.
    fleet = FakeFleet(1, launch_s=60)
    decisions = drive(tracking(InstanceWarmup=1200), lambda t: 950 if t < 240 else 0, 1500, fleet)
    assert decisions == [(180, 10), (1440, 9)]


def test_scale_in_only_after_fifteen_low_datapoints_one_step_at_a_time() -> None:
    decisions = drive(tracking(), lambda t: 0, 1900, FakeFleet(5))
    assert decisions == [(900, 4), (1800, 3)]


def test_one_high_datapoint_restarts_the_scale_in_count() -> None:
    # The datapoint closed at 600 covers [540, 600) and is above 90 % of target.
    decisions = drive(tracking(), lambda t: 95 * 5 if 540 <= t < 600 else 0, 1600, FakeFleet(5))
    assert decisions == [(1500, 4)]


def test_scale_in_without_step_limit_goes_straight_to_the_computed_capacity() -> None:
    decisions = drive(tracking(ScaleInStep=None, MinSize=2), lambda t: 0, 1000, FakeFleet(8))
    assert decisions == [(900, 2)]


def test_disable_scale_in_keeps_capacity() -> None:
    assert drive(tracking(DisableScaleIn=True), lambda t: 0, 3000, FakeFleet(5)) == []


def test_fleet_state_counts_warm_and_warming_instances() -> None:
    state = FleetState(desired=5, pending=1, in_service_since=(WARM, 100.0, 200.0, 250.0))
    # The instance in service since 200 has just finished a 200 s warm-up at 400.
    assert state.warmed(now=400, warmup_s=200) == 3
    assert state.warming(now=400, warmup_s=200) == 2  # one pending, one since 250


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"TargetValue": 0}, "TargetValue"),
        ({"TargetValue": "100"}, "TargetValue"),
        ({"InstanceWarmup": -1}, "InstanceWarmup"),
        ({"DisableScaleIn": "yes"}, "DisableScaleIn"),
        ({"MinSize": 3, "MaxSize": 2}, "MaxSize"),
        ({"DatapointPeriod": 0}, "DatapointPeriod"),
        ({"ScaleOutDatapoints": 0}, "ScaleOutDatapoints"),
        ({"ScaleInDatapoints": 0}, "ScaleInDatapoints"),
        ({"ScaleInFraction": 1.5}, "ScaleInFraction"),
        ({"ScaleInStep": 0}, "ScaleInStep"),
    ],
)
def test_tracking_option_errors_name_the_option(options: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name} must"):
        tracking(**options)


def test_reasons_print_metric_values_as_plain_numbers() -> None:
    # A learner reads "18,750", not "1.875e+04", in the scaling log of notebook 07.
    policy = ThresholdPolicy(UpperThreshold=10, LowerThreshold=0.5, Period=60, BreachDuration=60)
    fleet = FleetState(1, 0, (-math.inf,))
    decisions = [policy.decide(t, Metrics(18_750, 0, 1, 1), fleet) for t in range(61)]
    reason = next(d for d in decisions if d is not None).reason
    assert "18,750 > 10" in reason and "e+" not in reason
