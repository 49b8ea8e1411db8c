"""The live fleet: controller logic on a fake clock, then one time-compressed run of real instances."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labapp.errors import ConfigError
from labapp.runtime.emulator import Emulator
from labapp.runtime.instance import InstanceProcess as ProcessHandle
from labapp.scaling.fleet import (
    WITHIN_ONE_SHARE,
    FleetController,
    LiveTimeline,
    Reconciliation,
    agreement,
    policy_period,
)
from labapp.scaling.policies import (
    Decision,
    FleetState,
    Metrics,
    TargetTrackingPolicy,
    ThresholdPolicy,
    target_from_latency,
)
from labapp.scaling.sale import SALE, SaleRun
from labapp.scaling.simulate import ScalingEvent, simulate
from labapp.scaling.traffic import lab_flash_sale, spike
from labapp.sqs.client import sqs_client
from labapp.sqs.queues import ensure_queues, send_messages
from labapp.worker.ledger import Ledger


class Clock:
    """Wall time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeInstance:
    """A Handle that records what the controller asked of it."""

    def __init__(self, name: str, booted: bool = True, obeys: bool = True) -> None:
        self.name, self.is_booted, self.obeys = name, booted, obeys
        self.started = self.terminated = self.killed = False

    def booted(self) -> bool:
        return self.is_booted

    def enter_service(self) -> None:
        self.started = True

    def terminate(self) -> None:
        self.terminated = True

    def wait(self, timeout: float) -> bool:
        return self.terminated and self.obeys

    def kill(self) -> None:
        self.killed = True


class Scripted:
    """A policy that asks for given capacities at given scaled seconds and records what it saw."""

    MinSize, MaxSize = 1, 4

    def __init__(self, plan: dict[float, int]) -> None:
        self.plan = plan
        self.seen: list[tuple[float, Metrics, FleetState]] = []

    def reset(self) -> None:
        self.seen = []

    def decide(self, now: float, metrics: Metrics, fleet: FleetState) -> Decision | None:
        self.seen.append((now, metrics, fleet))
        return Decision(self.plan[now], "scripted") if now in self.plan else None


def controller(policy: Any, **kwargs: Any) -> tuple[FleetController, Clock, list[FakeInstance]]:
    """A controller on a fake clock with fake instances and a queue that always shows 7 visible, 2 in flight."""
    clock, made = Clock(), []

    def launch(name: str) -> FakeInstance:
        made.append(FakeInstance(name))
        return made[-1]

    kwargs.setdefault("time_scale", 60)
    fleet = FleetController(
        policy,
        np.zeros(600, dtype=int),
        endpoint_url="http://127.0.0.1:1",
        clock=clock,
        launcher=launch,
        read_metrics=lambda: (7, 2),
        **kwargs,
    )
    return fleet, clock, made


def at(fleet: FleetController, clock: Clock, wall_s: float) -> None:
    """Move the clock to `wall_s` wall seconds after the run started and tick once."""
    clock.now = fleet._t0 + wall_s
    fleet.tick()


# -- the controller, one tick at a time ---------------------------------------------------------------
def test_time_is_compressed_and_work_is_scaled_down() -> None:
    fleet, clock, _ = controller(Scripted({}), time_scale=60, processing_time_s=12)
    clock.now = fleet._t0 + 5
    assert fleet.now() == 300  # five wall seconds are one default Period
    assert fleet.work_ms == 200


def test_launch_waits_for_the_launch_delay_in_scaled_time() -> None:
    policy = Scripted({60.0: 3})
    fleet, clock, made = controller(policy, launch_delay_s=120)
    fleet.boot()
    at(fleet, clock, 0)
    at(fleet, clock, 1)  # scaled 60 s: the policy asks for 3
    assert fleet.desired == 3 and fleet.timeline().in_service[-1] == 1
    at(fleet, clock, 2.9)  # 174 s: 114 s after the decision, still launching
    assert fleet.timeline().in_service[-1] == 1
    at(fleet, clock, 3.0)  # 180 s: in service
    assert fleet.timeline().in_service[-1] == 3
    assert all(i.started for i in made[:3])
    # The policy saw what the simulator shows it: metrics, pending launches and entry times.
    now, metrics, state = policy.seen[-1]
    assert now == 180
    assert metrics == Metrics(visible=7, in_flight=2, in_service=3, desired=3)
    assert state == FleetState(3, 0, (-math.inf, 180.0, 180.0))
    assert policy.seen[2][2].pending == 2


def test_an_instance_still_booting_enters_service_late() -> None:
    fleet, clock, made = controller(Scripted({0.0: 2}), launch_delay_s=60)
    fleet.boot()
    at(fleet, clock, 0)
    made[1].is_booted = False
    at(fleet, clock, 2)
    assert fleet.timeline().in_service[-1] == 1
    made[1].is_booted = True
    at(fleet, clock, 2.5)
    assert fleet.timeline().in_service[-1] == 2


def test_scale_out_takes_booted_instances_from_the_pool_then_boots_on_demand() -> None:
    fleet, clock, made = controller(Scripted({0.0: 4, 600.0: 2, 660.0: 3}), launch_delay_s=60)
    fleet.boot()
    assert len(made) == 4  # one instance and a pool of three for the first scale-out to MaxSize
    at(fleet, clock, 0)
    assert len(made) == 4  # the scale-out took the pool, booting nothing
    at(fleet, clock, 10)
    assert fleet.timeline().in_service[-1] == 2 and len(made) == 4  # scale-in boots nothing
    at(fleet, clock, 11)
    assert len(made) == 5 and fleet.desired == 3  # the pool is empty: boot one now


def test_scale_in_cancels_launches_first_then_retires_the_newest() -> None:
    fleet, clock, made = controller(Scripted({0.0: 3, 60.0: 4, 120.0: 1}), launch_delay_s=90)
    fleet.boot()
    at(fleet, clock, 0)  # launch two: in service at 90 s
    at(fleet, clock, 1)  # launch a third: in service at 150 s
    at(fleet, clock, 2)  # down to one: cancel the pending one, retire the two newest
    first, second, third, fourth = made[:4]
    assert fourth.terminated and third.terminated and second.terminated
    assert not first.terminated
    assert fleet.timeline().in_service[-1] == 1
    assert [(e.time_s, e.to_desired) for e in fleet.timeline().events] == [(0, 3), (60, 4), (120, 1)]


def test_timeline_records_scaled_and_wall_time() -> None:
    fleet, clock, _ = controller(Scripted({}), time_scale=30)
    fleet.boot()
    for wall in (0, 0.5, 1.0):
        at(fleet, clock, wall)
    tl = fleet.timeline()
    assert tl.wall_s.tolist() == [0, 0.5, 1.0]
    assert tl.time_s.tolist() == [0, 15, 30]
    assert tl.visible.tolist() == [7, 7, 7] and tl.desired.tolist() == [1, 1, 1]


def test_the_run_ends_with_the_trace_unless_messages_are_queued_and_overtime_is_left() -> None:
    fleet, clock, _ = controller(Scripted({}))  # 600 scaled seconds of trace; 7 + 2 always queued
    fleet.boot()
    at(fleet, clock, 9.9)
    assert not fleet.played_out()
    at(fleet, clock, 10.0)
    assert fleet.played_out()  # no overtime: the trace's end is the run's end

    fleet, clock, _ = controller(Scripted({}), overtime_s=120)
    fleet.boot()
    at(fleet, clock, 11.0)
    assert not fleet.played_out()  # past the trace, but messages are still queued
    at(fleet, clock, 12.0)
    assert fleet.played_out()  # the overtime is spent

    fleet, clock, _ = controller(Scripted({}), overtime_s=120)
    fleet._read_metrics = lambda: (0, 0)
    fleet.boot()
    at(fleet, clock, 10.5)
    assert fleet.played_out()  # every message sent (none were due) and the queue empty


def test_stop_kills_an_instance_that_ignores_sigterm() -> None:
    fleet, _, made = controller(Scripted({}), stop_timeout_s=0.1)
    fleet.scale_to(2, -math.inf)
    made[1].obeys = False
    fleet.stop()
    assert all(i.terminated for i in made)
    assert made[1].killed and not made[0].killed


@pytest.mark.parametrize(
    ("options", "message"),
    [({"time_scale": 0}, "time_scale must be"), ({"processing_time_s": 0.001}, "processing_time_s")],
)
def test_bad_compression_is_a_config_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        controller(Scripted({}), **options)


# -- agreement and reconciliation ---------------------------------------------------------------------
def live_timeline(times: list[float], desired: list[int], events: list[ScalingEvent]) -> LiveTimeline:
    zeros = np.zeros(len(times), dtype=np.int64)
    t = np.asarray(times, dtype=float)
    return LiveTimeline(60.0, t / 60, t, zeros, zeros, np.asarray(desired), np.asarray(desired), events, 0)


def test_agreement_of_a_run_with_itself_and_with_a_late_copy() -> None:
    arrivals = spike(1, 12, 600, 600, 2400)
    policy = TargetTrackingPolicy(TargetValue=50, MaxSize=5, InstanceWarmup=60)
    sim = simulate(arrivals, policy, processing_time_s=10, http_connections=5, launch_delay_s=60)
    assert sim.events, "the scenario must scale"
    ticks = sim.time_s[::6].tolist()
    same = live_timeline(ticks, sim.desired[::6].tolist(), sim.events)
    result = agreement(same, sim, policy_period(policy))
    assert result.within_one == 1.0 and result.scale_out_shift_s == 0 and result.ok()
    late_events = [e._replace(time_s=e.time_s + 300) for e in sim.events]
    late = live_timeline([t + 300 for t in ticks], sim.desired[::6].tolist(), late_events)
    result = agreement(late, sim, policy_period(policy))
    assert result.scale_out_shift_s == 300 and not result.ok()
    assert "tolerance" in str(result)


def test_runs_that_never_scale_agree_and_a_missing_scale_out_does_not() -> None:
    flat = simulate(np.ones(600, dtype=int), ThresholdPolicy(UpperThreshold=50, LowerThreshold=0))
    quiet = live_timeline([0, 300], [1, 1], [])
    assert agreement(quiet, flat, 60).ok()
    jumpy = live_timeline([0, 300], [1, 2], [ScalingEvent(300, 1, 2, "live only")])
    assert agreement(jumpy, flat, 60).scale_out_shift_s == math.inf
    assert not agreement(jumpy, flat, 60).ok()


def test_desired_at_holds_each_value_until_the_next_tick() -> None:
    tl = live_timeline([0, 10, 20], [1, 3, 2], [])
    assert tl.desired_at(np.array([0, 5, 10, 19, 25])).tolist() == [1, 1, 3, 3, 2]


def test_policy_period_and_lost_messages() -> None:
    assert policy_period(ThresholdPolicy(UpperThreshold=10, LowerThreshold=1, Period=120)) == 120
    assert policy_period(TargetTrackingPolicy(TargetValue=5)) == 60
    assert Reconciliation(sent=10, applied=6, queued=3, dead_letter=1).lost == 0


def test_an_order_sale_sends_orders_and_counts_them_in_the_ledger(emulator: Emulator, tmp_path: Path) -> None:
    # The seed's sale is orders, not thumbnails: bodies the worker's order scenario takes, and a
    # reconciliation that finds them in the ledger under their own business ids, repeats included.
    fleet, _, _ = controller(Scripted({}), scenario="order")
    body = json.loads(fleet._body(7))
    assert body == {
        "type": "order",
        "order_id": f"{fleet.run_id}-7",
        "work_ms": fleet.work_ms,
        "amount": 10.0,
    }
    fleet.endpoint_url, fleet.run_dir = emulator.url, tmp_path
    fleet.queues = ensure_queues(sqs_client(emulator.url), f"fleet-{fleet.run_id}", 3, 30)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for number in (1, 2, 2):  # order 2 is delivered twice and applied once
        ledger.apply(f"order:{fleet.run_id}-{number}", "order", f"m{number}", 1)
    ledger.apply("order:someone-else-1", "order", "m9", 1)
    ledger.close()
    fleet.sent = 3
    send_messages(sqs_client(emulator.url), fleet.queues.url, [fleet._body(3)])
    tally = fleet.reconcile()
    assert (tally.sent, tally.applied, tally.queued, tally.repeated, tally.lost) == (3, 2, 1, 1, 0)
    assert str(tally) == "sent 3 = applied 2 + queued 1 + DLQ 0; lost 0 (1 repeated POSTs)"


def test_an_unknown_scenario_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="scenario must be one of order, thumbnail"):
        controller(Scripted({}), scenario="invoice")


# -- the seed's sale: settings, and what a run adds up to ----------------------------------------------
def test_the_sale_settings_derive_the_target_and_the_work_from_their_numbers() -> None:
    assert SALE.target_value == target_from_latency(
        SALE.acceptable_wait_s, SALE.processing_time_s, SALE.http_connections
    )
    assert SALE.work_ms == round(SALE.processing_time_s * 1000 / SALE.time_scale)
    assert SALE.nominal_per_s == SALE.max_size * SALE.http_connections * 1000 / SALE.work_ms
    policy = SALE.policy()
    assert (policy.MaxSize, policy.ScaleInDatapoints, policy.InstanceWarmup) == (8, 2, 60.0)
    assert SALE.policy() is not policy  # a policy keeps state: every run gets its own


def test_the_simulated_sale_scales_out_drains_and_scales_in_before_the_trace_ends() -> None:
    # What notebook 07's picture must show; the simulator is the live run's reference.
    sim = SALE.controller("http://127.0.0.1:1").simulated()
    ups = [e for e in sim.events if e.to_desired > e.from_desired]
    downs = [e for e in sim.events if e.to_desired < e.from_desired]
    assert ups and ups[0].to_desired == SALE.max_size and ups[0].time_s < 6 * 60
    assert len(downs) >= 3 and sim.desired[-1] <= SALE.max_size // 2
    empty = np.flatnonzero((sim.visible + sim.in_flight == 0) & (sim.time_s > 11 * 60))
    assert empty.size and empty[0] < sim.time_s[-1] - 5 * 60  # drained with minutes to spare


def test_a_sale_run_reports_wall_time_throughput_peak_and_reconciliation() -> None:
    sim = SALE.controller("http://127.0.0.1:1").simulated()
    every = np.arange(0, sim.time_s.size, 12)
    t = sim.time_s[every].astype(float)
    live = LiveTimeline(
        60.0, t / 60, t, sim.visible[every], sim.in_flight[every], sim.desired[every], sim.in_service[every],
        sim.events, 10_000,
    )  # fmt: skip
    run = SaleRun(SALE, live, sim, Reconciliation(10_000, 10_000, 0, 0), wall_s=44.0)
    assert run.peak_instances == 8 and run.agreement.ok()
    assert 31 * 60 <= run.drained_at_s <= 33 * 60
    assert run.messages_per_s == pytest.approx(10_000 / ((run.drained_at_s - 120) / 60))
    report = run.report().splitlines()
    assert report[0] == "wall time 44 s for 40 scaled minutes (x60)"
    assert report[-1].endswith("lost 0 (0 repeated POSTs)") and "peak 8 instances" in report[2]
    assert report[3].endswith("of its nominal 400: the policy set the pace, as in the simulator")
    assert run.full_size_per_s == pytest.approx(SALE.nominal_per_s, rel=0.1)


def test_a_sale_held_back_by_the_machine_says_so() -> None:
    sim = SALE.controller("http://127.0.0.1:1").simulated()
    every = np.arange(0, sim.time_s.size, 12)
    t = sim.time_s[every].astype(float)
    slow = LiveTimeline(
        60.0,
        t / 30,
        t,
        sim.visible[every],
        sim.in_flight[every],
        sim.desired[every],
        sim.in_service[every],
        sim.events,
        10_000,
    )  # fmt: skip  (the same run at half the wall pace)
    run = SaleRun(SALE, slow, sim, Reconciliation(10_000, 10_000, 0, 0), wall_s=88.0)
    assert run.full_size_per_s == pytest.approx(SALE.nominal_per_s / 2, rel=0.1)
    assert "this machine's CPU set the pace" in run.pace()
    never = dataclasses.replace(slow, in_service=np.minimum(slow.in_service, 3))
    assert (
        SaleRun(SALE, never, sim, run.tally, wall_s=88.0)
        .pace()
        .startswith("the fleet never ran at full size")
    )


def test_the_pace_at_full_size_ends_when_the_queue_is_empty() -> None:
    # A fleet still at MaxSize after the last order (scale-in waits) once made the pace look a quarter of itself.
    sim = SALE.controller("http://127.0.0.1:1").simulated()
    every = np.arange(0, sim.time_s.size, 12)
    t = sim.time_s[every].astype(float)
    live = LiveTimeline(
        60.0, t / 60, t, sim.visible[every], sim.in_flight[every], sim.desired[every], sim.in_service[every],
        sim.events, 10_000,
    )  # fmt: skip
    idle = np.arange(1, 301, dtype=float)
    tail = dataclasses.replace(
        live,
        wall_s=np.concatenate([live.wall_s, live.wall_s[-1] + idle]),
        time_s=np.concatenate([live.time_s, live.time_s[-1] + 60 * idle]),
        visible=np.concatenate([live.visible, np.zeros(idle.size, dtype=live.visible.dtype)]),
        in_flight=np.concatenate([live.in_flight, np.zeros(idle.size, dtype=live.in_flight.dtype)]),
        desired=np.concatenate([live.desired, np.full(idle.size, SALE.max_size)]),
        in_service=np.concatenate([live.in_service, np.full(idle.size, SALE.max_size)]),
    )
    run = SaleRun(SALE, tail, sim, Reconciliation(10_000, 10_000, 0, 0), wall_s=344.0)
    assert run.full_size_per_s == pytest.approx(SALE.nominal_per_s, rel=0.1)


def test_a_sale_stopped_with_orders_queued_says_so() -> None:
    sim = SALE.controller("http://127.0.0.1:1").simulated()
    every = np.arange(0, sim.time_s.size, 12)
    t = sim.time_s[every].astype(float)
    live = LiveTimeline(
        60.0, t / 60, t, sim.visible[every] + 500, sim.in_flight[every], sim.desired[every], sim.in_service[every],
        sim.events, 10_000,
    )  # fmt: skip
    run = SaleRun(SALE, live, sim, Reconciliation(10_000, 9_500, 500, 0), wall_s=44.0)
    line = run.report().splitlines()[1]
    assert line.endswith(f"to minute {t[-1] / 60:.0f}, when the run stopped with orders still queued"), line


# -- real processes -----------------------------------------------------------------------------------
def test_an_instance_process_exits_on_sigterm_or_when_its_controller_goes(
    emulator: Emulator, tmp_path: Path
) -> None:
    handles = [ProcessHandle(f"i{n}", tmp_path, emulator.url, f"{emulator.url}/123/nope", 2) for n in (1, 2)]
    deadline = time.monotonic() + 30
    while not all(h.booted() for h in handles) and time.monotonic() < deadline:
        time.sleep(0.05)
    handles[0].terminate()
    assert handles[1].process.stdin is not None
    handles[1].process.stdin.close()  # what the kernel does when the controller dies
    for handle in handles:
        assert handle.process.wait(timeout=10) == 0


@pytest.mark.slow
def test_live_fleet_follows_the_simulator_through_a_flash_sale(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    # Scaled: 3 messages a minute, 18 a minute for 10 minutes from minute 6; an instance does 5 a minute.
    arrivals = lab_flash_sale()
    policy = TargetTrackingPolicy(TargetValue=10, InstanceWarmup=120, MaxSize=5, ScaleInDatapoints=3)
    fleet = FleetController(policy, arrivals, endpoint_url=emulator.url, time_scale=60)
    began = time.monotonic()
    live = fleet.run()
    wall = time.monotonic() - began
    processes = [h.process for h in fleet.handles if isinstance(h, ProcessHandle)]
    assert processes and all(p.poll() is not None for p in processes)
    sim = fleet.simulated()
    result = agreement(live, sim, policy_period(policy))
    print(f"\nlive run {wall:.1f} s wall, {len(processes)} instance processes; {result}")
    assert max(live.desired) >= 4 and live.desired[-1] < max(live.desired)
    assert any(e.to_desired < e.from_desired for e in live.events)
    assert result.within_one >= WITHIN_ONE_SHARE and result.ok(), str(result)
    tally = fleet.reconcile()
    assert tally.sent == arrivals.sum() and tally.lost == 0, tally
    assert subprocess.run(["pgrep", "-f", fleet.run_id], capture_output=True).returncode == 1
