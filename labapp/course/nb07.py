"""Notebook 07, autoscaling: its workers, traces and goals, and the few printouts its cells share."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from labapp.scaling.sale import SaleSettings
from labapp.scaling.simulate import ScalingEvent, Timeline
from labapp.scaling.traffic import busy_day, flash_sale, order_flash_sale

__all__ = [
    "EB_WORKER",
    "MAIL_WORKER",
    "backlog_metric_math",
    "busy_day",
    "describe_sale",
    "flash_sale",
    "order_flash_sale",
    "show_events",
    "show_json",
    "show_summary",
]

# The production-sized worker of notebook 07: 10 s per message, sqsd's default 50 connections.
EB_WORKER: dict[str, Any] = {"processing_time_s": 10.0, "http_connections": 50}

# Exercise 07.1: a receipt e-mail worker. It calls a mail API that allows 10 calls at once, each
# message takes 3 s, and the shop accepts 90 s of waiting; the day may cost 190 instance-hours.
MAIL_WORKER: dict[str, Any] = {"processing_time_s": 3.0, "http_connections": 10}
MAIL_WAIT_S = 90
MAIL_MAX_SIZE = 20
MAIL_BUDGET_INSTANCE_HOURS = 190

# Exercise 07.2: the seed article's 10,000 orders on the production worker. The payment provider
# takes 500 charges at once, every order must be charged within 6 minutes, and the 40 minutes of
# the trace may cost 5 instance-hours.
SALE_MAX_OPEN_POSTS = 500
SALE_P99_S = 360
SALE_BUDGET_INSTANCE_HOURS = 5.0


def show_events(events: Iterable[ScalingEvent], limit: int = 6) -> None:
    """Print scaling events, one a line: the minute, the change of desired capacity, and why."""
    events = list(events)
    for event in events[:limit]:
        print(
            f"{event.time_s / 60:5.0f} min  {event.from_desired:4} -> {event.to_desired:<4}  {event.reason}"
        )
    if len(events) > limit:
        print(f"  ... and {len(events) - limit} more")


def show_summary(run: Timeline) -> None:
    """Print a simulated run's latency, backlog, cost and scaling actions in two lines."""
    s = run.summary()
    print(f"p99 latency {s['latency_p99_s'] / 60:.1f} min, at most {s['max_backlog']:,} waiting")
    print(
        f"{s['instance_hours']:.1f} instance-hours, up to {s['max_instances']:,} instances, "
        f"{s['scaling_actions']} scaling actions"
    )


def backlog_metric_math(queue_name: str, group_name: str, target: float) -> dict[str, Any]:
    """Return a TargetTrackingConfiguration that divides the queue's backlog by InService instances.

    This is what `aws autoscaling put-scaling-policy --policy-type TargetTrackingScaling` takes:
    metric math (e1 = m1 / m2) instead of a custom metric you would have to publish yourself.
    """
    # docs/aws-behaviour.md#scale-metric-math: m1 is the queue's visible messages (Sum over a
    # minute), m2 the group's InService instances (Average over a minute), e1 the ratio tracked.
    return {
        "TargetValue": target,
        "CustomizedMetricSpecification": {
            "Metrics": [
                _stat("m1", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue_name, "Sum"),
                _stat("m2", "AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", group_name),
                {"Id": "e1", "Expression": "m1 / m2", "Label": "backlog per instance", "ReturnData": True},
            ]
        },
    }


def _stat(
    metric_id: str, namespace: str, name: str, dimension: str, value: str, stat: str = "Average"
) -> dict[str, Any]:
    metric = {"Namespace": namespace, "MetricName": name, "Dimensions": [{"Name": dimension, "Value": value}]}
    return {"Id": metric_id, "MetricStat": {"Metric": metric, "Stat": stat}, "ReturnData": False}


def show_json(document: dict[str, Any]) -> None:
    """Print a document as indented JSON, as you would save it for the AWS CLI."""
    print(json.dumps(document, indent=2))


def describe_sale(settings: SaleSettings) -> None:
    """Print the live flash sale's fleet, policy and time compression in three lines."""
    s = settings
    print(
        f"fleet: 1 to {s.max_size} instances, HttpConnections {s.http_connections}, {s.processing_time_s:g} s "
        f"an order: {s.max_size * s.http_connections * 60 / s.processing_time_s:.0f} orders a minute at most"
    )
    print(
        f"policy: target tracking, TargetValue {s.target_value:g} (accept {s.acceptable_wait_s / 60:g} min of "
        f"waiting), InstanceWarmup {s.instance_warmup_s:g} s, launch delay {s.launch_delay_s:g} s"
    )
    print(
        f"time: x{s.time_scale:g}, so a scaled minute takes {60 / s.time_scale:g} s and an order's "
        f"{s.processing_time_s:g} s of work {s.work_ms} ms of real time"
    )
