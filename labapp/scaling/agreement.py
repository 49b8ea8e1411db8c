"""How closely a live fleet's run followed the simulator's run of the same traffic and policy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from labapp.scaling.policies import Policy
from labapp.scaling.simulate import ScalingEvent, Timeline

if TYPE_CHECKING:
    from labapp.scaling.fleet import LiveTimeline

# The agreement a live run must reach with the simulator: desired capacity within ±1 instance for at
# least this share of the run, and the first scale-out at most one policy period apart.
WITHIN_ONE_SHARE = 0.8


class Agreement(NamedTuple):
    """How closely a live run's desired capacity followed the simulator's; times in scaled seconds."""

    within_one: float  # share of the run where |live - simulated| <= 1 instance
    mean_abs_diff: float  # instances, averaged over the run
    scale_out_shift_s: float  # live first scale-out minus the simulator's; inf if only one has one
    scale_in_shift_s: float  # the same for the first scale-in
    period_s: float  # the policy's period: the allowed scale-out shift

    def ok(self) -> bool:
        """Return True within tolerance: ±1 instance for >= 80 % of the run, scale-out within a period."""
        return self.within_one >= WITHIN_ONE_SHARE and abs(self.scale_out_shift_s) <= self.period_s

    def __str__(self) -> str:
        return (
            f"desired within ±1 of the simulator for {self.within_one:.0%} of the run (mean difference "
            f"{self.mean_abs_diff:.2f}); first scale-out {self.scale_out_shift_s:+.0f} s, first scale-in "
            f"{self.scale_in_shift_s:+.0f} s (scaled; tolerance: 80 %, scale-out ±{self.period_s:g} s)"
        )


def policy_period(policy: Policy) -> float:
    """Return how often the policy turns samples into a datapoint: Period or DatapointPeriod."""
    return float(getattr(policy, "Period", getattr(policy, "DatapointPeriod", 60.0)))


def _shift(live: Sequence[ScalingEvent], sim: Sequence[ScalingEvent], out: bool) -> float:
    # First scale-out (or scale-in) time, live minus simulated: 0 when neither has one, inf when one lacks it.
    first = [
        next((e.time_s for e in run if (e.to_desired > e.from_desired) == out), None) for run in (live, sim)
    ]
    if first[0] is None or first[1] is None:
        return 0.0 if first[0] is first[1] else math.inf
    return first[0] - first[1]


def agreement(live: LiveTimeline, sim: Timeline, period_s: float) -> Agreement:
    """Compare desired capacity second by second over the part of the run both cover."""
    times = sim.time_s[sim.time_s <= (live.time_s[-1] if live.time_s.size else -1.0)]
    diff = np.abs(live.desired_at(times) - sim.desired[: times.size]) if times.size else np.array([np.inf])
    return Agreement(
        within_one=float(np.mean(diff <= 1)),
        mean_abs_diff=float(np.mean(diff)),
        scale_out_shift_s=_shift(live.events, sim.events, True),
        scale_in_shift_s=_shift(live.events, sim.events, False),
        period_s=period_s,
    )
