"""The optional shared-secret signatures: the daemon signs each POST, control clients sign each call.

Real sqsd does not sign anything: on AWS only the instance itself can reach the app. The lab
signs when the worker is reachable by others (containers on a network), so the daemon, the
worker and the lab's control clients share this one definition and none imports another.

Each signature covers a timestamp, so a captured request is refused once it is more than
MAX_SKEW_S old, and starts with a purpose line, so a message signature can never pass as a
control signature (or the other way round). A control signature also covers a random nonce,
which the worker remembers for the skew window and refuses to see twice.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Protocol

SIGNATURE_HEADER = "X-Lab-Signature"
TIMESTAMP_HEADER = "X-Lab-Timestamp"
NONCE_HEADER = "X-Lab-Nonce"
#: How far a signed timestamp may be from the receiver's clock, either way, in seconds.
MAX_SKEW_S = 300
#: The first line of what each kind of signature covers; a new scheme gets a new purpose.
MESSAGE_PURPOSE = "labapp-message-v2"
CONTROL_PURPOSE = "labapp-control-v1"
_PREFIX = "sha256="
# Whole Unix seconds; twelve digits last until the year 33658 and keep int() cheap.
_MAX_TIMESTAMP_DIGITS = 12
_MAX_NONCE_CHARS = 64


class Headers(Protocol):
    """What the checks read of a request's headers: Flask's, or any dict of them."""

    def get(self, key: str, /) -> str | None: ...


class BadSignature(ValueError):
    """A signed request is missing a header, is stale, was replayed or is signed wrongly."""


def _digest(secret: str, purpose: str, fields: tuple[str, ...], body: bytes) -> str:
    # Every field is a header value or a request target, so none holds a newline and the
    # joined text cannot be read two ways; the body comes last and may hold anything.
    head = "\n".join((purpose, *fields)).encode("utf-8", "surrogateescape")
    mac = hmac.new(secret.encode(), head + b"\n" + body, hashlib.sha256)
    return _PREFIX + mac.hexdigest()


def _stamp(now: float | None) -> str:
    return str(int(time.time() if now is None else now))


def message_headers(secret: str, message_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Return the headers that sign one message POST (its id and body) at time now."""
    timestamp = _stamp(now)
    signature = _digest(secret, MESSAGE_PURPOSE, (timestamp, message_id), body)
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature}


def control_headers(
    secret: str | None, method: str, path: str, body: bytes = b"", now: float | None = None
) -> dict[str, str]:
    """Return the headers that sign one call of a /_lab control route; none when secret is None.

    `path` is the request target as sent, with its query string (e.g. "/_lab/requests?n=5"), and
    `body` the exact bytes sent.
    """
    if not secret:
        return {}
    timestamp = _stamp(now)
    nonce = secrets.token_hex(16)
    signature = _digest(secret, CONTROL_PURPOSE, (timestamp, nonce, method.upper(), path), body)
    return {TIMESTAMP_HEADER: timestamp, NONCE_HEADER: nonce, SIGNATURE_HEADER: signature}


def _header(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if not value:
        raise BadSignature(f"missing {name} header; this worker only accepts signed requests")
    return value


def _fresh_timestamp(headers: Headers, now: float | None) -> str:
    timestamp = _header(headers, TIMESTAMP_HEADER)
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS):
        raise BadSignature(f"{TIMESTAMP_HEADER} must be whole Unix seconds, e.g. 1700000000")
    skew = int(timestamp) - (time.time() if now is None else now)
    if abs(skew) > MAX_SKEW_S:
        when = "old" if skew < 0 else "ahead"
        raise BadSignature(
            f"{TIMESTAMP_HEADER} is {abs(skew):.0f} s {when} of the worker's clock; at most "
            f"{MAX_SKEW_S} s is allowed (a replayed request or a wrong clock)"
        )
    return timestamp


def _compare(expected: str, given: str) -> None:
    # compare_digest refuses non-ASCII text with a TypeError; a forged header must be a 401.
    if not (given.isascii() and hmac.compare_digest(expected, given)):
        raise BadSignature(
            f"wrong {SIGNATURE_HEADER} for this request (another secret, or changed on the way)"
        )


def check_message(
    secret: str, message_id: str, body: bytes, headers: Headers, now: float | None = None
) -> None:
    """Raise BadSignature with one reason unless headers sign this message freshly."""
    given = _header(headers, SIGNATURE_HEADER)
    timestamp = _fresh_timestamp(headers, now)
    _compare(_digest(secret, MESSAGE_PURPOSE, (timestamp, message_id), body), given)


class SeenNonces:
    """The control nonces accepted within the skew window, so a captured call works only once."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, nonce: str, now: float) -> bool:
        """Remember nonce until the window ends; return False if it was already used."""
        with self._lock:
            # A nonce older than the window is refused by its timestamp, so it can be forgotten.
            for old in [n for n, until in self._expiry.items() if until < now]:
                del self._expiry[old]
            if nonce in self._expiry:
                return False
            self._expiry[nonce] = now + 2 * MAX_SKEW_S
            return True


def check_control(
    secret: str,
    method: str,
    path: str,
    body: bytes,
    headers: Headers,
    seen: SeenNonces,
    now: float | None = None,
) -> None:
    """Raise BadSignature with one reason unless headers sign this control call freshly, once.

    `method`, `path` (with its query string) and `body` are the request's; `seen` remembers the
    nonces already used; `now` is the receiver's clock (default time.time()).
    """
    given = _header(headers, SIGNATURE_HEADER)
    timestamp = _fresh_timestamp(headers, now)
    nonce = _header(headers, NONCE_HEADER)
    if len(nonce) > _MAX_NONCE_CHARS:
        raise BadSignature(f"{NONCE_HEADER} is longer than {_MAX_NONCE_CHARS} characters")
    _compare(_digest(secret, CONTROL_PURPOSE, (timestamp, nonce, method.upper(), path), body), given)
    if not seen.first_use(nonce, time.time() if now is None else now):
        raise BadSignature(f"this signed control call was already used ({NONCE_HEADER} seen before)")
