"""Scaling runs as pictures: simulated runs side by side, cost against latency, a live fleet's drain.

Every figure is 9 in wide at 100 dpi, 900 px, which JupyterLab shows 1:1 and crisp at 100% zoom.
Legends sit outside the axes, to the right, so they cover no line. Tick labels are plain numbers
("5 min", "12,000"), never offsets or powers of ten, even on a log axis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from labapp.scaling.fleet import LiveTimeline
from labapp.scaling.simulate import Timeline

WIDTH_IN, DPI = 9.0, 100
#: The 1-2-5 steps of a log axis, as plain numbers.
_STEPS = (1.0, 2.0, 5.0)
#: Markers for points that differ in name only, so a legend tells them apart without colour.
_MARKERS = "osD^vP*X"


def _figure(rows: int, height_in: float) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        rows, 1, figsize=(WIDTH_IN, height_in), dpi=DPI, sharex=True, layout="constrained"
    )
    return fig, axes


def _plain(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}"))


def _legend_right(axis: Any) -> None:
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")


def plot_runs(runs: Mapping[str, Timeline], unit_s: float = 3600) -> Any:
    """Plot the backlog and desired instances of simulated runs, one line each; return the figure."""
    fig, (top, bottom) = _figure(2, 4.8)
    for name, run in runs.items():
        top.plot(run.time_s / unit_s, run.visible, lw=1.2, label=name)
        bottom.step(run.time_s / unit_s, run.desired, where="post", lw=1.2, label=name)
    top.set(ylabel="messages waiting")
    unit = {3600: "hours", 60: "minutes"}.get(int(unit_s), f"units of {unit_s:g} s")
    bottom.set(ylabel="desired instances", xlabel=f"time ({unit})")
    bottom.set_ylim(bottom=0)
    for axis in (top, bottom):
        _plain(axis.yaxis)
        axis.grid(alpha=0.3)
    _legend_right(top)
    return fig


def log_ticks(low: float, high: float) -> list[float]:
    """Return the 1-2-5 ticks from just below `low` to just above `high` (both more than 0)."""
    if not 0 < low <= high:
        raise ValueError(f"log ticks need 0 < low <= high; got {low!r} and {high!r}")
    exponents = range(int(np.floor(np.log10(low))) - 1, int(np.ceil(np.log10(high))) + 1)
    ticks = [step * 10.0**e for e in exponents for step in _STEPS]
    below = max((t for t in ticks if t <= low), default=ticks[0])
    above = min((t for t in ticks if t >= high), default=ticks[-1])
    return [t for t in ticks if below <= t <= above]


def plot_cost_latency(points: Mapping[str, Mapping[str, float]]) -> Any:
    """Plot each run's instance-hours against its p99 latency (log axis, plain minutes); return the figure.

    `points` maps a name to a `Timeline.summary()`; each point gets its own marker and a legend entry.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    fig, ax = _figure(1, 4.0)
    minutes = [p["latency_p99_s"] / 60 for p in points.values()]
    for i, (name, point) in enumerate(points.items()):
        ax.scatter(
            point["instance_hours"],
            point["latency_p99_s"] / 60,
            s=60,
            marker=_MARKERS[i % len(_MARKERS)],
            label=name,
        )
    ax.set_yscale("log")
    ticks = log_ticks(min(minutes), max(minutes))
    ax.set_ylim(ticks[0], ticks[-1])
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g} min"))
    ax.set(xlabel="instance-hours (the cost)", ylabel="p99 latency (log scale)")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    _legend_right(ax)
    return fig


def plot_drain(live: LiveTimeline, sim: Timeline) -> Any:
    """Plot a live fleet's backlog and instances next to the simulator's run; return the figure."""
    fig, (top, bottom) = _figure(2, 5.0)
    live_min, sim_min = live.time_s / 60, sim.time_s / 60
    top.plot(sim_min, sim.visible, color="0.55", lw=3, label="simulator")
    top.plot(live_min, live.visible, color="C0", lw=1.5, label="live fleet")
    top.set(ylabel="orders waiting")
    bottom.step(sim_min, sim.desired, where="post", color="0.55", lw=3, label="simulator: desired")
    bottom.step(live_min, live.desired, where="post", color="C0", lw=1.5, label="live: desired")
    bottom.step(
        live_min, live.in_service, where="post", color="C1", lw=1.5, ls="--", label="live: in service"
    )
    bottom.set(ylabel="instances", xlabel="scaled time (minutes)")
    bottom.set_ylim(0, max(int(sim.desired.max(initial=1)), int(live.desired.max(initial=1))) + 1)
    for axis in (top, bottom):
        _plain(axis.yaxis)
        axis.grid(alpha=0.3)
    _legend_right(top)
    _legend_right(bottom)
    return fig


def plot_instances(live: LiveTimeline, sim: Timeline) -> Any:
    """Plot desired and in-service instances of a live run next to the simulator's; return the figure."""
    fig, ax = _figure(1, 3.0)
    ax.step(sim.time_s / 60, sim.desired, where="post", color="0.55", lw=3, label="simulator: desired")
    ax.step(live.time_s / 60, live.desired, where="post", color="C0", label="live: desired")
    ax.step(live.time_s / 60, live.in_service, where="post", color="C1", ls="--", label="live: in service")
    ax.set(xlabel="scaled time (minutes)", ylabel="instances")
    ax.grid(alpha=0.3)
    _legend_right(ax)
    return fig
