"""How closely a live local fleet follows the simulator, at a few time compressions.

Run with `labapp bench fleet [time_scale ...]` (default: 60 90 120). Each run
plays notebook 07's lab-sized flash sale (30 scaled minutes) through real instance processes on a
private moto endpoint and prints the wall time, the reconciliation and the agreement. Higher
compression is faster but leaves less room for the time each POST, delete and tick really takes.
"""

from __future__ import annotations

import os
import tempfile
import time

from labapp.runtime.emulator import Emulator
from labapp.scaling.fleet import FleetController, agreement, policy_period
from labapp.scaling.policies import TargetTrackingPolicy
from labapp.scaling.traffic import lab_flash_sale


def run(endpoint_url: str, time_scale: float) -> str:
    """Play the flash sale once at `time_scale` and return one line of results."""
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
    """Play the lab-sized flash sale at each time compression and print one line per run."""
    os.environ["LAB_HOME"] = tempfile.mkdtemp(prefix="fleet-bench-")
    scales = [float(a) for a in argv or []] or [60.0, 90.0, 120.0]
    with Emulator(port=0) as emulator:
        for scale in scales:
            print(run(emulator.url, scale), flush=True)
    return 0
