"""The Flask worker app factory: three idempotent scenarios, failure injection, a request inspector."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from flask import Flask

from labapp.worker import guards
from labapp.worker.control import control
from labapp.worker.failures import FailureSwitch
from labapp.worker.inspector import Inspector
from labapp.worker.ledger import Ledger
from labapp.worker.state import EXTENSION, Concurrency, WorkerState
from labapp.worker.views import messages


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the worker app; config keys: LEDGER_PATH, SHARED_SECRET, ALLOW_REMOTE, WORK_MS, FAILURE_SEED."""
    app = Flask(__name__)
    app.config.update(
        LEDGER_PATH=os.path.join(tempfile.gettempdir(), f"labapp-ledger-{os.getpid()}.sqlite"),
        SHARED_SECRET=None,
        ALLOW_REMOTE=False,
        WORK_MS=0,
        FAILURE_SEED=None,
        INSPECT_KEEP=200,
    )
    app.config.update(config or {})
    inspector = Inspector(app.config["INSPECT_KEEP"])
    app.extensions[EXTENSION] = WorkerState(
        ledger=Ledger(app.config["LEDGER_PATH"]),
        failures=FailureSwitch(app.config["FAILURE_SEED"]),
        inspector=inspector,
        concurrency=Concurrency(),
        crash=lambda: os._exit(70),
    )
    app.before_request(guards.before_request)
    app.teardown_request(guards.teardown_request)
    app.register_blueprint(control)
    app.register_blueprint(messages)
    app.wsgi_app = inspector.middleware(app.wsgi_app)  # type: ignore[method-assign,assignment]
    return app
