"""A failure injector: make the worker fail, slow down, hang or crash while messages flow."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import ipywidgets as w

from labapp.errors import LabError
from labapp.widgets._common import (
    TextFallback,
    Ticker,
    close_all,
    join_lab,
    lab_name,
    lab_running,
    line,
    no_lab,
)
from labapp.worker import Failures

# 202 and 204 are here on purpose: sqsd deletes only on 200, so both are failures too.
STATUSES = (500, 502, 503, 504, 400, 404, 429, 202, 204)
MAX_LATENCY_MS = 15_000
#: How often the controls catch up with failures set elsewhere (lab.inject() in a cell, lab.heal()).
FOLLOW_HZ = 2


def describe(failures: Failures) -> str:
    """Say in one sentence what the worker now does wrong."""
    parts = []
    if failures.error_rate:
        parts.append(f"{failures.error_rate:.0%} of requests answered {failures.status}")
    if failures.latency_ms:
        parts.append(f"{failures.latency_ms} ms added to every answer")
    if failures.hang:
        parts.append("requests hang without an answer")
    if failures.crash:
        parts.append("the worker crashes on the next request")
    return ("Worker now: " + "; ".join(parts) + ".") if parts else "Worker healthy: every request is handled."


class FailureInjector(TextFallback, w.VBox):
    """Sliders and toggles that change the worker's injected failures live."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self._syncing = False
        self._shown = Failures()
        wide = {"style": {"description_width": "110px"}, "layout": w.Layout(width="420px")}
        self.error_rate = w.FloatSlider(
            0.0, min=0, max=1, step=0.05, description="Error rate", readout_format=".0%", **wide
        )
        self.status = w.Dropdown(
            options=[(f"{code} {HTTPStatus(code).phrase}", code) for code in STATUSES],
            value=500,
            description="Answer status",
            **wide,
        )
        self.latency_ms = w.IntSlider(
            0, min=0, max=MAX_LATENCY_MS, step=100, description="Latency (ms)", **wide
        )
        self.hang = w.ToggleButton(False, description="Hang", icon="pause", tooltip="never answer")
        self.crash = w.ToggleButton(
            False, description="Crash", icon="bomb", tooltip="the worker dies on the next request"
        )
        self.heal_button = w.Button(description="Heal", icon="medkit", button_style="success")
        self.status_line = w.HTML()
        for control in self._controls():
            control.observe(self._apply, names="value")
        self.heal_button.on_click(lambda _: self.heal())
        super().__init__(
            [
                self.error_rate,
                self.status,
                self.latency_ms,
                w.HBox([self.hang, self.crash, self.heal_button]),
                self.status_line,
            ]
        )
        self.add_class("lab-injector")
        join_lab(lab, self)
        self._set_controls(self.lab.inject())  # no changes: reads what is set now
        # A cell may call lab.inject() or lab.heal() while the widget is on screen: follow it, so
        # the controls never claim a healthy worker that fails (or the other way round).
        self._follower = Ticker(self.follow, 1 / FOLLOW_HZ, "lab-injector")
        self._follower.start()

    def _controls(self) -> tuple[Any, ...]:
        return (self.error_rate, self.status, self.latency_ms, self.hang, self.crash)

    def _apply(self, _change: Any = None) -> None:
        if self._syncing:
            return
        if not lab_running(self.lab):
            self.status_line.value = line("The lab is stopped; nothing to inject into.", "bad")
            return
        try:
            failures = self.lab.inject(
                error_rate=round(self.error_rate.value, 4),
                status=self.status.value,
                latency_ms=self.latency_ms.value,
                hang=self.hang.value,
                crash=self.crash.value,
            )
        except LabError as exc:
            self.status_line.value = line(str(exc), "bad")
            return
        self._show(failures)

    def heal(self) -> None:
        """Turn every failure off and put the controls back."""
        if lab_running(self.lab):
            self.lab.heal()
        self._set_controls(Failures())

    def follow(self) -> bool:
        """Show failures that were set outside the widget; return False once the lab has stopped."""
        if not lab_running(self.lab):
            return False
        current = self.lab.state.failures.current
        if current != self._shown:
            self._set_controls(current)
        return True

    def _set_controls(self, failures: Failures) -> None:
        self._syncing = True
        try:
            self.error_rate.value = failures.error_rate
            if failures.status not in {code for _, code in self.status.options}:
                self.status.options = [*self.status.options, (str(failures.status), failures.status)]
            self.status.value = failures.status
            self.latency_ms.value = failures.latency_ms
            self.hang.value = failures.hang
            self.crash.value = failures.crash
        finally:
            self._syncing = False
        self._show(failures)

    def _show(self, failures: Failures) -> None:
        self._shown = failures
        healthy = failures == Failures()
        self.status_line.value = line(describe(failures), "ok" if healthy else "bad")

    def text(self) -> str:
        """Return the injector's text fallback, with what the worker does wrong now."""
        now = describe(self.lab.state.failures.current) if lab_running(self.lab) else "The lab is stopped."
        return f"Failure injector of {lab_name(self.lab)} (change it in the live notebook). {now}"

    def close(self) -> None:
        """Stop following the lab and close every part of the widget."""
        self._follower.stop()
        close_all(*self.children)
        super().close()


def failure_injector(lab: Any) -> w.Widget:
    """Make the lab's worker fail, slow down, hang or crash, live; Heal turns it all off."""
    if not lab_running(lab):
        return no_lab("failure injector")
    return FailureInjector(lab)
