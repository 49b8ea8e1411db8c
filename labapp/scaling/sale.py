"""The seed article's flash sale at its own size: 10,000 orders through a live local fleet.

`order_flash_sale()` sends exactly 10,000 orders; real instance processes (worker + daemon each)
drain them under a target tracking policy, and the simulator plays the same trace for comparison.
`SALE` holds the settings notebook 07 and `labapp bench fleet` share. Time is compressed: every
time in the settings, the policy and the timelines is in scaled seconds, as on AWS.

Why these numbers. On a laptop every order costs real CPU in three places: the SQS endpoint (a
send, a receive and a delete), the daemon and the worker; measured on two cores, 6-8 ms in all,
so such a machine finishes 150-310 orders a second whatever the fleet's size, a little below the
full fleet's nominal 400 (`max_size x http_connections / work`). While the fleet grows the policy
sets the pace, and the live run agrees with the simulator; at full size a small machine does,
so its queue empties later than the simulator's, and `overtime_s` lets the run go on until it
is empty rather than stop with orders still queued.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from labapp.scaling.agreement import Agreement, agreement, policy_period
from labapp.scaling.fleet import FleetController, LiveTimeline, Reconciliation
from labapp.scaling.policies import TargetTrackingPolicy, target_from_latency
from labapp.scaling.simulate import Timeline
from labapp.scaling.traffic import SALE_LASTS_S, SALE_OPENS_S, order_flash_sale


@dataclasses.dataclass(frozen=True)
class SaleSettings:
    """How the live sale runs: the worker, the policy's numbers and the time compression.

    `time_scale` is scaled seconds per wall second. `processing_time_s` is one order's work in
    scaled seconds and `http_connections` the daemon's HttpConnections. `launch_delay_s` runs
    from the scaling decision to InService. `acceptable_wait_s` gives the policy's target through
    AWS's formula; `instance_warmup_s`, `max_size` and `scale_in_datapoints` go to the policy.
    `overtime_s` is how long the run may go on after the trace while orders are still queued.
    """

    time_scale: float = 60.0
    processing_time_s: float = 24.0
    http_connections: int = 20
    launch_delay_s: float = 120.0
    acceptable_wait_s: float = 300.0
    instance_warmup_s: float = 60.0
    max_size: int = 8
    scale_in_datapoints: int = 2
    overtime_s: float = 40 * 60

    @property
    def target_value(self) -> float:
        """Return the backlog per instance the policy tracks: acceptable wait x connections / work."""
        return target_from_latency(self.acceptable_wait_s, self.processing_time_s, self.http_connections)

    @property
    def work_ms(self) -> int:
        """Return one order's work in wall milliseconds."""
        return round(self.processing_time_s * 1000 / self.time_scale)

    @property
    def nominal_per_s(self) -> float:
        """Return the most orders a full fleet finishes per wall second, by its settings."""
        return self.max_size * self.http_connections * 1000 / self.work_ms

    def policy(self) -> TargetTrackingPolicy:
        """Return the sale's target tracking policy (a fresh one: a policy keeps state)."""
        return TargetTrackingPolicy(
            TargetValue=self.target_value,
            InstanceWarmup=self.instance_warmup_s,
            MaxSize=self.max_size,
            ScaleInDatapoints=self.scale_in_datapoints,
        )

    def controller(self, endpoint_url: str, arrivals: np.ndarray | None = None) -> FleetController:
        """Return a FleetController for the sale (or other `arrivals`) on the SQS endpoint."""
        return FleetController(
            self.policy(),
            order_flash_sale() if arrivals is None else arrivals,
            endpoint_url=endpoint_url,
            time_scale=self.time_scale,
            processing_time_s=self.processing_time_s,
            http_connections=self.http_connections,
            launch_delay_s=self.launch_delay_s,
            overtime_s=self.overtime_s,
            scenario="order",
        )


PACE_KEPT = 0.9  # a full fleet this close to its nominal pace was held back by nothing but its settings

#: The sale as notebook 07 and the fleet benchmark run it.
SALE = SaleSettings()


@dataclasses.dataclass(frozen=True)
class SaleRun:
    """One live run of the sale, the simulator's run of the same trace, and what they add up to."""

    settings: SaleSettings
    live: LiveTimeline
    sim: Timeline
    tally: Reconciliation
    wall_s: float  # from booting the first instance to the last one stopped

    @property
    def agreement(self) -> Agreement:
        """Return how closely the live desired capacity followed the simulator's."""
        return agreement(self.live, self.sim, policy_period(self.settings.policy()))

    @property
    def peak_instances(self) -> int:
        """Return the most instances in service at once."""
        return int(self.live.in_service.max(initial=0))

    @property
    def drained_at_s(self) -> float:
        """Return the scaled time the queue was first empty after the last order was due (inf if never)."""
        due = np.flatnonzero(self.sim.arrivals)
        last_due = float(due[-1] + 1) if due.size else 0.0
        left = self.live.visible + self.live.in_flight
        empty = np.flatnonzero((left == 0) & (self.live.time_s >= last_due))
        return float(self.live.time_s[empty[0]]) if empty.size else math.inf

    @property
    def messages_per_s(self) -> float:
        """Return orders finished per wall second, from the sale's opening until the queue was empty."""
        drained = self.drained_at_s
        if drained == math.inf:
            drained = float(self.live.time_s[-1]) if self.live.time_s.size else SALE_OPENS_S + 1.0
        return self.tally.applied / max((drained - SALE_OPENS_S) / self.settings.time_scale, 1e-9)

    @property
    def full_size_per_s(self) -> float | None:
        """Return orders finished per wall second at MaxSize once the last order was due (None if never)."""
        left = self.live.visible + self.live.in_flight
        # Up to the last tick with work left: an idle fleet waiting to scale in is no measure of pace.
        at_full = (
            (self.live.in_service == self.settings.max_size)
            & (self.live.time_s >= SALE_OPENS_S + SALE_LASTS_S)
            & (np.arange(left.size) <= np.flatnonzero(left).max(initial=0))
        )
        rows = np.flatnonzero(at_full)
        if rows.size < 2 or self.live.wall_s[rows[-1]] - self.live.wall_s[rows[0]] < 1:
            return None
        first, last = rows[0], rows[-1]
        return float(left[first] - left[last]) / float(self.live.wall_s[last] - self.live.wall_s[first])

    def pace(self) -> str:
        """Return one line: the full fleet's pace against its nominal one, and who set it."""
        rate, nominal = self.full_size_per_s, self.settings.nominal_per_s
        if rate is None:
            return f"the fleet never ran at full size ({self.settings.max_size}) after the last order was due"
        share = rate / nominal
        who = (
            "the policy set the pace, as in the simulator"
            if share >= PACE_KEPT
            else "this machine's CPU set the pace, so its queue empties later than the simulator's"
        )
        return f"at full size the fleet finished {rate:.0f} orders/s, {share:.0%} of its nominal {nominal:.0f}: {who}"

    def report(self) -> str:
        """Return the run in five lines: time, throughput, the fleet, its pace, the reconciliation."""
        drained = self.drained_at_s
        if drained != math.inf:
            when = f"from the opening until the queue was empty at minute {drained / 60:.0f}"
        else:
            end = self.live.time_s[-1] / 60 if self.live.time_s.size else 0.0
            when = f"from the opening to minute {end:.0f}, when the run stopped with orders still queued"
        return "\n".join(
            [
                f"wall time {self.wall_s:.0f} s for {self.live.time_s[-1] / 60:.0f} scaled minutes "
                f"(x{self.settings.time_scale:g})",
                f"{self.messages_per_s:.0f} orders/s (wall) {when}",
                f"peak {self.peak_instances} instances in service; {len(self.live.events)} scaling actions",
                self.pace(),
                str(self.tally),
            ]
        )


def run_sale(endpoint_url: str, settings: SaleSettings = SALE) -> SaleRun:
    """Play the 10,000-order sale through a live fleet on the endpoint; stop it; return the run."""
    fleet = settings.controller(endpoint_url)
    began = time.perf_counter()
    live = fleet.run()
    wall = time.perf_counter() - began
    return SaleRun(settings, live, fleet.simulated(), fleet.reconcile(), wall)
