"""A scaling tuner: move a policy's sliders and watch backlog, instances and latency change at once.

A notebook passes its own worker, traffic and policy in (`scaling_tuner(worker=..., traffic=...,
policy=...)`), so the sliders start from the numbers the learner has just read. Every change submits the current settings to a background renderer that keeps only the newest
request (a drag sends dozens), runs `labapp.scaling.simulate` and draws the timeline into an
Image widget. The simulator needs tens of milliseconds for hours of traffic, so it feels live.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w
import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator

from labapp import scaling as sim
from labapp.errors import ConfigError
from labapp.scaling import HOUR_S, Policy, TargetTrackingPolicy, ThresholdPolicy, target_from_latency
from labapp.widgets._common import LatestWins, TextFallback, close_all, figure_png, line, new_figure

ACCEPTABLE_LATENCY_S = 60  # for the AWS target formula shown under the sliders
#: The worker the sliders start from when a notebook passes none: 2 s a message, 10 connections.
DEFAULT_WORKER: dict[str, float] = {"processing_time_s": 2.0, "http_connections": 10, "launch_delay_s": 180}
DEFAULT_POLICY = TargetTrackingPolicy(TargetValue=100, InstanceWarmup=120, MaxSize=8)
#: The plot: 900 px wide, 9-point text; time in hours beyond 3 hours, else in minutes.
FIGURE_IN, FIGURE_DPI, FONT_PT = (9.0, 4.8), 100, 9
LONG_AXIS_S = 3 * HOUR_S
#: Traffic longer than this is simulated in 10-second ticks, so a day still redraws at once.
LONG_TRAFFIC_S = 6 * HOUR_S


@functools.lru_cache(maxsize=8)
def _profile(name: str) -> tuple[np.ndarray, int]:
    """Return (arrivals per second, simulation tick in seconds) for a built-in traffic profile."""
    if name == "spike":
        return sim.spike(2, 30, start=HOUR_S, length=HOUR_S // 2, duration_s=3 * HOUR_S), 1
    if name == "bursty":
        return sim.bursty(2, burst_every=1200, burst_size=3000, duration_s=3 * HOUR_S), 1
    if name == "diurnal":
        return sim.diurnal(12, 10, duration_s=24 * HOUR_S), 10  # a whole day: 10-second ticks
    return sim.steady(8, duration_s=3 * HOUR_S), 1


PROFILES = [
    ("flash sale: 2/s, then 30/s for 30 min", "spike"),
    ("bursts: 3,000 messages every 20 min", "bursty"),
    ("a day: 2/s at night, 22/s at noon", "diurnal"),
    ("steady 8/s", "steady"),
]


def _slider(kind: Callable[..., Any], value: Any, low: Any, high: Any, step: Any, label: str) -> Any:
    return kind(
        value=value,
        min=low,
        max=high,
        step=step,
        description=label,
        style={"description_width": "190px"},
        layout=w.Layout(width="480px"),
    )


class ScalingTuner(TextFallback, w.VBox):
    """Policy sliders on the left of the question, a simulated timeline as the answer.

    `traffic` maps a name to arrivals per second, listed first in the Traffic menu (`arrivals`
    alone is listed as "your arrivals"); `worker` holds processing_time_s, http_connections and
    optionally launch_delay_s, as `simulate()` takes them; `policy` is the policy the sliders
    start from; `acceptable_latency_s` is the latency in the AWS formula line.
    """

    def __init__(
        self,
        arrivals: np.ndarray | None = None,
        *,
        traffic: Mapping[str, np.ndarray] | None = None,
        worker: Mapping[str, float] | None = None,
        policy: Policy | None = None,
        acceptable_latency_s: float = ACCEPTABLE_LATENCY_S,
    ) -> None:
        self.custom: dict[str, np.ndarray] = dict(traffic or {})
        if arrivals is not None:
            self.custom["your arrivals"] = arrivals
        self.acceptable_latency_s = acceptable_latency_s
        self.frames = 0
        self.error: str | None = None
        profiles = [(name, f"custom:{name}") for name in self.custom] + PROFILES
        start = {**DEFAULT_WORKER, **(worker or {})}
        policy = policy or DEFAULT_POLICY
        tracking = policy if isinstance(policy, TargetTrackingPolicy) else DEFAULT_POLICY
        alarm = policy if isinstance(policy, ThresholdPolicy) else None
        self.policy = w.ToggleButtons(
            options=[("Target tracking (AWS recommends)", "target"), ("Threshold alarm", "threshold")],
            value="threshold" if alarm else "target",
            style={"button_width": "280px"},
        )
        self.profile = w.Dropdown(
            options=profiles,
            value=profiles[0][1],
            description="Traffic",
            style={"description_width": "190px"},
            layout=w.Layout(width="480px"),
        )
        self.processing_s = _slider(
            w.FloatSlider, start["processing_time_s"], 0.5, 30.0, 0.5, "Seconds per message"
        )
        self.connections = _slider(w.IntSlider, start["http_connections"], 1, 100, 1, "HttpConnections")
        self.launch_s = _slider(w.IntSlider, start["launch_delay_s"], 0, 600, 30, "Launch delay (s)")
        low, high = (alarm or tracking).MinSize, (alarm or tracking).MaxSize
        self.sizes = _slider(w.IntRangeSlider, (low, high), 0, max(20, high), 1, "MinSize – MaxSize")
        self.target = _slider(w.IntSlider, round(tracking.TargetValue), 5, 2000, 5, "TargetValue")
        self.warmup = _slider(w.IntSlider, tracking.InstanceWarmup, 0, 900, 30, "InstanceWarmup (s)")
        alarm = alarm or ThresholdPolicy(UpperThreshold=200, LowerThreshold=20)
        limits = (round(alarm.LowerThreshold), round(alarm.UpperThreshold))
        self.thresholds = _slider(w.IntRangeSlider, limits, 0, 2000, 10, "Lower – Upper threshold")
        self.period = _slider(w.IntSlider, alarm.Period, 60, 900, 60, "Period (s)")
        self.evaluations = _slider(w.IntSlider, alarm.EvaluationPeriods, 1, 10, 1, "EvaluationPeriods")
        self.cooldown = _slider(w.IntSlider, alarm.Cooldown, 0, 900, 30, "Cooldown (s)")
        step = alarm.UpperBreachScaleIncrement
        self.step = _slider(w.IntSlider, step, 1, max(5, step), 1, "UpperBreachScaleIncrement")
        self.target_box = w.VBox([self.target, self.warmup])
        self.threshold_box = w.VBox(
            [self.thresholds, self.period, self.evaluations, self.cooldown, self.step]
        )
        self.hint = w.HTML()
        self.summary = w.HTML()
        self.busy = w.HTML()
        self.image = w.Image(format="png")
        self.image.add_class("lab-tuner-plot")
        self._setup_figure()
        self._renderer: LatestWins[dict[str, Any]] = LatestWins(
            self._render, "lab-scaling-tuner", on_busy=self._show_busy
        )
        for control in self._controls():
            control.observe(self._changed, names="value")
        super().__init__(
            [
                self.policy,
                self.profile,
                w.HBox(
                    [
                        w.VBox([self.processing_s, self.connections, self.launch_s, self.sizes]),
                        w.VBox([self.target_box, self.threshold_box]),
                    ],
                    layout=w.Layout(flex_flow="row wrap"),
                ),
                self.hint,
                w.HBox([self.summary, self.busy]),
                self.image,
            ]
        )
        self.add_class("lab-tuner")
        self._changed()

    def _controls(self) -> tuple[Any, ...]:
        return (
            self.policy,
            self.profile,
            self.processing_s,
            self.connections,
            self.launch_s,
            self.sizes,
            self.target,
            self.warmup,
            self.thresholds,
            self.period,
            self.evaluations,
            self.cooldown,
            self.step,
        )

    # -- from sliders to a simulation ----------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Return the current slider values as one plain dict."""
        return {
            "policy": self.policy.value,
            "profile": self.profile.value,
            "processing_time_s": self.processing_s.value,
            "http_connections": self.connections.value,
            "launch_delay_s": self.launch_s.value,
            "sizes": self.sizes.value,
            "target": self.target.value,
            "warmup": self.warmup.value,
            "thresholds": self.thresholds.value,
            "period": self.period.value,
            "evaluations": self.evaluations.value,
            "cooldown": self.cooldown.value,
            "step": self.step.value,
        }

    def _changed(self, _change: Any = None) -> None:
        is_target = self.policy.value == "target"
        self.target_box.layout.display = None if is_target else "none"
        self.threshold_box.layout.display = "none" if is_target else None
        # The formula is target tracking's: under a threshold alarm it would explain a slider not shown.
        self.hint.layout.display = None if is_target else "none"
        latency = self.acceptable_latency_s
        suggested = target_from_latency(latency, self.processing_s.value, self.connections.value)
        self.hint.value = line(
            f"AWS's formula: acceptable latency ÷ time per message = {latency:g} s ÷ "
            f"({self.processing_s.value:g} s ÷ {self.connections.value} connections) = TargetValue "
            f"{suggested:.0f} (messages of backlog per instance)."
        )
        self._renderer.submit(self.settings())

    def wait_idle(self, timeout: float = 10) -> bool:
        """Block until the newest settings are drawn; return False on timeout."""
        return self._renderer.wait_idle(timeout)

    def _arrivals(self, profile: str) -> tuple[np.ndarray, int]:
        name = profile.removeprefix("custom:")
        if name in self.custom and profile != name:
            arrivals = self.custom[name]
            return arrivals, 10 if arrivals.size > LONG_TRAFFIC_S else 1
        return _profile(profile)

    def _render(self, settings: dict[str, Any]) -> None:
        try:
            policy = build_policy(settings)
            arrivals, tick = self._arrivals(settings["profile"])
            timeline = sim.simulate(
                arrivals,
                policy,
                processing_time_s=settings["processing_time_s"],
                http_connections=settings["http_connections"],
                launch_delay_s=settings["launch_delay_s"],
                tick_s=tick,
            )
        except ConfigError as exc:
            self.error = str(exc)
            self.summary.value = line(f"Not a valid policy: {exc}", "bad")
            return
        self.error = None
        # Image first, numbers right after: the two change together on screen.
        self.image.value = self._draw(timeline)
        self.summary.value = summary_html(timeline.summary())
        self.frames += 1

    def _show_busy(self, busy: bool) -> None:
        # The class lets a browser test (or a stylesheet) tell a finished drawing from a stale one.
        if busy:
            self.add_class("lab-busy")
            self.busy.value = line("redrawing…")
        else:
            self.remove_class("lab-busy")
            self.busy.value = ""

    # -- drawing ------------------------------------------------------------------------------
    def _setup_figure(self) -> None:
        # 9 in at 100 dpi: 900 px, shown 1:1, with 9-point text that reads at 100% zoom.
        self.figure = new_figure(FIGURE_IN[0], FIGURE_IN[1], dpi=FIGURE_DPI)
        self.axes = self.figure.subplots(3, 1, sharex=True, height_ratios=[2, 1.4, 2])
        # The right margin holds the legend, so it never covers a line.
        self.figure.subplots_adjust(left=0.1, right=0.84, top=0.97, bottom=0.1, hspace=0.14)

    def _draw(self, timeline: sim.Timeline) -> bytes:
        backlog, fleet, age = self.axes
        for axis in self.axes:
            axis.clear()
            axis.grid(alpha=0.3)
            axis.tick_params(labelsize=FONT_PT)
            axis.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}"))
        hours = timeline.time_s.size and timeline.time_s[-1] > LONG_AXIS_S
        unit, per = ("hours", 3600.0) if hours else ("minutes", 60.0)
        x = timeline.time_s / per
        backlog.plot(x, timeline.visible, color="C0", lw=1)
        backlog.set_ylabel("backlog\n(messages)", fontsize=FONT_PT)
        fleet.step(x, timeline.desired, where="post", color="C1", lw=1.2, label="desired")
        fleet.step(x, timeline.in_service, where="post", color="C2", lw=1.2, label="in service")
        fleet.set_ylim(0, max(2, int(timeline.desired.max(initial=1)) + 1))
        fleet.set_ylabel("instances", fontsize=FONT_PT)
        fleet.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=FONT_PT, frameon=False)
        age.plot(x, timeline.oldest_age_s, color="C3", lw=1)
        age.set_ylabel("oldest message\nage (s)", fontsize=FONT_PT)
        age.set_xlabel(unit, fontsize=FONT_PT)
        age.set_xlim(0, max(1.0, float(x[-1]) if x.size else 1.0))
        return figure_png(self.figure)

    def text(self) -> str:
        """Return the tuner's text fallback."""
        return "Scaling tuner on the simulator (move the sliders in the live notebook)."

    def close(self) -> None:
        """Stop the renderer thread and close every part of the widget."""
        self._renderer.close()
        close_all(*self.children)
        super().close()


def build_policy(settings: dict[str, Any]) -> Policy:
    """Build the scaling policy the sliders describe (ConfigError names any invalid value)."""
    low_size, high_size = settings["sizes"]
    if settings["policy"] == "target":
        return TargetTrackingPolicy(
            TargetValue=settings["target"],
            InstanceWarmup=settings["warmup"],
            MinSize=low_size,
            MaxSize=high_size,
        )
    lower, upper = settings["thresholds"]
    return ThresholdPolicy(
        UpperThreshold=upper,
        LowerThreshold=lower,
        Period=settings["period"],
        BreachDuration=settings["period"],
        EvaluationPeriods=settings["evaluations"],
        Cooldown=settings["cooldown"],
        UpperBreachScaleIncrement=settings["step"],
        MinSize=low_size,
        MaxSize=high_size,
    )


def summary_html(summary: dict[str, float]) -> str:
    """Return the run's headline numbers as one line."""

    def seconds(value: float) -> str:
        return "—" if math.isnan(value) else f"{value:,.0f} s"

    parts = [
        f"latency p50 <b>{seconds(summary['latency_p50_s'])}</b>",
        f"p90 <b>{seconds(summary['latency_p90_s'])}</b>",
        f"p99 <b>{seconds(summary['latency_p99_s'])}</b>",
        f"max backlog <b>{summary['max_backlog']:,}</b>",
        f"instance-hours <b>{summary['instance_hours']:.1f}</b>",
        f"scaling actions <b>{summary['scaling_actions']}</b>",
    ]
    if summary.get("unfinished"):
        parts.append(f"<span style='color:#cf222e'>{summary['unfinished']:,} never processed</span>")
    return " · ".join(parts)


def scaling_tuner(
    arrivals: np.ndarray | None = None,
    *,
    traffic: Mapping[str, np.ndarray] | None = None,
    worker: Mapping[str, float] | None = None,
    policy: Policy | None = None,
    acceptable_latency_s: float = ACCEPTABLE_LATENCY_S,
) -> ScalingTuner:
    """Tune a scaling policy with sliders and see the simulated backlog, instances and latency.

    Pass the notebook's own numbers so the sliders start there, e.g.
    `scaling_tuner(worker=EB_WORKER, traffic={"flash sale": sale}, policy=tracking)`.
    """
    return ScalingTuner(
        arrivals, traffic=traffic, worker=worker, policy=policy, acceptable_latency_s=acceptable_latency_s
    )
