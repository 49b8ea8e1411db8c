"""The Flask worker app factory: three idempotent scenarios, failure injection, a request inspector."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from labapp.worker import guards
from labapp.worker.control import control
from labapp.worker.failures import FailureSwitch
from labapp.worker.inspector import INSPECT_KEEP, INSPECT_MAX_BYTES, Inspector
from labapp.worker.ledger import Ledger
from labapp.worker.limits import BODY_TOO_LARGE, MAX_BODY_BYTES, short
from labapp.worker.state import EXTENSION, Concurrency, WorkerState
from labapp.worker.views import bad, messages


def _json_http_error(error: HTTPException) -> Response:
    # Werkzeug's own 404, 405 and 413 answers are HTML pages; every worker answer carries a JSON reason.
    too_large = error.code == 413
    reason = BODY_TOO_LARGE if too_large else f"{error.name}: {request.method} {short(request.path)}"
    response = bad(reason, error.code or 500)
    response.headers.extend(
        (name, value) for name, value in error.get_headers() if name.lower() != "content-type"
    )
    return response


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the worker app; config keys: LEDGER_PATH, SHARED_SECRET, ALLOW_REMOTE, WORK_MS, FAILURE_SEED,
    INSPECT_KEEP and INSPECT_MAX_BYTES."""
    app = Flask(__name__)
    # Every path is a message path, /a//b included: merging slashes would answer it with a 308
    # redirect, which the daemon counts as a failed delivery.
    app.url_map.merge_slashes = False
    app.config.update(
        LEDGER_PATH=os.path.join(tempfile.gettempdir(), f"labapp-ledger-{os.getpid()}.sqlite"),
        SHARED_SECRET=None,
        ALLOW_REMOTE=False,
        WORK_MS=0,
        FAILURE_SEED=None,
        INSPECT_KEEP=INSPECT_KEEP,
        INSPECT_MAX_BYTES=INSPECT_MAX_BYTES,
        # Refuses a larger body under any server; waitress refuses it before the app (servers.py).
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
    )
    app.config.update(config or {})
    inspector = Inspector(app.config["INSPECT_KEEP"], app.config["INSPECT_MAX_BYTES"])
    app.extensions[EXTENSION] = WorkerState(
        ledger=Ledger(app.config["LEDGER_PATH"]),
        failures=FailureSwitch(app.config["FAILURE_SEED"]),
        inspector=inspector,
        concurrency=Concurrency(),
        crash=lambda: os._exit(70),
    )
    app.before_request(guards.before_request)
    app.teardown_request(guards.teardown_request)
    app.register_error_handler(HTTPException, _json_http_error)
    app.register_blueprint(control)
    app.register_blueprint(messages)
    app.wsgi_app = inspector.middleware(app.wsgi_app)  # type: ignore[method-assign,assignment]
    return app
