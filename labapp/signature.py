"""The optional shared-secret signature on the daemon's POSTs, checked by the worker.

Real sqsd does not sign anything: on AWS only the instance itself can reach the app. The lab
signs when the worker is reachable by others (containers on a network), so the daemon and the
worker share this one definition and neither imports the other.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Lab-Signature"


def sign(secret: str, message_id: str, body: bytes) -> str:
    """Return the signature over the message id and body."""
    digest = hmac.new(secret.encode(), message_id.encode() + b"\n" + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, message_id: str, body: bytes, signature: str) -> bool:
    """Return True when signature is the one `sign` makes for this message."""
    return hmac.compare_digest(sign(secret, message_id, body), signature)
