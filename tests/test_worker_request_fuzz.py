"""Fuzz the whole request path of the worker through Flask's test client: never a 500.

Random methods, paths, headers (non-ASCII ones the way waitress hands them over: bytes read as
Latin-1), bodies (binary, invalid UTF-8, deep JSON, huge numbers, near-valid scenarios), with and
without a shared secret and sometimes signed right. Every answer must be a 2xx or a 4xx with a
one-line JSON reason; a 5xx only when it is an injected failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from labapp import signature
from labapp.worker import state as worker_state
from labapp.worker.app import create_app

SECRET = "fuzz-" + "0123456789abcdef" * 2
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=500,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
INJECTED = ("injected failure", "worker crashed (failure injection)")

KNOWN_PATHS = [
    "/",
    "/_lab",
    "/_lab/",
    "/_labx",
    "/_lab/x",
    "/_lab/health",
    "/_lab/failures",
    "/_lab/requests",
    "/_lab/requests?n=3",
    "/_lab/ledger",
    "/_lab/reset",
    "/tasks/report",
    "/orders/new",
    "//",
    "//_lab/reset",
    "/_lab//reset",
    "/%2e%2e/_lab/reset",
]
# A path goes in as PATH_INFO, the way waitress hands it over: percent-decoded, read as Latin-1.
paths = st.one_of(
    st.sampled_from(KNOWN_PATHS),
    st.text(max_size=30).map(lambda t: "/" + t.encode("utf-8", "surrogatepass").decode("latin-1")),
    st.text(max_size=10).map(lambda t: t.encode("utf-8", "surrogatepass").decode("latin-1")),
)
methods = st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])

HEADER_NAMES = [
    "X-Aws-Sqsd-Msgid",
    "X-Aws-Sqsd-Receive-Count",
    "X-Aws-Sqsd-Scheduled-At",
    "X-Aws-Sqsd-Taskname",
    signature.SIGNATURE_HEADER,
    signature.TIMESTAMP_HEADER,
    signature.NONCE_HEADER,
    "Content-Type",
    "X-Odd",
]


def _latin1(text: str) -> str:
    # waitress decodes header bytes as Latin-1; CR, LF and NUL cannot be in a header at all.
    return text.encode("utf-8").decode("latin-1").translate({0: None, 10: None, 13: None})


header_values = st.one_of(
    st.text(max_size=40).map(_latin1),
    st.sampled_from(["1", "-1", "9" * 5000, "sha256=" + "é" * 64, "application/json", "1700000000"]),
)
headers = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=5)

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
FIELDS = ["type", "order_id", "amount", "work_ms", "image_id", "sizes", "import_id", "csv"]
scenario_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["order", "thumbnail", "csv_import", "refund"])},
    optional={name: json_values for name in FIELDS[1:]},
)
raw_numbers = st.sampled_from([b"9" * 5000, b"1e999", b"-1e999", b"1." + b"5" * 5000, b"NaN", b"-Infinity"])


def _with_number(number: bytes, field: str) -> bytes:
    return b'{"type": "order", "order_id": "n", "amount": 1, "%s": %s}' % (field.encode(), number)


bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    scenario_like.map(lambda v: json.dumps(v).encode()),
    st.builds(
        _with_number, raw_numbers, st.sampled_from(["amount", "work_ms", "sizes", "latency_ms", "order_id"])
    ),
    st.integers(min_value=1, max_value=200_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[dict[bool, Flask]]:
    made = {}
    for secret in (False, True):
        app = create_app(
            {
                "LEDGER_PATH": str(tmp_path / f"ledger-{secret}.sqlite"),
                "SHARED_SECRET": SECRET if secret else None,
            }
        )
        worker_state.of(app).crash = lambda: None  # an injected crash must not end pytest
        made[secret] = app
    yield made
    for app in made.values():
        worker_state.of(app).ledger.close()


def _signed(method: str, path: str, body: bytes, extra: dict[str, str]) -> dict[str, str]:
    if path.startswith("/_lab/") and path.split("?")[0] in KNOWN_PATHS:
        return {**extra, **signature.control_headers(SECRET, method, path, body)}
    message_id = extra.get("X-Aws-Sqsd-Msgid", "")
    return {**extra, **signature.message_headers(SECRET, message_id, body)}


# Another server may pass on a Content-Length that does not match the body, or is not a number.
content_lengths = st.none() | st.sampled_from(["abc", "-1", " 5", "9" * 30, "9" * 5000]) | st.text(max_size=6)


def case(method: str, path: str, body: bytes, secret: bool = False, **extra: str) -> dict[str, Any]:
    """Return the arguments of one explicit example: an unsigned request."""
    return {
        "method": method,
        "path": path,
        "extra": extra,
        "body": body,
        "secret": secret,
        "sign": False,
        "length": None,
    }


@FUZZ
@given(
    method=methods,
    path=paths,
    extra=headers,
    body=bodies,
    secret=st.booleans(),
    sign=st.booleans(),
    length=content_lengths,
)
@example(**case("POST", "/", b"{}", True, **{signature.SIGNATURE_HEADER: "sha256=é"}))
@example(**case("POST", "/", _with_number(b"9" * 5000, "work_ms")))
@example(**case("POST", "/", b'{"type": "order", "order_id": "\\ud800", "amount": 1}'))
@example(**case("PUT", "/_lab/failures", b'{"latency_ms": 1e400}'))
@example(**case("PUT", "/_lab/failures", b'{"latency_ms": ' + b"9" * 5000 + b"}"))
@example(**case("POST", "/_labx", b'{"type":"order","order_id":"x","amount":1e9}', True))
@example(**case("GET", "/nowhere", b""))
@example(**case("POST", "//", b"{}"))
@example(**case("POST", "", b"{}"))
@example(**case("POST", "/", b"{}", **{"X-Aws-Sqsd-Receive-Count": "9" * 5000}))
@example(**case("POST", "/", b'{"type": "csv_import", "import_id": "c", "csv": "\\""}'))
def test_no_request_makes_the_worker_fail(
    apps: dict[bool, Flask],
    method: str,
    path: str,
    extra: dict[str, str],
    body: bytes,
    secret: bool,
    sign: bool,
    length: str | None,
) -> None:
    app = apps[secret]
    sent = _signed(method, path, body, extra) if secret and sign else extra
    path_info, _, query = path.partition("?")
    overrides = {"PATH_INFO": path_info, "QUERY_STRING": query}
    if length is not None:
        overrides["CONTENT_LENGTH"] = length
    reply = app.test_client().open("/", method=method, data=body, headers=sent, environ_overrides=overrides)
    current = worker_state.of(app)
    current.failures.reset()  # a fuzzed PUT may have asked for a hang or a long latency
    status = reply.status_code
    data: Any = reply.get_json(silent=True)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str) and error.startswith(INJECTED):
        return
    assert 200 <= status < 300 or 400 <= status < 500, (status, reply.get_data()[:300])
    if method == "HEAD" or (method == "OPTIONS" and status == 200):
        return
    assert data is not None, (status, reply.get_data()[:300])
    if status >= 400:
        assert isinstance(error, str) and error, data
        assert "\n" not in error and len(error) <= 300, error
