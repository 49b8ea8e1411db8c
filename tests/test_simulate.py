"""The fleet simulator and traffic profiles: hand-worked small runs, determinism, a flash sale."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labapp.errors import ConfigError
from labapp.scaling.policies import (
    Decision,
    FleetState,
    Metrics,
    TargetTrackingPolicy,
    ThresholdPolicy,
    target_from_latency,
)
from labapp.scaling.simulate import ScalingEvent, Timeline, simulate
from labapp.scaling.traffic import bursty, diurnal, from_csv, order_flash_sale, spike, steady

# Deterministic service: no jitter, so an instance starts exactly http_connections / processing_time_s a second.
EXACT: dict[str, Any] = {"processing_time_s": 1.0, "processing_jitter": 0.0}


class Scripted:
    """A policy that asks for given capacities at given seconds and records what it saw."""

    def __init__(self, plan: dict[float, int] | None = None) -> None:
        self.plan = plan or {}
        self.seen: list[tuple[float, Metrics, FleetState]] = []

    def reset(self) -> None:
        self.seen = []

    def decide(self, now: float, metrics: Metrics, fleet: FleetState) -> Decision | None:
        self.seen.append((now, metrics, fleet))
        return Decision(self.plan[now], "scripted") if now in self.plan else None


def test_fifo_queue_by_hand() -> None:
    # One instance with 2 slots and 1 s per message starts 2 messages a tick.
    tl = simulate(np.array([5, 0, 0, 0]), Scripted(), http_connections=2, **EXACT)
    assert tl.visible.tolist() == [3, 1, 0, 0]
    assert tl.started.tolist() == [2, 2, 1, 0]
    assert tl.in_flight.tolist() == [2, 2, 1, 0]
    assert tl.oldest_age_s.tolist() == [0, 1, 0, 0]
    # Waits 0, 0, 1, 1, 2 ticks, plus exactly 1 s of processing each.
    assert sorted(tl.latency_s.tolist()) == [1, 1, 2, 2, 3]
    assert tl.unfinished == 0


def test_policy_sees_end_of_tick_metrics() -> None:
    policy = Scripted()
    simulate(np.array([5, 0]), policy, http_connections=2, **EXACT)
    assert policy.seen[0][0] == 0.0
    assert policy.seen[0][1] == Metrics(visible=3, in_flight=2, in_service=1, desired=1)


def test_fractional_capacity_carries_over() -> None:
    # One slot at 3 s per message: a busy instance starts one message every 3 ticks.
    tl = simulate(
        np.full(300, 5), Scripted(), http_connections=1, processing_time_s=3.0, processing_jitter=0.0
    )
    assert 99 <= tl.started.sum() <= 100
    assert tl.started.max() == 1


def test_messages_never_started_count_up_to_the_end() -> None:
    tl = simulate(np.array([3, 0, 0]), Scripted(), initial_instances=0, **EXACT)
    assert tl.visible.tolist() == [3, 3, 3]
    assert tl.unfinished == 3
    assert tl.latency_s.tolist() == [4, 4, 4]  # waited 3 ticks to the end, plus 1 s of service


def test_launch_delay_holds_back_in_service_count() -> None:
    tl = simulate(np.zeros(60, dtype=int), Scripted({10.0: 3}), launch_delay_s=30, **EXACT)
    assert tl.desired[9] == 1 and tl.desired[10] == 3
    assert tl.in_service[39] == 1 and tl.in_service[40] == 3
    assert tl.events == [ScalingEvent(10.0, 1, 3, "scripted")]


def test_scale_in_cancels_pending_launches_first() -> None:
    tl = simulate(np.zeros(60, dtype=int), Scripted({10.0: 3, 20.0: 2}), launch_delay_s=30, **EXACT)
    assert tl.in_service[40] == 2 and tl.desired[59] == 2
    tl = simulate(np.zeros(60, dtype=int), Scripted({20.0: 1}), initial_instances=3, **EXACT)
    assert tl.in_service[19] == 3 and tl.in_service[20] == 1


def test_threshold_policy_in_the_simulator_fires_at_the_worked_out_ticks() -> None:
    # 20 messages/s against 5/s per instance: the backlog per instance is far above 10 from tick 0.
    policy = ThresholdPolicy(
        UpperThreshold=10,
        LowerThreshold=1,
        Period=60,
        EvaluationPeriods=2,
        BreachDuration=120,
        Cooldown=90,
        MaxSize=3,
    )
    tl = simulate(np.full(400, 20), policy, http_connections=5, launch_delay_s=30, **EXACT)
    assert [(e.time_s, e.from_desired, e.to_desired) for e in tl.events] == [(120, 1, 2), (210, 2, 3)]
    assert tl.in_service[149] == 1 and tl.in_service[150] == 2
    assert tl.in_service[239] == 2 and tl.in_service[240] == 3
    assert tl.started[149] == 5 and tl.started[150] == 10


def test_target_tracking_in_the_simulator_scales_to_ceil_backlog_over_target() -> None:
    arrivals = np.zeros(400, dtype=int)
    arrivals[0] = 950
    policy = TargetTrackingPolicy(TargetValue=100, MaxSize=20)
    # Processing so slow that the backlog stays at 950.
    tl = simulate(arrivals, policy, http_connections=1, processing_time_s=1e6, processing_jitter=0.0)
    assert tl.events[0][:3] == (180.0, 1, 10)


@settings(max_examples=40, deadline=None)
@given(
    arrivals=st.lists(st.integers(0, 60), min_size=1, max_size=900),
    connections=st.integers(1, 20),
    processing=st.floats(0.2, 30),
    jitter=st.floats(0, 2),
    target=st.floats(1, 200),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_message_is_accounted_for(
    arrivals: list[int], connections: int, processing: float, jitter: float, target: float, seed: int
) -> None:
    policy = TargetTrackingPolicy(TargetValue=target, MaxSize=6, DatapointPeriod=10, ScaleInDatapoints=3)
    tl = simulate(
        np.array(arrivals),
        policy,
        processing_time_s=processing,
        processing_jitter=jitter,
        http_connections=connections,
        launch_delay_s=20,
        seed=seed,
    )
    assert np.array_equal(tl.visible, np.cumsum(tl.arrivals) - np.cumsum(tl.started))
    assert (tl.visible >= 0).all() and (tl.started >= 0).all()
    assert (tl.in_flight <= tl.in_service * connections).all()
    assert (tl.in_service <= tl.desired).all() and (tl.desired <= 6).all()
    assert tl.latency_s.size == sum(arrivals) and (tl.latency_s > 0).all()
    assert (tl.oldest_age_s >= 0).all()
    assert tl.unfinished == tl.visible[-1]


def test_same_seed_same_timeline_and_another_seed_differs() -> None:
    arrivals = diurnal(20, 15, period=7200, duration_s=7200, seed=4)
    for make in (
        lambda: ThresholdPolicy(UpperThreshold=10, LowerThreshold=0.5, Period=60, MaxSize=10),
        lambda: TargetTrackingPolicy(TargetValue=50, MaxSize=10, InstanceWarmup=60),
    ):
        a, b, c = (
            simulate(arrivals, make(), processing_time_s=4, http_connections=8, seed=s) for s in (7, 7, 8)
        )
        for name in ("visible", "in_flight", "started", "desired", "in_service", "oldest_age_s", "latency_s"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert a.events == b.events and a.summary() == b.summary()
        assert not np.array_equal(a.latency_s, c.latency_s)


def test_one_policy_object_gives_the_same_run_twice() -> None:
    policy = TargetTrackingPolicy(TargetValue=50, MaxSize=10)
    arrivals = spike(2, 30, 600, 600, 3600, seed=2)
    assert simulate(arrivals, policy).summary() == simulate(arrivals, policy).summary()


def test_instance_hours_and_summary() -> None:
    tl = simulate(np.zeros(3600, dtype=int), Scripted(), initial_instances=2)
    summary = tl.summary()
    assert summary["instance_hours"] == pytest.approx(2.0)
    assert summary["scaling_actions"] == 0 and summary["messages"] == 0
    assert np.isnan(summary["latency_p99_s"])
    assert set(summary) >= {
        "latency_p50_s",
        "latency_p99_s",
        "max_backlog",
        "instance_hours",
        "scaling_actions",
    }


def test_coarser_ticks_sum_arrivals() -> None:
    tl = simulate(np.arange(1, 11), Scripted(), tick_s=5, **EXACT)
    assert isinstance(tl, Timeline)
    assert tl.arrivals.tolist() == [15, 40]
    assert tl.time_s.tolist() == [0, 5]
    assert tl.instance_hours == pytest.approx(10 / 3600)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"processing_time_s": 0}, "processing_time_s"),
        ({"processing_jitter": -0.1}, "processing_jitter"),
        ({"http_connections": 0}, "http_connections"),
        ({"launch_delay_s": -1}, "launch_delay_s"),
        ({"tick_s": 0.5}, "tick_s"),
        ({"initial_instances": -1}, "initial_instances"),
    ],
)
def test_simulate_option_errors_name_the_option(options: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name} must"):
        simulate(np.zeros(10, dtype=int), Scripted(), **options)


def test_flash_sale_threshold_rule_lags_and_target_tracking_keeps_p99_lower() -> None:
    # Base 4 msg/s, then 60 msg/s for 20 minutes from the first hour. 10 s per message over 50
    # connections is 5 msg/s per instance, so the sale needs 12 instances.
    start, length = 3600, 1200
    arrivals = spike(4, 60, start, length, 4 * 3600, seed=1)
    article = ThresholdPolicy(UpperThreshold=10, LowerThreshold=0.5, Period=300, MaxSize=20)
    tracking = TargetTrackingPolicy(
        TargetValue=target_from_latency(60, 10, 50), MaxSize=20, InstanceWarmup=120
    )
    old = simulate(arrivals, article, processing_time_s=10, http_connections=50, seed=1)
    new = simulate(arrivals, tracking, processing_time_s=10, http_connections=50, seed=1)

    # The 5-minute average needs a whole period to see the sale, then adds one instance per cooldown,
    # still adding after the sale is over.
    assert old.events[0].time_s >= start + 300
    assert old.events[1].to_desired - old.events[1].from_desired == 1
    assert any(e.time_s > start + length and e.to_desired > e.from_desired for e in old.events)
    # Target tracking sizes the fleet from the backlog after three one-minute datapoints.
    assert new.events[0].time_s <= start + 180
    assert new.events[0].to_desired >= 12
    assert new.summary()["latency_p99_s"] < old.summary()["latency_p99_s"] / 3
    assert new.summary()["max_backlog"] < old.summary()["max_backlog"]


def test_a_day_at_one_second_ticks_is_fast() -> None:
    arrivals = diurnal(50, 40)
    policy = TargetTrackingPolicy(TargetValue=300, MaxSize=25)
    began = time.perf_counter()
    simulate(arrivals, policy)
    assert time.perf_counter() - began < 1.0  # the benchmark holds the real goal (0.2 s)


# --- traffic profiles ----------------------------------------------------------------------------


def test_profiles_are_seeded_counts_per_second() -> None:
    a = steady(5, 10_000, seed=3)
    assert a.dtype == np.int64 and a.shape == (10_000,)
    assert abs(a.mean() - 5) < 0.2
    assert np.array_equal(a, steady(5, 10_000, seed=3))
    assert not np.array_equal(a, steady(5, 10_000, seed=4))


def test_spike_is_peak_only_inside_its_window() -> None:
    a = spike(0, 10, start=100, length=50, duration_s=300)
    assert a[:100].sum() == 0 and a[150:].sum() == 0
    assert a[100:150].mean() > 5


def test_diurnal_is_lowest_at_start_and_highest_at_half_period() -> None:
    a = diurnal(10, 10, period=1000, duration_s=1000)
    assert a[:50].mean() < 1 < 15 < a[475:525].mean()
    with pytest.raises(ConfigError, match=r"^amplitude"):
        diurnal(5, 6)


def test_bursty_adds_bursts_every_n_seconds() -> None:
    a = bursty(0, burst_every=100, burst_size=7, duration_s=350)
    assert np.flatnonzero(a).tolist() == [0, 100, 200, 300]
    assert set(a[a > 0].tolist()) == {7}
    with pytest.raises(ConfigError, match=r"^burst_every"):
        bursty(1, 0, 5)
    with pytest.raises(ConfigError, match=r"^burst_every"):
        bursty(1, 2.5, 5)  # type: ignore[arg-type]


def test_bad_profile_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^rate"):
        steady(-1)
    with pytest.raises(ConfigError, match=r"^duration_s"):
        steady(1, 0)
    with pytest.raises(ConfigError, match=r"^start"):
        spike(1, 5, -10, 5)


def test_csv_profile_adds_rows_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text("second,count\n3,4\n0,1\n\n3,2\n")
    assert from_csv(path).tolist() == [1, 0, 0, 6]
    assert from_csv(path, duration_s=6).tolist() == [1, 0, 0, 6, 0, 0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,count\n0,1\n", "header row 'second,count'"),
        ("", "header row"),
        ("second,count\n", "no data rows"),
        ("second,count\n0,1\nx,2\n", "line 3"),
        ("second,count\n0,1,2\n", "line 2"),
        ("second,count\n1.5,2\n", "line 2"),
        ("second,count\n-1,2\n", "0 or more"),
        ("second,count\n9,2\n", "past duration_s"),
    ],
)
def test_bad_csv_profile_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        from_csv(path, duration_s=5 if "past" in message else None)


def test_missing_or_binary_csv_profile_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read"):
        from_csv(tmp_path / "nope.csv")
    binary = tmp_path / "image.csv"
    binary.write_bytes(b"\x89PNG\xff\xfe")
    with pytest.raises(ConfigError, match="not a CSV text file"):
        from_csv(binary)


def test_csv_profile_from_a_spreadsheet_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("second,count\r\n0,2\r\n1,3\r\n".encode("utf-8-sig"))
    assert from_csv(path).tolist() == [2, 3]


def test_the_seeds_flash_sale_is_exactly_10000_orders_between_minute_2_and_minute_10() -> None:
    orders = order_flash_sale()
    assert orders.sum() == 10_000 and orders.size == 40 * 60
    busy = np.flatnonzero(orders)
    assert busy[0] == 120 and busy[-1] == 599
    assert orders[120:600].max() - orders[120:600].min() <= 1  # evenly, about 21 a second
    assert np.array_equal(orders, order_flash_sale())
