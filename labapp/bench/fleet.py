"""How closely a live local fleet follows the simulator: the seed's 10,000-order sale, then compressions.

Run with `labapp bench fleet [time_scale ...]`. First it plays notebook 07's sale (`scaling.sale.SALE`:
10,000 orders through up to 8 instance processes) and prints the wall time, orders per second, the
peak fleet, the reconciliation (lost must be 0) and the agreement with the simulator, with the CPU
the endpoint's process and the instances used. Then it plays the small lab-sized flash sale (30
scaled minutes) at each time compression (default: 60 90 120): higher compression is faster but
leaves less room for the time each POST, delete and tick really takes.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time

from labapp.runtime.emulator import Emulator
from labapp.scaling.fleet import FleetController, agreement, policy_period
from labapp.scaling.policies import TargetTrackingPolicy
from labapp.scaling.sale import SALE, run_sale
from labapp.scaling.traffic import lab_flash_sale


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def order_sale(endpoint_url: str) -> str:
    """Play the 10,000-order sale once and return its figures, a few lines."""
    own, children = _cpu_s(resource.RUSAGE_SELF), _cpu_s(resource.RUSAGE_CHILDREN)
    run = run_sale(endpoint_url, SALE)
    own, children = _cpu_s(resource.RUSAGE_SELF) - own, _cpu_s(resource.RUSAGE_CHILDREN) - children
    result = run.agreement
    verdict = "ok" if result.ok() else "OUT OF TOLERANCE"
    sent = max(run.tally.sent, 1)
    return "\n".join(
        [
            "10,000-order sale (notebook 07):",
            *(f"  {line}" for line in run.report().splitlines()),
            f"  cpu: {own:.1f} s in this process (endpoint, sender, controller), {children:.1f} s in the "
            f"instances; {1000 * (own + children) / sent:.1f} ms an order",
            f"  {verdict}: {result}",
        ]
    )


def run(endpoint_url: str, time_scale: float) -> str:
    """Play the lab-sized flash sale once at `time_scale` and return one line of results."""
    arrivals = lab_flash_sale()
    policy = TargetTrackingPolicy(TargetValue=10, InstanceWarmup=120, MaxSize=5, ScaleInDatapoints=3)
    fleet = FleetController(policy, arrivals, endpoint_url=endpoint_url, time_scale=time_scale)
    began = time.perf_counter()
    live = fleet.run()
    wall = time.perf_counter() - began
    tally = fleet.reconcile()
    result = agreement(live, fleet.simulated(), policy_period(policy))
    verdict = "ok" if result.ok() else "OUT OF TOLERANCE"
    return f"x{time_scale:g}: {wall:.1f} s wall, lost {tally.lost}; {verdict}: {result}"


def main(argv: list[str] | None = None) -> int:
    """Play the 10,000-order sale, then the lab-sized sale at each compression; print the figures."""
    os.environ["LAB_HOME"] = tempfile.mkdtemp(prefix="fleet-bench-")
    scales = [float(a) for a in argv or []] or [60.0, 90.0, 120.0]
    with Emulator(port=0) as emulator:
        print(order_sale(emulator.url), flush=True)
        for scale in scales:
            print(run(emulator.url, scale), flush=True)
    return 0
