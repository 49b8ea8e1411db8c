"""Plots of scaling runs: a live fleet next to the simulator, and simulated runs side by side."""

from __future__ import annotations

from typing import Any

from labapp.scaling.fleet import LiveTimeline
from labapp.scaling.simulate import Timeline


def plot_instances(live: LiveTimeline, sim: Timeline) -> Any:
    """Plot desired and in-service instances of a live run next to the simulator's; return the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3))
    ax.step(sim.time_s / 60, sim.desired, where="post", color="0.6", lw=3, label="simulator: desired")
    ax.step(live.time_s / 60, live.desired, where="post", color="C0", label="live fleet: desired")
    ax.step(
        live.time_s / 60, live.in_service, where="post", color="C1", ls="--", label="live fleet: in service"
    )
    ax.set(xlabel="scaled time (minutes)", ylabel="instances")
    ax.legend(loc="upper right", fontsize="small")
    return fig


def plot_runs(runs: dict[str, Timeline], unit_s: float = 3600) -> Any:
    """Plot the backlog and desired instances of simulated runs, one line each; return the figure."""
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True)
    for name, run in runs.items():
        top.plot(run.time_s / unit_s, run.visible, label=name)
        bottom.step(run.time_s / unit_s, run.desired, where="post", label=name)
    top.set(ylabel="messages waiting")
    bottom.set(ylabel="instances", xlabel="hours" if unit_s == 3600 else f"time (units of {unit_s:g} s)")
    top.legend(fontsize="small")
    return fig
