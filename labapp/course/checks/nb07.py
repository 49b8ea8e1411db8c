"""The checks of notebook 07, autoscaling: each runs the simulator on the learner's answer and says what happened."""

from __future__ import annotations

from typing import Any

from labapp.course.checks.core import Answers, NotYet, register
from labapp.course.nb07 import (
    EB_WORKER,
    MAIL_BUDGET_INSTANCE_HOURS,
    MAIL_MAX_SIZE,
    MAIL_WAIT_S,
    MAIL_WORKER,
    SALE_BUDGET_INSTANCE_HOURS,
    SALE_MAX_OPEN_POSTS,
    SALE_P99_S,
)
from labapp.scaling.policies import TargetTrackingPolicy
from labapp.scaling.simulate import simulate
from labapp.scaling.traffic import busy_day, order_flash_sale


@register("07.1")
def _check_07_1(a: Answers) -> str:
    value = a.value("target_value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise NotYet(
            f"target_value should be a number of messages per instance, more than 0; it is {value!r}."
        )
    policy = TargetTrackingPolicy(TargetValue=value, MaxSize=MAIL_MAX_SIZE)
    day = simulate(busy_day(), policy, **MAIL_WORKER).summary()
    p90, cost, peak = day["latency_p90_s"], day["instance_hours"], day["max_instances"]
    goal = MAIL_WAIT_S + MAIL_WORKER["processing_time_s"]
    seen = f"With TargetValue {value:g} the day's p90 was {p90:.0f} s and it cost {cost:.0f} instance-hours"
    if p90 > goal:
        raise NotYet(
            f"{seen}: 1 e-mail in 10 went out later than {goal:.0f} s (90 s of waiting + 3 s of work)."
        )
    if cost > MAIL_BUDGET_INSTANCE_HOURS:
        raise NotYet(
            f"{seen}, with up to {peak} instances: fast enough, but over the budget of "
            f"{MAIL_BUDGET_INSTANCE_HOURS} instance-hours."
        )
    return f"{seen}: 90 % out within {goal:.0f} s and under the {MAIL_BUDGET_INSTANCE_HOURS} instance-hour budget."


@register("07.2")
def _check_07_2(a: Answers) -> str:
    policy: Any = a.value("sale_policy")
    if not callable(getattr(policy, "decide", None)) or not callable(getattr(policy, "reset", None)):
        raise NotYet(
            f"sale_policy should be a policy object such as TargetTrackingPolicy(...); it is {policy!r}."
        )
    run = simulate(order_flash_sale(), policy, **EB_WORKER)
    sale = run.summary()
    p99, cost, open_posts = sale["latency_p99_s"], sale["instance_hours"], int(run.in_flight.max(initial=0))
    peak_at = float(run.time_s[int(run.desired.argmax())]) / 60
    if open_posts > SALE_MAX_OPEN_POSTS:
        raise NotYet(
            f"At the peak {open_posts} POSTs were open at once ({sale['max_instances']} instances by minute "
            f"{peak_at:.0f}); the payment provider takes {SALE_MAX_OPEN_POSTS}."
        )
    if p99 > SALE_P99_S:
        raise NotYet(
            f"The slowest 1 % of orders took {p99:.0f} s (goal: {SALE_P99_S} s); the fleet peaked at "
            f"{sale['max_instances']} instances, at minute {peak_at:.0f}."
        )
    if cost > SALE_BUDGET_INSTANCE_HOURS:
        raise NotYet(
            f"Every order within {p99:.0f} s and at most {open_posts} charges at once, but the 40 minutes cost "
            f"{cost:.2f} instance-hours (budget {SALE_BUDGET_INSTANCE_HOURS:g}); {int(run.desired[-1])} instances "
            "were still running at the end."
        )
    return (
        f"p99 {p99:.0f} s, at most {open_posts} charges at once, {cost:.2f} instance-hours and "
        f"{sale['scaling_actions']} scaling actions for the 10,000 orders."
    )
