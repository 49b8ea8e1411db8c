"""The worker's business rules, apart from HTTP: orders, thumbnails and CSV imports, each idempotent.

As moto keeps its models apart from its responses, the rules here know nothing of Flask: a view
parses the request, `read_job` checks the message, and `perform` does the work once per business id.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from labapp.worker.ledger import Ledger
from labapp.worker.limits import short

MAX_WORK_MS = 600_000
#: The largest order amount the lab accepts; anything above is a typo or an attack.
MAX_AMOUNT = 1_000_000
#: The most thumbnail sizes one message may ask for.
MAX_SIZES = 16
#: The most rows one CSV import may hold (each becomes one ledger entry).
MAX_CSV_ROWS = 10_000
#: The longest business id (order, image or import id) in characters.
MAX_ID_CHARS = 256
#: The longest number, in characters, the worker reads from JSON; Python refuses ints over
#: 4,300 digits with a ValueError, and no scenario needs more than a few.
MAX_NUMBER_CHARS = 40


class BadMessage(ValueError):
    """The message can never succeed as it is; the worker answers 400 with this reason."""


# -- the scenarios -------------------------------------------------------------------------------
def _required(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if value is None or isinstance(value, (dict, list, bool)) or str(value).strip() == "":
        raise BadMessage(f"field {field!r} is missing or empty")
    text = str(value)
    if len(text) > MAX_ID_CHARS:
        raise BadMessage(f"field {field!r} is longer than {MAX_ID_CHARS} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can spell a lone surrogate (\ud800), which is not text and cannot be stored.
        raise BadMessage(f"field {field!r} holds a lone surrogate, which is not text") from None
    return text


def order(data: Mapping[str, Any]) -> list[str]:
    """Charge an order once: the business id is the order id."""
    order_id = _required(data, "order_id")
    amount = data.get("amount")
    if (
        isinstance(amount, bool)
        or not isinstance(amount, (int, float))
        or not math.isfinite(amount)
        or not 0 <= amount <= MAX_AMOUNT
    ):
        raise BadMessage(f"field 'amount' must be a number from 0 to {MAX_AMOUNT:,}")
    return [f"order:{order_id}"]


def thumbnail(data: Mapping[str, Any]) -> list[str]:
    """Make thumbnails of one image (the work is simulated by work_ms of waiting)."""
    image_id = _required(data, "image_id")
    sizes = data.get("sizes", [128])
    if (
        not isinstance(sizes, list)
        or not 1 <= len(sizes) <= MAX_SIZES
        or not all(isinstance(s, int) and not isinstance(s, bool) and 8 <= s <= 4096 for s in sizes)
    ):
        raise BadMessage(
            f"field 'sizes' must be a list of 1 to {MAX_SIZES} pixel sizes, each a whole number from 8 to 4096"
        )
    return [f"thumbnail:{image_id}:{size}" for size in sizes]


def csv_import(data: Mapping[str, Any]) -> list[str]:
    """Import every row of a CSV file, or none: a bad row rejects the whole file with its line number."""
    import_id = _required(data, "import_id")
    text = data.get("csv")
    if not isinstance(text, str) or not text.strip():
        raise BadMessage("field 'csv' must hold the CSV text, header row first")
    reader = csv.reader(io.StringIO(text))
    try:
        # Blank lines are skipped, so a row's number is the reader's line, not its index.
        rows = [(reader.line_num, row) for row in reader if row]
    except csv.Error as exc:
        raise BadMessage(f"CSV line {reader.line_num} cannot be read: {exc}") from None
    if not rows:
        raise BadMessage("the CSV has no header row")
    (_, header), body = rows[0], rows[1:]
    if not body:
        raise BadMessage("the CSV has a header but no rows")
    if len(body) > MAX_CSV_ROWS:
        raise BadMessage(f"the CSV has {len(body):,} rows; one import may hold at most {MAX_CSV_ROWS:,}")
    for number, row in body:
        if len(row) != len(header):
            raise BadMessage(f"CSV line {number} has {len(row)} fields; the header has {len(header)}")
    return [f"import:{import_id}:{row_number}" for row_number in range(2, len(body) + 2)]


SCENARIOS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "order": order,
    "thumbnail": thumbnail,
    "csv_import": csv_import,
}


def _check_number(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise BadMessage(
            f"body holds a number of {len(text):,} characters; at most {MAX_NUMBER_CHARS} are read"
        )


def _read_int(text: str) -> int:
    _check_number(text)
    return int(text)


def _read_float(text: str) -> float:
    _check_number(text)
    return float(text)


def parse_body(body: bytes) -> dict[str, Any]:
    """Return the JSON object in a raw POST body, or raise BadMessage saying what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage(f"body is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise BadMessage("body is empty; send a JSON object")
    try:
        data = json.loads(text, parse_int=_read_int, parse_float=_read_float)
    except RecursionError:
        raise BadMessage("body is JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        hint = (
            " (it looks form-encoded; real sqsd sends the raw body)"
            if text.startswith("SQSMessageBody=")
            else ""
        )
        raise BadMessage(f"body is not valid JSON: {exc.msg} at character {exc.pos}{hint}") from None
    if not isinstance(data, dict):
        raise BadMessage("body must be a JSON object")
    return data


class Job(NamedTuple):
    """A message the worker understood: its scenario, business ids and simulated work."""

    kind: str
    business_ids: list[str]
    work_ms: int


def read_job(data: Mapping[str, Any], default_work_ms: int = 0) -> Job:
    """Check a message against its scenario; raise BadMessage with a one-line reason when it can never succeed."""
    if not isinstance(data, Mapping):
        raise BadMessage("the body must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in SCENARIOS:
        raise BadMessage(f"field 'type' must be one of {', '.join(SCENARIOS)}; got {short(kind)}")
    business_ids = SCENARIOS[kind](data)
    work_ms = data.get("work_ms", default_work_ms)
    if isinstance(work_ms, bool) or not isinstance(work_ms, int) or not 0 <= work_ms <= MAX_WORK_MS:
        raise BadMessage(f"work_ms must be a whole number from 0 to {MAX_WORK_MS}")
    return Job(kind, business_ids, work_ms)


def perform(job: Job, ledger: Ledger, message_id: str | None, receive_count: int = 1) -> list[str]:
    """Do the work (wait work_ms), then apply each business id once; return the ids applied now."""
    if job.work_ms:
        threading.Event().wait(job.work_ms / 1000)
    return [bid for bid in job.business_ids if ledger.apply(bid, job.kind, message_id, receive_count)]
