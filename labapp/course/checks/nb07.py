"""The checks of notebook 07, autoscaling: each one drives a real lab and reads what happened."""

from __future__ import annotations

from labapp.course.checks.core import Answers, NotYet, register
from labapp.course.nb07 import EB_WORKER
from labapp.scaling.policies import TargetTrackingPolicy
from labapp.scaling.simulate import simulate
from labapp.scaling.traffic import busy_day, flash_sale


@register("07.1")
def _check_07_1(a: Answers) -> str:
    value = a.value("target_value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise NotYet("target_value should be a number of messages per instance, more than 0.")
    day = simulate(busy_day(), TargetTrackingPolicy(TargetValue=value, MaxSize=10), **EB_WORKER).summary()
    p90, cost = day["latency_p90_s"], day["instance_hours"]
    if p90 > 70:
        raise NotYet(f"1 message in 10 took over {p90:.0f} s with {value:g} per instance; aim lower.")
    if cost > 140:
        raise NotYet(f"90 % done in {p90:.0f} s, but for {cost:.0f} instance-hours: spare capacity.")
    return f"90 % of the day's messages done within {p90:.0f} s (60 s wait + 10 s work), {cost:.0f} instance-hours."


@register("07.2")
def _check_07_2(a: Answers) -> str:
    policy = a.value("sale_policy")
    if not callable(getattr(policy, "decide", None)) or not callable(getattr(policy, "reset", None)):
        raise NotYet("sale_policy should be a policy object, e.g. TargetTrackingPolicy(...).")
    sale = simulate(flash_sale(), policy, **EB_WORKER).summary()
    p99, cost, actions = sale["latency_p99_s"], sale["instance_hours"], sale["scaling_actions"]
    if p99 > 360:
        raise NotYet(f"p99 latency was {p99:.0f} s (goal: 360 s); the sale needs capacity sooner.")
    if cost > 20:
        raise NotYet(f"p99 {p99:.0f} s, but {cost:.1f} instance-hours (goal: 20); watch the scale-in.")
    if actions > 20:
        raise NotYet(
            f"p99 {p99:.0f} s and {cost:.1f} instance-hours, but {actions} scaling actions (goal: 20)."
        )
    return f"p99 {p99:.0f} s, {cost:.1f} instance-hours and {actions} scaling actions for the whole sale."
