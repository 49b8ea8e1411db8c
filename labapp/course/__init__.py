"""The notebook API: `lab = course.start("03")`, the helpers the notebooks call, `course.exercise("03.1")`.

    from labapp import course
    lab = course.start("03")          # this notebook's queues, worker and daemon
    course.install_handler(lab, fn)   # your Flask view answers the daemon's POSTs
    ex = course.exercise("03.1")      # ex.check(), ex.hint(), ex.solution()
    course.predict("03.p1", "What does sqsd do after a 500?", {...}, answer="...")
    course.swimlane(lab)              # each message's POSTs, gaps, deletes and DLQ moves
    course.diagram("retry-path")      # one of the five course diagrams, inline

Names load on first use, so `labapp.course.checks.core` can be imported without the runtime.
Each notebook with props of its own has a module next to this one, reached as `course.nb08` and so on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labapp import lazy

_EXPORTS = {
    "labapp.course.preflight": ("PreflightError", "compare_options", "describe", "reset", "start"),
    "labapp.course.lab": ("Lab",),
    "labapp.course.handlers": (
        "answer_as_asked",
        "apply_options",
        "article_background_handler",
        "article_handler",
        "install_handler",
        "process",
        "restore_handler",
        "sandbox",
        "send_and_wait",
    ),
    "labapp.course.wire": ("flask_view_of", "raw_request", "request_for", "show_request"),
    "labapp.course.observe": (
        "Attempt",
        "MessageStory",
        "QueueMetrics",
        "dead_letter_ids",
        "logs",
        "metrics",
        "outcome_counts",
        "print_rows",
        "stories",
        "tail",
        "timed_batch",
        "try_statuses",
        "wait_for",
        "watch",
    ),
    "labapp.course.plots": ("plot_effects", "plot_metrics", "plot_post_spans", "plot_posts", "plot_statuses"),
    "labapp.course.checks.core": ("exercise",),
    "labapp.course.predictions": ("predict", "predict_number"),
    "labapp.course.swimlanes": ("swimlane",),
    "labapp.course.diagrams": ("diagram",),
    "labapp.sqsd.options": ("AWS_DEFAULTS", "LAB_PROFILE", "SqsdOptions"),
    "labapp.sqsd.ebextensions": ("load_ebextensions",),
    "labapp.sqsd.log": ("SQSD_LOG",),
    "labapp.errors": ("ConfigError", "EndpointError", "LabError"),
    "labapp.worker.scenarios": ("BadMessage",),
    "labapp.settings": ("lab_home",),
}
__getattr__, __dir__, __all__ = lazy.exports(
    __name__,
    _EXPORTS,
    ("nb00", "nb01", "nb02", "nb03", "nb04", "nb05", "nb06", "nb07", "nb08", "nb09", "nb10", "nb11"),
)

if TYPE_CHECKING:
    from labapp.course import nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08, nb09, nb10, nb11
    from labapp.course.checks.core import exercise
    from labapp.course.diagrams import diagram
    from labapp.course.handlers import (
        answer_as_asked,
        apply_options,
        article_background_handler,
        article_handler,
        install_handler,
        process,
        restore_handler,
        sandbox,
        send_and_wait,
    )
    from labapp.course.lab import Lab
    from labapp.course.observe import (
        Attempt,
        MessageStory,
        QueueMetrics,
        dead_letter_ids,
        logs,
        metrics,
        outcome_counts,
        print_rows,
        stories,
        tail,
        timed_batch,
        try_statuses,
        wait_for,
        watch,
    )
    from labapp.course.plots import plot_effects, plot_metrics, plot_post_spans, plot_posts, plot_statuses
    from labapp.course.predictions import predict, predict_number
    from labapp.course.preflight import PreflightError, compare_options, describe, reset, start
    from labapp.course.swimlanes import swimlane
    from labapp.course.wire import flask_view_of, raw_request, request_for, show_request
    from labapp.errors import ConfigError, EndpointError, LabError
    from labapp.settings import lab_home
    from labapp.sqsd.ebextensions import load_ebextensions
    from labapp.sqsd.log import SQSD_LOG
    from labapp.sqsd.options import AWS_DEFAULTS, LAB_PROFILE, SqsdOptions
    from labapp.worker.scenarios import BadMessage
