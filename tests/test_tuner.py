"""The scaling tuner starts from a notebook's own worker, traffic and policy, and shows what applies."""

from __future__ import annotations

import struct

import numpy as np

from labapp import widgets
from labapp.scaling import TargetTrackingPolicy, ThresholdPolicy, busy_day, flash_sale
from labapp.widgets.tuner import ScalingTuner

EB_WORKER = {"processing_time_s": 10.0, "http_connections": 50}  # notebook 07's production worker


def png_width(data: bytes) -> int:
    assert data.startswith(b"\x89PNG")
    return int(struct.unpack(">I", data[16:20])[0])


def test_the_tuner_starts_from_the_notebooks_worker_traffic_and_policy() -> None:
    sale = flash_sale()
    tuner = widgets.scaling_tuner(
        worker=EB_WORKER,
        traffic={"flash sale (4 h)": sale},
        policy=TargetTrackingPolicy(TargetValue=300, MaxSize=20, InstanceWarmup=120),
        acceptable_latency_s=60,
    )
    try:
        assert isinstance(tuner, ScalingTuner) and tuner.wait_idle()
        settings = tuner.settings()
        assert settings["processing_time_s"] == 10 and settings["http_connections"] == 50
        assert settings["sizes"] == (1, 20) and settings["target"] == 300 and settings["warmup"] == 120
        assert tuner.profile.value == "custom:flash sale (4 h)" and tuner.profile.label == "flash sale (4 h)"
        assert "60 s ÷ (10 s ÷ 50 connections) = TargetValue 300" in tuner.hint.value
        assert png_width(bytes(tuner.image.value)) == 900  # 9 in at 100 dpi: crisp at 100% zoom
    finally:
        tuner.close()


def test_the_formula_line_shows_only_under_target_tracking() -> None:
    tuner = widgets.scaling_tuner(worker=EB_WORKER)
    try:
        assert tuner.hint.layout.display is None
        tuner.policy.value = "threshold"
        assert tuner.hint.layout.display == "none" and tuner.target_box.layout.display == "none"
        tuner.policy.value = "target"
        assert tuner.hint.layout.display is None
        assert tuner.wait_idle()
    finally:
        tuner.close()


def test_a_threshold_policy_passed_in_starts_the_threshold_sliders() -> None:
    article = ThresholdPolicy(UpperThreshold=10, LowerThreshold=0.5, Period=60, Cooldown=120, MaxSize=10)
    tuner = widgets.scaling_tuner(policy=article)
    try:
        settings = tuner.settings()
        assert settings["policy"] == "threshold" and tuner.hint.layout.display == "none"
        assert settings["thresholds"] == (0, 10) and settings["period"] == 60 and settings["cooldown"] == 120
        assert settings["sizes"] == (1, 10)
        assert tuner.wait_idle()
    finally:
        tuner.close()


def test_a_day_of_traffic_is_simulated_in_ten_second_ticks_and_plotted_in_hours() -> None:
    tuner = widgets.scaling_tuner(worker=EB_WORKER, traffic={"day": busy_day()})
    try:
        arrivals, tick = tuner._arrivals("custom:day")
        assert arrivals.size == 86_400 and tick == 10
        fallback, steady = (
            tuner._arrivals("custom:nope"),
            tuner._arrivals("steady"),
        )  # unknown names fall back
        assert np.array_equal(fallback[0], steady[0]) and fallback[1] == steady[1]
        assert tuner.wait_idle() and tuner.axes[2].get_xlabel() == "hours"
    finally:
        tuner.close()


def test_without_arguments_the_tuner_keeps_its_own_defaults_and_positional_arrivals_still_work() -> None:
    tuner = widgets.scaling_tuner(np.full(3600, 3))
    try:
        assert tuner.profile.value == "custom:your arrivals"
        assert tuner.settings()["processing_time_s"] == 2.0  # the widgets demo's slider test starts here
        assert tuner.wait_idle()
    finally:
        tuner.close()
