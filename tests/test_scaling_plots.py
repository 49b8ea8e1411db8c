"""Notebook 07's pictures: 900 px wide, legends outside the axes, plain tick labels even on a log axis."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from labapp.scaling import TargetTrackingPolicy, ThresholdPolicy, flash_sale, simulate
from labapp.scaling.fleet import LiveTimeline
from labapp.scaling.plots import log_ticks, plot_cost_latency, plot_drain, plot_runs
from labapp.scaling.sale import SALE

WORKER: dict[str, Any] = {"processing_time_s": 10.0, "http_connections": 50}


def tick_labels(fig: Figure) -> list[str]:
    fig.canvas.draw()
    return [
        t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + ax.get_xticklabels() if t.get_text()
    ]


def legends_outside(fig: Figure) -> bool:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None and legend.get_window_extent(renderer).x0 < ax.get_window_extent(renderer).x1:
            return False
    return True


def test_log_ticks_step_1_2_5_and_cover_the_range() -> None:
    assert log_ticks(5.5, 33) == [5, 10, 20, 50]
    assert log_ticks(0.3, 0.3) == pytest.approx([0.2, 0.5])
    with pytest.raises(ValueError):
        log_ticks(0, 1)


def test_cost_against_latency_has_plain_minute_labels_and_the_legend_outside() -> None:
    sale = flash_sale()
    policies = {
        "threshold": ThresholdPolicy(UpperThreshold=10, LowerThreshold=0.5, MaxSize=20),
        "tracking 300": TargetTrackingPolicy(TargetValue=300, MaxSize=20),
        "tracking 3000": TargetTrackingPolicy(TargetValue=3000, MaxSize=20),
    }
    fig = plot_cost_latency({n: simulate(sale, p, **WORKER).summary() for n, p in policies.items()})
    labels = tick_labels(fig)
    assert "5 min" in labels and "50 min" in labels
    assert not any("10^" in label or "×" in label or "$" in label or "e+" in label for label in labels)
    assert legends_outside(fig)
    assert fig.get_figwidth() * fig.dpi == 900


def test_runs_and_drain_plots_are_900_px_with_thousands_separators_and_legends_outside() -> None:
    sale = flash_sale()
    run = simulate(sale, TargetTrackingPolicy(TargetValue=300, MaxSize=20), **WORKER)
    sim = SALE.controller("http://127.0.0.1:1").simulated()
    t = sim.time_s[::12].astype(float)
    every = slice(None, None, 12)
    live = LiveTimeline(
        60.0, t / 60, t, sim.visible[every], sim.in_flight[every], sim.desired[every], sim.in_service[every],
        sim.events, 10_000,
    )  # fmt: skip
    for fig in (plot_runs({"tracking": run}), plot_drain(live, sim)):
        labels = tick_labels(fig)
        assert any("," in label for label in labels)  # 8,000 and 20,000, not 8000 or 2e4
        assert not any("e+" in label or "×" in label for label in labels)
        assert legends_outside(fig) and fig.get_figwidth() * fig.dpi == 900
        assert all(ax.get_ylim()[0] == 0 for ax in fig.axes if "instances" in ax.get_ylabel())
    assert np.all(sim.visible >= 0)
