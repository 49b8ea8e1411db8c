"""What runs around every request: the loopback guard, the body limit, the signatures, injected failures.

A request is a control call when Flask routed it to the control blueprint, whatever its path
looks like: `/_labx`, `/_lab` and `/_lab/x` reach the message view and are messages. Every
message is signed when a secret is set; every control call is signed too (health excepted), with
its own kind of signature; and no POST from the daemon ever reaches a control route.
"""

from __future__ import annotations

import ipaddress
import logging
import threading

from flask import Response, current_app, request

from labapp.signature import BadSignature, check_control, check_message
from labapp.worker import state
from labapp.worker.control import OPEN_ENDPOINTS, control
from labapp.worker.limits import BODY_TOO_LARGE, MAX_BODY_BYTES
from labapp.worker.views import bad

log = logging.getLogger("labapp.worker")

HANG_LIMIT_S = 3600  # a hang ends by itself after an hour so no thread is stuck forever
#: Every header the daemon sets starts with this; a control client never sends one.
SQSD_HEADER_PREFIX = "x-aws-sqsd-"
_COUNTED = "labapp.counted"


def _remote_allowed() -> bool:
    if current_app.config["ALLOW_REMOTE"]:
        return True
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _from_daemon() -> bool:
    return any(name.lower().startswith(SQSD_HEADER_PREFIX) for name, _ in request.headers.items())


def _target() -> str:
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


def before_request() -> Response | None:
    """Record, refuse other machines and oversized bodies, check signatures, count and inject failures."""
    current = state.current()
    is_control = request.blueprint == control.name
    from_daemon = _from_daemon()
    if not is_control or from_daemon:
        current.inspector.admit(request.environ)
    if not _remote_allowed():
        return bad("this worker only answers requests from this machine", 403)
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return bad(BODY_TOO_LARGE, 413)
    secret = current_app.config["SHARED_SECRET"]
    if is_control:
        if from_daemon:
            # A message whose beanstalk.sqsd.path names /_lab/reset must not wipe the ledger.
            return bad(f"the daemon's POSTs never reach the lab's control route {request.path}", 403)
        if secret and request.endpoint not in OPEN_ENDPOINTS:
            try:
                check_control(
                    secret, request.method, _target(), request.get_data(), request.headers, current.nonces
                )
            except BadSignature as exc:
                return bad(str(exc), 401)
        return None
    if secret:
        message_id = request.headers.get("X-Aws-Sqsd-Msgid", "")
        try:
            check_message(secret, message_id, request.get_data(), request.headers)
        except BadSignature as exc:
            return bad(str(exc), 401)
    current.concurrency.enter()
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
