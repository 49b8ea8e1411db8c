"""Notebook 07's exercises: the checks run the simulator on the learner's answer."""

from __future__ import annotations

from typing import Any

from labapp.course.checks import core as checks
from labapp.course.checks import nb07  # noqa: F401 - importing registers 07.x
from labapp.scaling.policies import TargetTrackingPolicy, ThresholdPolicy


def check(exercise_id: str, **answers: Any) -> checks.Outcome:
    return checks.run_check(checks.REGISTRY[exercise_id], answers)


def test_exercise_07_1_accepts_the_aws_formula_and_explains_misses() -> None:
    assert check("07.1", target_value=300).status == checks.CORRECT
    assert check("07.1").status == checks.NOT_ATTEMPTED
    assert "aim lower" in check("07.1", target_value=600).reason
    assert "spare capacity" in check("07.1", target_value=20).reason


def test_exercise_07_2_needs_a_fast_and_cheap_policy() -> None:
    good = TargetTrackingPolicy(TargetValue=300, MaxSize=20, ScaleInStep=None)
    assert check("07.2", sale_policy=good).status == checks.CORRECT
    article = ThresholdPolicy(UpperThreshold=10, LowerThreshold=0.5, MaxSize=20)
    assert "sooner" in check("07.2", sale_policy=article).reason
    slow_in = TargetTrackingPolicy(TargetValue=300, MaxSize=20)
    assert "instance-hours" in check("07.2", sale_policy=slow_in).reason
    assert check("07.2", sale_policy=300).status == checks.NOT_YET
