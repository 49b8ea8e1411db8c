"""Notebook 07's exercises: the checks run the simulator on the learner's answer and say what happened."""

from __future__ import annotations

from typing import Any

from labapp.course.checks import core as checks
from labapp.course.checks import nb07  # noqa: F401 - importing registers 07.x
from labapp.course.nb07 import EB_WORKER, MAIL_WAIT_S, MAIL_WORKER
from labapp.scaling.policies import TargetTrackingPolicy, ThresholdPolicy, target_from_latency


def check(exercise_id: str, **answers: Any) -> checks.Outcome:
    return checks.run_check(checks.REGISTRY[exercise_id], answers)


def test_exercise_07_1_is_not_the_taught_example() -> None:
    # The notebook teaches the formula on the production worker (60 s, 10 s, 50 -> 300); the
    # exercise's worker must need its own computation, and the taught number must not be its answer
    # by accident of equal ratios.
    assert MAIL_WORKER != EB_WORKER
    taught = target_from_latency(60, EB_WORKER["processing_time_s"], EB_WORKER["http_connections"])
    assert check("07.1", target_value=taught * 2).status == checks.NOT_YET


def test_exercise_07_1_accepts_the_formula_for_the_mail_worker_and_reports_the_day() -> None:
    formula = target_from_latency(
        MAIL_WAIT_S, MAIL_WORKER["processing_time_s"], MAIL_WORKER["http_connections"]
    )
    outcome = check("07.1", target_value=formula)
    assert outcome.status == checks.CORRECT
    assert "p90" in outcome.reason and "instance-hours" in outcome.reason
    assert check("07.1").status == checks.NOT_ATTEMPTED


def test_exercise_07_1_says_what_the_day_looked_like_not_the_answer() -> None:
    slow = check("07.1", target_value=1000)
    assert slow.status == checks.NOT_YET and "p90 was" in slow.reason and "later than 93 s" in slow.reason
    costly = check("07.1", target_value=30)
    assert costly.status == checks.NOT_YET and "over the budget" in costly.reason
    for outcome in (slow, costly):
        assert "300" not in outcome.reason  # never the right number


def test_exercise_07_2_passes_a_capped_policy_that_meets_the_goals() -> None:
    outcome = check("07.2", sale_policy=TargetTrackingPolicy(TargetValue=1000, MaxSize=10))
    assert outcome.status == checks.CORRECT, outcome.reason
    fast_threshold = ThresholdPolicy(
        UpperThreshold=10, LowerThreshold=0.5, MaxSize=10, Period=60, BreachDuration=60, Cooldown=60,
        UpperBreachScaleIncrement=3,
    )  # fmt: skip
    assert check("07.2", sale_policy=fast_threshold).status == checks.CORRECT


def test_exercise_07_2_names_what_went_wrong_in_the_run() -> None:
    uncapped = check("07.2", sale_policy=TargetTrackingPolicy(TargetValue=300, MaxSize=20))
    assert "POSTs were open at once" in uncapped.reason
    costly = check("07.2", sale_policy=TargetTrackingPolicy(TargetValue=300, MaxSize=10))
    assert "instance-hours (budget 5)" in costly.reason and "still running at the end" in costly.reason
    formula = check("07.2", sale_policy=TargetTrackingPolicy(TargetValue=1800, MaxSize=10))
    assert "slowest 1 % of orders took" in formula.reason
    article = check("07.2", sale_policy=ThresholdPolicy(UpperThreshold=10, LowerThreshold=0.5, MaxSize=10))
    assert "slowest 1 %" in article.reason
    assert check("07.2", sale_policy=300).status == checks.NOT_YET
    assert check("07.2").status == checks.NOT_ATTEMPTED
