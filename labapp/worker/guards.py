"""What runs around every request: the loopback guard, the optional signature, injected failures."""

from __future__ import annotations

import ipaddress
import logging
import threading

from flask import Response, current_app, request

from labapp.signature import SIGNATURE_HEADER, verify
from labapp.worker import state
from labapp.worker.control import PREFIX
from labapp.worker.views import bad

log = logging.getLogger("labapp.worker")

HANG_LIMIT_S = 3600  # a hang ends by itself after an hour so no thread is stuck forever
_COUNTED = "labapp.counted"


def _remote_allowed() -> bool:
    if current_app.config["ALLOW_REMOTE"]:
        return True
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def before_request() -> Response | None:
    """Refuse other machines, check the signature, count the request and inject failures."""
    if not _remote_allowed():
        return bad("this worker only answers requests from this machine", 403)
    if request.path.startswith(PREFIX):
        return None
    secret = current_app.config["SHARED_SECRET"]
    if secret:
        message_id = request.headers.get("X-Aws-Sqsd-Msgid", "")
        if not verify(secret, message_id, request.get_data(), request.headers.get(SIGNATURE_HEADER, "")):
            return bad(f"missing or wrong {SIGNATURE_HEADER} header", 401)
    state.current().concurrency.enter()
    request.environ[_COUNTED] = True
    return _inject_failures()


def _inject_failures() -> Response | None:
    current = state.current()
    switch = current.failures
    settings = switch.current
    if settings.crash:
        log.error("worker: crashing on purpose (failure injection)")
        current.crash()
        return bad("worker crashed (failure injection)", 503)
    if settings.hang:
        switch.unhung.wait(HANG_LIMIT_S)
    if settings.latency_ms:
        threading.Event().wait(settings.latency_ms / 1000)
    if switch.roll_error():
        return bad(f"injected failure {settings.status}", settings.status)
    return None


def teardown_request(_exc: BaseException | None) -> None:
    """Count the request as finished."""
    if request.environ.pop(_COUNTED, False):
        state.current().concurrency.leave()
