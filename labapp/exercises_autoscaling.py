"""Notebook 07's exercises: each check runs the simulator on the learner's answer."""

from __future__ import annotations

from typing import Any

import numpy as np

from labapp import checks
from labapp.scaling import TargetTrackingPolicy
from labapp.simulate import diurnal, simulate, spike

# The production-sized worker of notebook 07: 10 s per message, sqsd's default 50 connections.
EB_WORKER: dict[str, Any] = {"processing_time_s": 10.0, "http_connections": 50}


def busy_day() -> np.ndarray:
    """Return notebook 07's day of traffic: 5 to 35 messages a second, quietest at midnight."""
    return diurnal(20, 15)


def flash_sale() -> np.ndarray:
    """Return notebook 07's flash sale: 4 messages a second, 60 for 20 minutes from 01:00, 4 hours."""
    return spike(4, 60, 3600, 1200, 4 * 3600, seed=1)


@checks.register(
    "07.1",
    "A target from the latency you accept",
    (
        "AWS's formula: target backlog per instance = acceptable latency / time per message. With 50 "
        "connections an instance works on 50 messages at once.",
        "target_value = target_from_latency(60, 10, 50), i.e. 60 / 10 * 50 = 300.",
    ),
)
def _check_07_1(a: checks.Answers) -> str:
    value = a.value("target_value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise checks.NotYet("target_value should be a number of messages per instance, more than 0.")
    day = simulate(busy_day(), TargetTrackingPolicy(TargetValue=value, MaxSize=10), **EB_WORKER).summary()
    p90, cost = day["latency_p90_s"], day["instance_hours"]
    if p90 > 70:
        raise checks.NotYet(f"1 message in 10 took over {p90:.0f} s with {value:g} per instance; aim lower.")
    if cost > 140:
        raise checks.NotYet(f"90 % done in {p90:.0f} s, but for {cost:.0f} instance-hours: spare capacity.")
    return f"90 % of the day's messages done within {p90:.0f} s (60 s wait + 10 s work), {cost:.0f} instance-hours."


@checks.register(
    "07.2",
    "Get through the flash sale",
    (
        "The article's rule reacts too late. Target tracking reacts in minutes, but look at what it does "
        "after the sale: it keeps paying for instances while it scales in one at a time.",
        "sale_policy = TargetTrackingPolicy(TargetValue=300, MaxSize=20, ScaleInStep=None)",
    ),
)
def _check_07_2(a: checks.Answers) -> str:
    policy = a.value("sale_policy")
    if not callable(getattr(policy, "decide", None)) or not callable(getattr(policy, "reset", None)):
        raise checks.NotYet("sale_policy should be a policy object, e.g. TargetTrackingPolicy(...).")
    sale = simulate(flash_sale(), policy, **EB_WORKER).summary()
    p99, cost, actions = sale["latency_p99_s"], sale["instance_hours"], sale["scaling_actions"]
    if p99 > 360:
        raise checks.NotYet(f"p99 latency was {p99:.0f} s (goal: 360 s); the sale needs capacity sooner.")
    if cost > 20:
        raise checks.NotYet(f"p99 {p99:.0f} s, but {cost:.1f} instance-hours (goal: 20); watch the scale-in.")
    if actions > 20:
        raise checks.NotYet(
            f"p99 {p99:.0f} s and {cost:.1f} instance-hours, but {actions} scaling actions (goal: 20)."
        )
    return f"p99 {p99:.0f} s, {cost:.1f} instance-hours and {actions} scaling actions for the whole sale."
