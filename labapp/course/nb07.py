"""Notebook 07, autoscaling: the production-sized worker it simulates and its two traffic traces."""

from __future__ import annotations

from typing import Any

from labapp.scaling.traffic import busy_day, flash_sale

__all__ = ["EB_WORKER", "busy_day", "flash_sale"]

# The production-sized worker of notebook 07: 10 s per message, sqsd's default 50 connections.
EB_WORKER: dict[str, Any] = {"processing_time_s": 10.0, "http_connections": 50}
