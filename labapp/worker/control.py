"""The lab's own routes under /_lab: health, failure injection, recorded requests, ledger, reset.

With a shared secret each needs a signed control call (`labapp.signature.control_headers`),
except health: it shows counts and failure settings, nothing secret, and container healthchecks
and readiness waits call it unsigned.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from labapp.errors import ConfigError
from labapp.worker import state
from labapp.worker.scenarios import BadMessage, parse_body
from labapp.worker.views import bad

PREFIX = "/_lab"
control = Blueprint("control", __name__, url_prefix=PREFIX)
#: The control endpoints that answer without a control signature.
OPEN_ENDPOINTS = frozenset({"control.health"})


@control.get("/health")
def health() -> Response:
    """Report that the worker answers, with its ledger counts and failure settings."""
    current = state.current()
    daemon = current.daemon
    return jsonify(
        ok=True,
        daemon=f"{daemon.state}, {daemon.in_flight} in flight, {daemon.counts}" if daemon else "not attached",
        ledger=current.ledger.summary(),
        failures=current.failures.current.__dict__,
        concurrency=current.concurrency.snapshot(),
    )


@control.route("/failures", methods=["GET", "PUT"])
def failures() -> Response:
    """Show or change the injected failures (PUT a JSON object with the fields to change)."""
    switch = state.current().failures
    if request.method == "PUT":
        raw = request.get_data()
        try:
            changes = parse_body(raw) if raw.strip() else {}
            switch.update(**changes)
        except (BadMessage, ConfigError) as exc:
            return bad(str(exc))
    return jsonify(switch.current.__dict__)


@control.route("/requests", methods=["GET", "DELETE"])
def recorded_requests() -> Response:
    """List the last requests exactly as received (?n=20), or forget them."""
    inspector = state.current().inspector
    if request.method == "DELETE":
        inspector.clear()
        return jsonify(cleared=True)
    n = max(0, request.args.get("n", default=20, type=int))
    return jsonify([item.as_dict() for item in inspector.last(n)])


@control.route("/ledger", methods=["GET", "DELETE"])
def ledger_view() -> Response:
    """Show how often each business id was delivered and applied, or clear the ledger."""
    ledger = state.current().ledger
    if request.method == "DELETE":
        ledger.clear()
        return jsonify(cleared=True)
    return jsonify(
        summary=ledger.summary(), applications=ledger.applications(), deliveries=ledger.deliveries()
    )


@control.post("/reset")
def reset() -> Response:
    """Turn failures off and forget the ledger and recorded requests."""
    state.current().reset()
    return jsonify(reset=True)
