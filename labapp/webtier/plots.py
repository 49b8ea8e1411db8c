"""The web tier's pictures: latency percentiles side by side, and a flash sale over time.

Sync and async latencies differ by a factor of a hundred or more, so the latency axis turns
logarithmic when it must, and its ticks then read "30 ms" or "3 s", never "3×10⁰". Figures are
900 px wide at 100 dpi: JupyterLab shows them at their natural size, crisp at 100% zoom.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from labapp.webtier.load import PERCENTILES, LoadResult

#: Width and height in inches, and dots per inch: 900 px wide.
FIGSIZE = (9.0, 3.8)
DPI = 100
#: Above this ratio of the largest latency to the smallest, the latency axis is logarithmic.
LOG_RATIO = 20.0
_STEPS = (1.0, 2.0, 5.0)


def format_seconds(seconds: float) -> str:
    """Return a duration as a plain label: "500 µs", "30 ms", "1.5 s"."""
    if seconds == 0:
        return "0"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(seconds) >= scale or unit == "µs":
            return f"{float(f'{seconds / scale:.3g}'):g} {unit}"
    raise AssertionError("unreachable")


def log_ticks(low: float, high: float) -> list[float]:
    """Return the 1-2-5 ticks (in seconds) from just below low to just above high."""
    if not 0 < low <= high:
        raise ValueError(f"log ticks need 0 < low <= high; got {low!r} and {high!r}")
    ticks: list[float] = []
    for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        ticks += [step * 10.0**exponent for step in _STEPS]
    below = [t for t in ticks if t <= low]
    above = [t for t in ticks if t >= high]
    return [t for t in ticks if below[-1] <= t <= above[0]]


def _latency_axis(ax: Any, values: list[float]) -> None:
    """Set the latency axis: linear from 0, or logarithmic with plain 1-2-5 labels when the spread is wide."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    positive = [v for v in values if v > 0]
    formatter = FuncFormatter(lambda value, _pos: format_seconds(value))
    if positive and max(positive) / min(positive) > LOG_RATIO:
        ticks = log_ticks(min(positive), max(positive))
        ax.set_yscale("log")
        ax.set_ylim(ticks[0], ticks[-1] * 1.6)  # room above the tallest bar for its label
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_ylabel("latency (log scale)")
    else:
        ax.set_ylim(0, (max(values) if values else 1.0) * 1.2)
        ax.set_ylabel("latency")
    ax.yaxis.set_major_formatter(formatter)
    ax.grid(axis="y", color="0.9")
    ax.set_axisbelow(True)


def plot_latency(results: Mapping[str, LoadResult]) -> Any:
    """Draw p50, p90 and p99 latency as bars, one group per run (say "sync" and "async"); return the figure."""
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("results is empty; pass {name: LoadResult}")
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    width = 0.8 / len(PERCENTILES)
    values: list[float] = []
    for k, (name, q) in enumerate(PERCENTILES.items()):
        heights = [result.percentile(q) for result in results.values()]
        values += heights
        xs = [group + (k - (len(PERCENTILES) - 1) / 2) * width for group in range(len(results))]
        bars = ax.bar(xs, heights, width * 0.92, label=name, color=f"C{k}")
        ax.bar_label(bars, labels=[format_seconds(h) for h in heights], padding=2, fontsize=9)
    _latency_axis(ax, values)
    ax.set_xticks(
        range(len(results)),
        [f"{name}\n{len(r.outcomes)} requests, {r.errors} errors" for name, r in results.items()],
    )
    ax.set_title("Latency per request: half took at most p50; 1 in 100 took longer than p99", fontsize=10)
    fig.legend(loc="outside right upper", title="percentile", frameon=False)
    return fig


def plot_flash_sale(results: Mapping[str, LoadResult], *, probe_label: str = "queue depth (messages)") -> Any:
    """Draw each request's latency against when it arrived, and each run's probe on a second axis; return the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not results:
        raise ValueError("results is empty; pass {name: LoadResult}")
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    latencies = [o.latency_s for r in results.values() for o in r.outcomes]
    last_due = max((o.due_s for r in results.values() for o in r.outcomes), default=0.0)
    ax.axvspan(0, last_due, color="0.94", label="the sale: customers arriving")
    for k, (name, result) in enumerate(results.items()):
        good = [o for o in result.outcomes if o.ok]
        bad = [o for o in result.outcomes if not o.ok]
        ax.scatter(
            [o.due_s for o in good],
            [o.latency_s for o in good],
            s=10,
            color=f"C{k}",
            label=f"{name}: a request",
        )
        if bad:
            ax.scatter(
                [o.due_s for o in bad],
                [o.latency_s for o in bad],
                s=28,
                marker="x",
                color=f"C{k}",
                label=f"{name}: failed or no answer",
            )
    _latency_axis(ax, latencies)
    ax.set_xlabel("time since the sale began (s)")
    probed = {name: r.probes for name, r in results.items() if r.probes}
    if probed:
        depth_ax = ax.twinx()
        for k, (name, probes) in enumerate(probed.items()):
            depth_ax.step(
                [t for t, _ in probes],
                [v for _, v in probes],
                where="post",
                color="0.25",
                linestyle=("--", ":", "-.")[k % 3],
                label=f"{name}: {probe_label}",
            )
        depth_ax.set_ylabel(probe_label)
        depth_ax.set_ylim(bottom=0)
        depth_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    # Set last: a limit set earlier would stop the probe's axis from widening the view.
    ends = [o.due_s + o.latency_s for r in results.values() for o in r.outcomes]
    ends += [t for r in results.values() for t, _ in r.probes]
    ax.set_xlim(0, max(ends, default=1.0) * 1.02)
    ax.set_title("A flash sale: latency of each request as customers arrive", fontsize=10)
    # Outside the axes, so the legend never hides a point.
    fig.legend(loc="outside right upper", frameon=False, fontsize=9)
    return fig
