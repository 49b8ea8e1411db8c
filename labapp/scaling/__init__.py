"""Autoscaling a worker fleet: policies as pure objects, traffic, a simulator, a live fleet, plots."""

from labapp.scaling.policies import (
    EB_ASG_DEFAULTS,
    EB_MEASURE_NAMES,
    EB_TRIGGER_DEFAULTS,
    Decision,
    FleetState,
    Metrics,
    Policy,
    TargetTrackingPolicy,
    ThresholdPolicy,
    target_from_latency,
)
from labapp.scaling.simulate import ScalingEvent, Timeline, simulate
from labapp.scaling.traffic import (
    bursty,
    busy_day,
    diurnal,
    flash_sale,
    from_csv,
    lab_flash_sale,
    order_flash_sale,
    spike,
    steady,
)
from labapp.scaling.units import DAY_S, HOUR_S

__all__ = [
    "DAY_S",
    "EB_ASG_DEFAULTS",
    "EB_MEASURE_NAMES",
    "EB_TRIGGER_DEFAULTS",
    "HOUR_S",
    "Decision",
    "FleetState",
    "Metrics",
    "Policy",
    "ScalingEvent",
    "TargetTrackingPolicy",
    "ThresholdPolicy",
    "Timeline",
    "bursty",
    "busy_day",
    "diurnal",
    "flash_sale",
    "from_csv",
    "lab_flash_sale",
    "order_flash_sale",
    "simulate",
    "spike",
    "steady",
    "target_from_latency",
]
