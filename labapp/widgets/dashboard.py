"""A live dashboard: queue depths, deliveries and instances over the last minutes, redrawn 4 times a second.

A background thread polls `lab.depth()`, reads the daemon's new events, draws a small matplotlib
figure to PNG and sets an Image widget's value. Setting a trait from a thread is safe, an image
swap never flickers, and the kernel stays free for the learner's next cell.
"""

from __future__ import annotations

import collections
import time
import weakref
from collections.abc import Callable
from typing import Any

import ipywidgets as w
from botocore.exceptions import BotoCoreError, ClientError
from matplotlib.ticker import MaxNLocator

from labapp.errors import LabError
from labapp.sqsd import EventKind
from labapp.widgets._common import (
    TextFallback,
    Ticker,
    close_all,
    figure_png,
    join_lab,
    lab_name,
    lab_running,
    line,
    new_figure,
    no_lab,
)

HZ = 4
WINDOW_S = 120

# One live dashboard per lab: re-running a cell stops the old one instead of leaving it polling.
_live: weakref.WeakKeyDictionary[Any, Dashboard] = weakref.WeakKeyDictionary()

SERIES = ("visible", "in_flight", "dead_letter", "processed", "failed", "instances")
LABELS = {
    "visible": "visible",
    "in_flight": "in flight",
    "dead_letter": "DLQ",
    "processed": "processed (200, deleted)",
    "failed": "failed deliveries (retried)",
    "instances": "instances",
}


class Dashboard(TextFallback, w.VBox):
    """Queue depths, processed and failed deliveries, and instances, live."""

    def __init__(
        self,
        lab: Any,
        instances: Callable[[], int] | None = None,
        window_s: int = WINDOW_S,
        hz: float = HZ,
    ) -> None:
        self.lab = lab
        self.instances = instances or (lambda: 1)
        self.window_s = window_s
        keep = int(window_s * hz) + 1
        self.times: collections.deque[float] = collections.deque(maxlen=keep)
        self.series = {name: collections.deque[float](maxlen=keep) for name in SERIES}
        self.processed = self.failed = 0
        self._seen_events = 0
        self.frames = 0
        self.image = w.Image(format="png")
        self.image.add_class("lab-dashboard-plot")
        self.numbers = w.HTML()
        self.status = w.HTML()
        self.start_button = w.Button(description="Start", icon="play", layout=w.Layout(width="90px"))
        self.stop_button = w.Button(description="Stop", icon="stop", layout=w.Layout(width="90px"))
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self._setup_figure()
        self._ticker = Ticker(self._tick, 1 / hz, "lab-dashboard")
        super().__init__(
            [w.HBox([self.start_button, self.stop_button, self.status]), self.numbers, self.image]
        )
        self.add_class("lab-dashboard")
        previous = _live.get(lab)
        if previous is not None:
            previous.stop()
        _live[lab] = self
        join_lab(lab, self)
        self.start()

    # -- control ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._ticker.running

    def start(self) -> None:
        """Start polling and drawing."""
        self._show_running(True)  # before the thread, so its "lab stopped" line is not overwritten
        self._ticker.start()

    def stop(self) -> None:
        """Stop polling after one last frame, so what stays on screen is the final state."""
        was_running = self._ticker.running
        self._ticker.stop()
        self._show_running(False)
        if was_running:
            self._tick()

    def text(self) -> str:
        """Return the dashboard's text fallback."""
        return f"Live dashboard of {lab_name(self.lab)}: queue depths, deliveries and instances (updates in the notebook)."

    def close(self) -> None:
        """Stop the thread and close every part of the widget."""
        self._ticker.stop()
        if _live.get(self.lab) is self:
            del _live[self.lab]
        close_all(*self.children)
        super().close()

    def _show_running(self, running: bool) -> None:
        self.start_button.disabled = running
        self.stop_button.disabled = not running
        self.status.value = line(
            f"live, {1 / self._ticker.period:.0f} frames a second" if running else "stopped"
        )

    # -- one frame ----------------------------------------------------------------------------
    def _tick(self) -> bool:
        if not lab_running(self.lab):
            return self._ended("The lab stopped, so the dashboard stopped too.")
        try:
            depth = self.lab.depth()
        except (BotoCoreError, ClientError, LabError) as exc:
            return self._ended(f"The queue stopped answering ({type(exc).__name__}); dashboard stopped.")
        self._count_events()
        values = {
            "visible": depth.visible,
            "in_flight": depth.in_flight,
            "dead_letter": depth.dead_letter,
            "processed": self.processed,
            "failed": self.failed,
            "instances": self.instances(),
        }
        self.times.append(time.monotonic())
        for name, value in values.items():
            self.series[name].append(value)
        self.numbers.value = " · ".join(f"{LABELS[name]} <b>{value}</b>" for name, value in values.items())
        self.image.value = self._draw()
        self.frames += 1
        return True

    def _ended(self, sentence: str) -> bool:
        self.start_button.disabled = False
        self.stop_button.disabled = True
        self.status.value = line(sentence, "bad")
        return False

    def _count_events(self) -> None:
        events = self.lab.events
        if len(events) < self._seen_events:  # someone cleared the list
            self._seen_events = 0
        new = events[self._seen_events :]
        self._seen_events += len(new)
        for event in new:
            if event.kind is EventKind.DELETED:
                self.processed += 1
            elif event.kind == "retry_scheduled":
                self.failed += 1

    # -- drawing ------------------------------------------------------------------------------
    def _setup_figure(self) -> None:
        self.figure = figure = new_figure(8, 4.2)
        queue, work, fleet = figure.subplots(3, 1, sharex=True, height_ratios=[3, 2, 1.2])
        figure.subplots_adjust(left=0.09, right=0.98, top=0.97, bottom=0.11, hspace=0.12)
        self.axes = (queue, work, fleet)
        self.lines = {}
        for axis, names, title in (
            (queue, ("visible", "in_flight", "dead_letter"), "queue"),
            (work, ("processed", "failed"), "deliveries"),
            (fleet, ("instances",), "instances"),
        ):
            for name in names:
                drawstyle = "steps-post" if name == "instances" else "default"
                (self.lines[name],) = axis.plot([], [], label=LABELS[name], drawstyle=drawstyle)
            axis.set_ylabel(title, fontsize=8)
            axis.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            axis.tick_params(labelsize=8)
            axis.grid(alpha=0.3)
            axis.legend(loc="upper left", fontsize=7, frameon=False)
        fleet.set_xlabel("seconds ago", fontsize=8)

    def _draw(self) -> bytes:
        now = self.times[-1]
        xs = [t - now for t in self.times]
        # Show at least 30 s, growing to the whole window, so the first seconds are not a sliver.
        span = min(float(self.window_s), max(30.0, -xs[0]))
        self.axes[-1].set_xlim(-span, 0)
        for name, series in self.series.items():
            self.lines[name].set_data(xs, list(series))
        for axis in self.axes:
            top = max((max(line.get_ydata(), default=0) for line in axis.get_lines()), default=0)
            axis.set_ylim(0, max(1.0, top * 1.15))
        return figure_png(self.figure)


def dashboard(lab: Any, instances: Callable[[], int] | None = None) -> w.Widget:
    """Show queue depths, deliveries and instances live (4 frames a second); `.stop()` ends it."""
    if not lab_running(lab):
        return no_lab("dashboard")
    return Dashboard(lab, instances)
