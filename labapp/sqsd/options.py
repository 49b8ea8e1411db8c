"""The sqsd options (`aws:elasticbeanstalk:sqsd`) as one object, with AWS's names and defaults.

Field names are the option names exactly as they appear in `.ebextensions`, so a learner can
copy a line from an EB config into Python and back.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from labapp.errors import ConfigError, clipped, quoted
from labapp.sqs.limits import MAX_VISIBILITY_S

NAMESPACE = "aws:elasticbeanstalk:sqsd"


_WHOLE_NUMBER = re.compile(r"-?[0-9]+")
#: More digits than any range's bound has: such a number is out of range, whatever it is.
MAX_DIGITS = 12


# Both end up in the request: a line break in either would forge a header or a second request.
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x20\x7f]")


def path_problem(path: object) -> str | None:
    """Say why `path` cannot be the target of a POST to the app, or return None for a plain local path.

    HttpPath and a periodic task's `beanstalk.sqsd.path` both end up after the app's host and port;
    anything that could name another host there (`//host`, `@`, a backslash), climb above the root
    (`..`), or break the request line is refused.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        return "it does not start with '/'"
    if _UNSAFE_IN_PATH.search(path) or not path.isascii():
        return "it contains spaces, control or non-ASCII characters"
    decoded = unquote(path)  # %2F, %5C and %40 are refused as their plain forms are
    if path.startswith("//") or decoded.startswith("//"):
        return "it starts with '//', which names another host"
    if "\\" in decoded or "@" in decoded:
        return "it contains '\\' or '@', which can name another host"
    if "#" in path:
        return "it contains '#', which a request path cannot carry"
    depth = 0
    for segment in decoded.split("?", 1)[0].split("/")[1:]:
        if segment == "..":
            depth -= 1
            if depth < 0:
                return "its '..' segments climb above the root"
        elif segment not in ("", "."):
            depth += 1
    return None


_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


# (low, high) in seconds or counts, as in the EB option reference.
RANGES: dict[str, tuple[int, int]] = {
    "HttpConnections": (1, 100),
    "ConnectTimeout": (1, 60),
    "InactivityTimeout": (1, 36000),
    "VisibilityTimeout": (0, MAX_VISIBILITY_S),
    "ErrorVisibilityTimeout": (0, MAX_VISIBILITY_S),
    "RetentionPeriod": (60, 1209600),
    "MaxRetries": (1, 100),
}


# Names that articles use but EB does not know, mapped to what they probably meant.
WRONG_NAMES = {
    "MaxConcurrentAPIConnections": "HttpConnections",
    "MimetypeJSON": "MimeType",
}


@dataclasses.dataclass(frozen=True)
class SqsdOptions:
    """The ten sqsd options with the defaults a real worker environment uses."""

    WorkerQueueURL: str | None = None
    HttpPath: str = "/"
    MimeType: str = "application/json"
    HttpConnections: int = 50
    ConnectTimeout: int = 5
    InactivityTimeout: int = 299
    VisibilityTimeout: int = 300
    ErrorVisibilityTimeout: int = 2
    RetentionPeriod: int = 345600
    MaxRetries: int = 10

    def __post_init__(self) -> None:
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be a whole number from {low} to {high}; got {quoted(value)}.")
            if not low <= value <= high:
                raise ConfigError(f"{name} must be from {low} to {high}; got {quoted(value)}.")
        problem = path_problem(self.HttpPath)
        if problem:
            raise ConfigError(
                f"HttpPath must be a path starting with '/', without spaces; got {quoted(self.HttpPath)}: {problem}."
            )
        if (
            not isinstance(self.MimeType, str)
            or not self.MimeType.strip()
            or _UNSAFE_IN_HEADER.search(self.MimeType)
        ):
            raise ConfigError(
                f"MimeType must be a non-empty string without control characters; got {quoted(self.MimeType)}."
            )
        if self.WorkerQueueURL is not None and not isinstance(self.WorkerQueueURL, str):
            raise ConfigError(f"WorkerQueueURL must be a URL string; got {quoted(self.WorkerQueueURL)}.")

    def replace(self, **changes: Any) -> SqsdOptions:
        """Return a copy with some options changed (values may be strings, as in a config file)."""
        return with_options(self, changes)

    def as_option_settings(self) -> dict[str, dict[str, str]]:
        """Return the options as an `.ebextensions` `option_settings` mapping."""
        values = {
            f.name: str(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }
        return {NAMESPACE: values}


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(SqsdOptions))


AWS_DEFAULTS = SqsdOptions()


# Short timeouts so that a retry or a trip to the DLQ takes seconds in a notebook.
LAB_PROFILE = SqsdOptions(
    HttpConnections=10,
    InactivityTimeout=10,
    VisibilityTimeout=5,
    ErrorVisibilityTimeout=1,
    RetentionPeriod=3600,
    MaxRetries=3,
)


def _coerce(name: str, value: Any) -> Any:
    if name in RANGES and isinstance(value, str):
        text = value.strip()
        # ASCII digits only: str.isdigit() accepts "²", which int() then refuses.
        low, high = RANGES[name]
        if not _WHOLE_NUMBER.fullmatch(text):
            raise ConfigError(f"{name} must be a whole number from {low} to {high}; got {quoted(value)}.")
        # int() of thousands of digits raises past Python's 4,300-digit limit; no range needs more than 7.
        if len(text.lstrip("-0")) > MAX_DIGITS:
            raise ConfigError(f"{name} must be from {low} to {high}; got {quoted(value)}.")
        return int(text)
    return value


def with_options(base: SqsdOptions, changes: Mapping[str, Any]) -> SqsdOptions:
    """Return `base` with `changes` applied, naming any unknown or invalid option."""
    for name in changes:
        if name not in OPTION_NAMES:
            hint = WRONG_NAMES.get(name)
            extra = f" (EB calls it {hint})" if hint else ""
            raise ConfigError(
                f"{clipped(str(name))} is not an sqsd option{extra}; known options: {', '.join(OPTION_NAMES)}."
            )
    return dataclasses.replace(base, **{k: _coerce(k, v) for k, v in changes.items()})


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """Turn `Name=Value` strings from the command line into a mapping."""
    result = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--option takes Name=Value, e.g. HttpConnections=10; got {quoted(pair)}.")
        result[name.strip()] = value.strip()
    return result
