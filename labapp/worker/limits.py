"""How much a client may send the worker, and how the worker quotes a client's value back.

Apart from Flask and waitress, so the server, the inspector and the guards share one number.
"""

from __future__ import annotations

import reprlib
from typing import Any

from labapp.sqs.limits import MAX_MESSAGE_BYTES

#: The largest request body the worker reads: SQS's largest message, the most sqsd ever sends
#: (docs/aws-behaviour.md#sqs-message-size). The article-form encoding can exceed it; that form is a demo.
MAX_BODY_BYTES = MAX_MESSAGE_BYTES
BODY_TOO_LARGE = (
    f"the request body is larger than {MAX_BODY_BYTES:,} bytes, the largest SQS message, "
    "so no daemon could have sent it"
)
#: The longest a quoted value may be in a reason.
QUOTE_CHARS = 60

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = _repr.maxother = _repr.maxlong = QUOTE_CHARS


def short(value: Any, limit: int = QUOTE_CHARS) -> str:
    """Return a value's repr cut to one short line, whatever the sender put in it."""
    try:
        text = _repr.repr(value)
    except (ValueError, RecursionError):
        # int() refuses to print more than 4,300 digits, and a deep list can outgrow the stack.
        text = f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
