"""The web tier: an app that takes orders in the request or through the queue, a load generator, plots."""

from labapp.webtier.app import (
    REQUEST_ID_ATTRIBUTE,
    REQUEST_ID_HEADER,
    WEB_THREADS,
    OrderStatus,
    WebTier,
    create_app,
    of,
    order_bodies,
    serve,
)
from labapp.webtier.load import PERCENTILES, LoadResult, Outcome, flash_sale, load_test, percentile, schedule
from labapp.webtier.plots import format_seconds, plot_flash_sale, plot_latency

__all__ = [
    "PERCENTILES",
    "REQUEST_ID_ATTRIBUTE",
    "REQUEST_ID_HEADER",
    "WEB_THREADS",
    "LoadResult",
    "OrderStatus",
    "Outcome",
    "WebTier",
    "create_app",
    "flash_sale",
    "format_seconds",
    "load_test",
    "of",
    "order_bodies",
    "percentile",
    "plot_flash_sale",
    "plot_latency",
    "schedule",
    "serve",
]
