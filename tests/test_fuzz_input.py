"""Fuzz the input the lab reads: `.ebextensions` documents, `cron.yaml`, and message bodies and attributes.

Every input either parses, or raises ConfigError/LabError with one sentence of at most 300
characters, within a time bound; nothing else may escape (no RecursionError, no ValueError, no
traceback, no hang). Hypothesis runs derandomized with modest example counts, as in test_fuzz.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from labapp.errors import ConfigError, LabError
from labapp.sqs.client import SqsClient
from labapp.sqs.limits import MAX_MESSAGE_BYTES, check_attributes, check_body
from labapp.sqs.queues import QueuePair, send_messages, string_attributes
from labapp.sqsd.cron import next_times, parse_cron_yaml
from labapp.sqsd.ebextensions import load_ebextensions
from labapp.sqsd.options import NAMESPACE, OPTION_NAMES, SqsdOptions

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
MAX_MESSAGE = 300  # characters: one sentence
TIME_BOUND_S = 3.0  # per example; the worst accepted document takes well under a second


@contextmanager
def bounded() -> Iterator[None]:
    started = time.perf_counter()
    yield
    elapsed = time.perf_counter() - started
    assert elapsed < TIME_BOUND_S, f"took {elapsed:.1f} s"


def assert_sentence(error: LabError) -> None:
    message = str(error)
    assert message and "\n" not in message, message[:500]
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:500]}"


# -- YAML and JSON documents, written as text so that tags, anchors and odd scalars all occur -------
plain_words = st.from_regex(r"[A-Za-z_][A-Za-z0-9_:./-]{0,12}", fullmatch=True)
odd_scalars = st.sampled_from(
    [
        "~",
        "null",
        "yes",
        "no",
        "1e999",
        ".nan",
        "0x1F",
        "0o17",
        "1_000",
        "2024-02-30",
        "2024-13-45",
        "2024-05-01T03:00:00Z",
        "9" * 5000,
        "-" + "9" * 5000,
        "!!binary AAAA",
        "!!binary not-base64",
        "!!int x",
        "!!float x",
        "!!timestamp 2024-99-99",
        "!!python/object:os.system [echo]",
        '"\\x"',
        "'unterminated",
        "*undefined",
        "<<: *a",
        "? [a]",
    ]
)
scalars = st.one_of(
    st.text(max_size=20).map(json.dumps),
    plain_words,
    st.integers().map(str),
    st.sampled_from([*OPTION_NAMES, NAMESPACE, f"{NAMESPACE}:sqsd", "option_settings"]),
    odd_scalars,
)
tags = st.sampled_from(
    ["", "", "", "!Ref ", "!GetAtt ", "!Sub ", "!Join ", "!Base64 ", "!!str ", "!!map ", "!!seq "]
)
anchors = st.sampled_from(["", "", "", "&a ", "&b "])
aliases = st.sampled_from(["*a", "*b"])


def _collection(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    sequences = st.lists(children, max_size=5).map(lambda items: "[" + ", ".join(items) + "]")
    mappings = st.lists(st.tuples(st.one_of(scalars, children), children), max_size=5).map(
        lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    )
    return st.tuples(anchors, tags, sequences | mappings).map("".join)


yaml_values = st.recursive(
    st.tuples(anchors, tags, scalars).map("".join) | aliases, _collection, max_leaves=30
)


@st.composite
def deep(draw: st.DrawFn) -> str:
    """A value wrapped in 0 to 120 levels of brackets, braces or both: either side of the limit of 50."""
    levels = draw(st.integers(0, 120))
    opening = draw(st.lists(st.sampled_from(["[", "{a: "]), min_size=levels, max_size=levels))
    closing = "".join("]" if o == "[" else "}" for o in reversed(opening))
    return "".join(opening) + draw(scalars) + closing


option_values = st.one_of(
    st.integers(-10, 100_000),
    st.text(max_size=30),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
)
option_maps = st.dictionaries(st.sampled_from([*OPTION_NAMES, "Timeout"]), option_values, max_size=4)


@st.composite
def config_documents(draw: st.DrawFn) -> tuple[str, str]:
    """Return (file name, text): a near-valid option_settings document in YAML or JSON, or a random one."""
    form = draw(st.sampled_from(["mapping", "list", "random", "deep", "text"]))
    if form == "mapping":
        document: Any = {"option_settings": {draw(st.sampled_from([NAMESPACE, "aws:x"])): draw(option_maps)}}
    elif form == "list":
        entries = [
            {"namespace": NAMESPACE, "option_name": name, "value": value}
            for name, value in draw(option_maps).items()
        ]
        document = {"option_settings": entries}
    elif form == "random":
        return "random.config", "option_settings: " + draw(yaml_values) + "\nResources: " + draw(yaml_values)
    elif form == "deep":
        return "deep.config", "option_settings: " + draw(deep())
    else:
        return "text.config", draw(st.text(max_size=200))
    if draw(st.booleans()):
        return "doc.json", json.dumps(document, indent=draw(st.sampled_from([None, 2, "\t"])))
    return "doc.config", yaml.safe_dump(document)


@settings(FUZZ, max_examples=300)
@given(document=config_documents())
@example(document=("bomb.config", "a: &a [" + ",".join(["*a"] * 3) + "]"))
@example(document=("tab.json", '{\n\t"option_settings": {}\n}'))
@example(document=("bom.config", "\ufeffoption_settings: {}"))
@example(document=("nul.config", "option_settings: \x00"))
@example(document=("merge.config", "base: &a {x: 1}\noption_settings:\n  <<: *a\n"))
def test_any_ebextensions_document_parses_or_is_one_sentence(
    tmp_path: Path, document: tuple[str, str]
) -> None:
    name, text = document
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with bounded():
        try:
            options = load_ebextensions(path)
        except ConfigError as exc:
            assert_sentence(exc)
            return
    assert isinstance(options, SqsdOptions)


@settings(FUZZ, max_examples=100)
@given(data=st.binary(max_size=300))
@example(data=b"option_settings: {}\n\xff")
@example(data=b"\xef\xbb\xbfoption_settings: {}")
@example(data=b"\xc3")
def test_any_bytes_as_a_config_file_parse_or_are_one_sentence(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bytes.config"
    path.write_bytes(data)
    with bounded():
        try:
            load_ebextensions(path)
        except ConfigError as exc:
            assert_sentence(exc)
            if "not UTF-8" in str(exc):
                offset = int(re.search(r"offset (\d+)", str(exc)).group(1))  # type: ignore[union-attr]
                with pytest.raises(UnicodeDecodeError) as decoding:
                    data.decode("utf-8")
                assert offset == decoding.value.start


# -- cron.yaml ------------------------------------------------------------------------------------------
cron_fields = st.one_of(
    st.just("*"),
    st.integers(0, 70).map(str),
    st.sampled_from(["JAN", "dec", "MON", "sun", "FOO", "L", "?", "#", "", "٣", "²"]),
    st.tuples(st.integers(0, 70), st.integers(0, 70)).map(lambda r: f"{r[0]}-{r[1]}"),
    st.tuples(st.sampled_from(["*", "5", "1-30"]), st.integers(0, 100)).map(lambda s: f"{s[0]}/{s[1]}"),
    st.lists(st.integers(0, 70).map(str), min_size=1, max_size=4).map(",".join),
    st.just("9" * 5000),
)
schedules = st.one_of(
    st.lists(cron_fields, min_size=3, max_size=7).map(" ".join),
    st.text(max_size=30),
)
task_names = st.one_of(plain_words, st.text(max_size=40), st.just("x" * 5000))
task_urls = st.one_of(plain_words.map(lambda w: "/" + w), st.text(max_size=30), st.just("/a\r\nX: 1"))
tasks = st.fixed_dictionaries(
    {"name": task_names, "url": task_urls, "schedule": schedules},
    optional={"timezone": st.just("CET"), "extra": st.integers()},
)


@st.composite
def cron_documents(draw: st.DrawFn) -> str:
    form = draw(st.sampled_from(["tasks", "tasks", "random", "deep", "text"]))
    if form == "tasks":
        document: dict[str, Any] = {
            "version": draw(st.sampled_from([1, 1, 1, 2, "1", True])),
            "cron": draw(st.lists(tasks, max_size=4)),
        }
        if draw(st.booleans()) and draw(st.booleans()):
            document["leader"] = "x"
        return yaml.safe_dump(document, allow_unicode=draw(st.booleans()))
    if form == "random":
        return "version: 1\ncron: " + draw(yaml_values)
    if form == "deep":
        return "version: 1\ncron: " + draw(deep())
    return draw(st.text(max_size=200))


@settings(FUZZ, max_examples=300)
@given(text=cron_documents())
@example(text="version: 1\ncron:\n  - {name: a, url: /a, schedule: '0 0 31 2 *'}\n")
@example(text="version: 1\ncron:\n  - {name: a, url: /a, schedule: '0 0 30 2 1'}\n")
@example(text="version: 1\ncron:\n  - {name: a, url: /a, schedule: '*/" + "9" * 5000 + " * * * *'}\n")
@example(text="version: 1\ncron:\n  - &t {name: a, url: /a, schedule: '* * * * *'}\n  - *t\n")
def test_any_cron_yaml_parses_or_is_one_sentence(text: str) -> None:
    with bounded():
        try:
            parsed = parse_cron_yaml(text)
        except ConfigError as exc:
            assert_sentence(exc)
            return
        for task in parsed:
            # An accepted schedule runs (or is found never to run) quickly: no endless search.
            next_times(task.schedule, dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), 3)


# -- message bodies and attributes against the size limits ----------------------------------------------
@st.composite
def bodies(draw: st.DrawFn) -> str:
    """A body of any characters (some SQS refuses), sometimes repeated up to just past 1 MiB."""
    piece = draw(st.text(min_size=0, max_size=8))
    if not piece or draw(st.booleans()):
        return piece
    target = draw(st.sampled_from([1_024, 1_025, 262_145, MAX_MESSAGE_BYTES - 100, MAX_MESSAGE_BYTES + 1]))
    return (piece * (target // max(1, len(piece.encode("utf-8", "surrogatepass"))) + 1))[: target + 8]


attribute_values = st.one_of(
    st.text(max_size=30), st.integers(), st.floats(allow_nan=False), st.binary(max_size=20)
)
attribute_maps = st.dictionaries(
    st.text(min_size=1, max_size=40) | plain_words, attribute_values, max_size=12
)
queue_limits = st.integers(1_024, MAX_MESSAGE_BYTES)


@settings(FUZZ, max_examples=300)
@given(body=bodies(), attributes=attribute_maps, limit=queue_limits)
@example(body="x" * MAX_MESSAGE_BYTES, attributes={}, limit=MAX_MESSAGE_BYTES)
@example(body="x" * 2_000, attributes={"a": "b"}, limit=1_024)
@example(body="\ud800", attributes={}, limit=1_024)
def test_any_body_and_attributes_fit_the_limit_or_are_one_sentence(
    body: str, attributes: dict[str, Any], limit: int
) -> None:
    with bounded():
        try:
            message_attributes = string_attributes(attributes)
            size = check_body(body, check_attributes(message_attributes), limit)
        except LabError as exc:
            assert_sentence(exc)
            if "bytes with its attributes" in str(exc):
                assert str(f"{limit:,}") in str(exc)
            return
    assert size <= limit
    assert size >= len(body.encode("utf-8"))


@pytest.fixture
def limited(sqs: SqsClient, queues: QueuePair) -> QueuePair:
    """The fresh queue pair, its worker queue limited to 4 KiB (MaximumMessageSize)."""
    sqs.set_queue_attributes(QueueUrl=queues.url, Attributes={"MaximumMessageSize": "4096"})
    return queues


@settings(FUZZ, max_examples=25)
@given(sizes=st.lists(st.integers(1, 6_000), min_size=1, max_size=12))
@example(sizes=[4_096, 4_097])
def test_the_queue_takes_what_fits_its_maximum_and_the_kit_refuses_the_rest(
    sqs: SqsClient, limited: QueuePair, sizes: list[int]
) -> None:
    bodies = [f"{uuid.uuid4().hex}:" + "x" * max(0, n - 33) for n in sizes]
    with bounded():
        try:
            ids = send_messages(sqs, limited.url, bodies)
        except LabError as exc:
            assert_sentence(exc)
            assert any(len(b) > 4_096 for b in bodies), str(exc)
            assert "MaximumMessageSize is 4,096" in str(exc)
            return
    assert all(len(b) <= 4_096 for b in bodies)
    assert len(ids) == len(bodies)
