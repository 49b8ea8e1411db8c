"""Notebook widgets, one line each: `dashboard(lab)`, `composer(lab)`, `scaling_tuner()` and friends.

Every widget that needs a lab shows one sentence instead when it has none, and every widget with
a background thread ends it in `.close()` (the dashboard also has `.stop()`).
"""

from labapp.widgets.composer import composer
from labapp.widgets.dashboard import dashboard
from labapp.widgets.dlq import dlq_explorer
from labapp.widgets.injector import failure_injector
from labapp.widgets.inspector_view import post_inspector
from labapp.widgets.tuner import scaling_tuner

__all__ = ["composer", "dashboard", "dlq_explorer", "failure_injector", "post_inspector", "scaling_tuner"]
