"""Read the YAML and JSON files a bundle carries (`.ebextensions/*.config`, `cron.yaml`), within bounds.

A config file is a few KB. Anything far bigger, deeper or more repetitive than that is a mistake
or an attack, and is refused before it can cost minutes or gigabytes: the file's size before
parsing, the nesting depth and the number of aliases before composing, and the number of values
(an alias counted as a copy of what it names) before any Python object is built. Each refusal is one
sentence that names the file and the limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from labapp.errors import ConfigError, clipped

#: The largest config file read, in bytes. A real `.config` or `cron.yaml` is a few KB. The worst
#: file this size (one flat list of 131,000 values) takes 0.6 s with libyaml, 5 s without.
MAX_DOCUMENT_BYTES = 256 * 1024
#: The deepest nesting of mappings and lists; a real config file nests a handful of levels.
MAX_DEPTH = 50
#: The most YAML aliases (`*name`) in one document; real config files use a handful, if any.
MAX_ALIASES = 100
#: The most values in one document, each alias counted as a full copy of what it names. Above what
#: a MAX_DOCUMENT_BYTES file can hold without aliases, so only alias expansion ("billion laughs")
#: reaches it.
MAX_VALUES = 200_000
#: What libyaml says when its own nesting limit (1,000 levels) stops it before MAX_DEPTH is counted.
LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"
DOCUMENT_LIMIT_WHAT = "the lab reads from a config file"
#: How much of a parser's own complaint an error message keeps.
PROBLEM_CHARS = 100

# A JSON string (skipped whole, so brackets inside it do not count) or one bracket.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def decode_utf8(data: bytes, source: str) -> str:
    """Decode UTF-8 bytes, or raise ConfigError naming the source and the offset of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source} is not UTF-8 text: byte 0x{data[exc.start]:02X} at offset {exc.start} "
            f"is not valid UTF-8; save the file as UTF-8."
        ) from None


def read_limited(path: Path, limit: int, what: str) -> bytes:
    """Read at most `limit` bytes of a file, raising ConfigError if it holds more."""
    with path.open("rb") as stream:
        data = stream.read(limit + 1)  # one byte more tells "too big" without reading it all
    if len(data) > limit:
        raise ConfigError(f"{path} is larger than {limit:,} bytes, the most {what}.")
    return data


def read_file_text(path: Path, limit: int, what: str) -> str:
    """Read a UTF-8 text file of at most `limit` bytes, each failure one ConfigError sentence."""
    return decode_utf8(read_limited(path, limit, what), str(path))


def read_document(path: Path, *, json_allowed: bool, cloudformation_tags: bool) -> Any:
    """Read one config file within the limits and return its parsed value."""
    text = read_file_text(path, MAX_DOCUMENT_BYTES, DOCUMENT_LIMIT_WHAT)
    return parse_document(
        text,
        str(path),
        json_first=json_allowed and (path.suffix == ".json" or text.lstrip().startswith("{")),
        json_allowed=json_allowed,
        cloudformation_tags=cloudformation_tags,
    )


def parse_document(
    text: str, source: str, *, json_first: bool, json_allowed: bool, cloudformation_tags: bool
) -> Any:
    """Parse config text as JSON (when `json_first`) or YAML, refusing what is too big, deep or repetitive.

    Parameters:
        text: the document.
        source: how error messages name it, e.g. its path.
        json_first: parse it as JSON (a `.config` may be JSON, and tab-indented JSON is not YAML).
        json_allowed: say "YAML or JSON" rather than "YAML" when it does not parse.
        cloudformation_tags: read tags such as `!Ref` as plain values, as `.ebextensions` files use them.
    """
    kind = "YAML or JSON" if json_allowed else "YAML"
    _check_size(text, source)
    text = text.removeprefix("\ufeff")  # a byte-order mark, as Windows editors write
    if json_first:
        _check_json_depth(text, source)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{source} is not valid {kind}: {exc.msg} at line {exc.lineno}, column {exc.colno}."
            ) from None
        except ValueError as exc:  # e.g. an integer past Python's 4,300-digit limit
            raise ConfigError(f"{source} is not valid {kind}: {clipped(str(exc), PROBLEM_CHARS)}.") from None
    loader_class = _CloudFormationLoader if cloudformation_tags else _SafeLoader
    try:
        # Two passes: a cheap one over the parser's events to bound nesting and aliases, then
        # the composer (recursive, once per level), which therefore never nears a RecursionError.
        _check_events(yaml.parse(text, Loader=loader_class), source)
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _measure(node, source)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        if LIBYAML_TOO_DEEP in str(exc):  # libyaml's scanner reads ahead and has a limit of its own
            raise _too_deep(source) from None
        raise ConfigError(f"{source} is not valid {kind}: {_yaml_problem(exc)}.") from None
    except (ValueError, OverflowError) as exc:  # a date like 2024-13-01, a 5,000-digit integer
        raise ConfigError(
            f"{source} has a value YAML cannot read: {clipped(str(exc), PROBLEM_CHARS)}."
        ) from None


def _check_size(text: str, source: str) -> None:
    # Characters never outnumber UTF-8 bytes, so a short text needs no encoding to be measured.
    if len(text) > MAX_DOCUMENT_BYTES or (
        len(text) * 4 > MAX_DOCUMENT_BYTES and len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES
    ):
        raise ConfigError(
            f"{source} is larger than {MAX_DOCUMENT_BYTES:,} bytes, the most {DOCUMENT_LIMIT_WHAT}."
        )


def _too_deep(source: str) -> ConfigError:
    return ConfigError(f"{source} nests lists or mappings more than {MAX_DEPTH} levels deep.")


def _check_json_depth(text: str, source: str) -> None:
    # json.loads recurses once per level and fails with a RecursionError near 1,000: count first.
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep(source)
        elif token in "]}":
            depth -= 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return clipped(exc.problem, PROBLEM_CHARS) + where
    lines = str(exc).splitlines()
    return clipped(lines[0] if lines else type(exc).__name__, PROBLEM_CHARS)


# libyaml's parser and composer, where PyYAML was built with it, are about five times as fast as
# the pure-Python ones; the constructor, which turns nodes into values, is SafeConstructor either way.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_events(events: Iterator[yaml.Event], source: str) -> None:
    depth = aliases = 0
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep(source)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise ConfigError(
                    f"{source} uses more than {MAX_ALIASES} YAML aliases (*name); write the values out instead."
                )


def _plain_value(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


class _CloudFormationLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """A safe loader (no arbitrary objects) that reads CloudFormation tags (!Ref, !GetAtt, ...) as plain values."""


_CloudFormationLoader.add_multi_constructor("!", _plain_value)


def _measure(root: yaml.Node, source: str) -> None:
    """Refuse a node graph whose aliases make it cyclic, too deep or too big once expanded.

    Composing keeps an alias as a second reference to one node, so the graph stays small; every
    walk over the values built from it (a comparison, a repr, a loop) pays for the full expansion.
    Sizes are memoized per node, so measuring costs one visit per node, not per copy.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, levels)
    on_path: set[int] = set()

    def walk(node: yaml.Node, depth: int) -> tuple[int, int]:
        if depth > MAX_DEPTH:
            raise _too_deep(source)
        key = id(node)
        if key in on_path:
            raise ConfigError(f"{source} has a YAML alias inside the value its anchor names (a cycle).")
        if key not in measured:
            on_path.add(key)
            values, levels = 1, 1
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            for child in children:
                child_values, child_levels = walk(child, depth + 1)
                values += child_values
                levels = max(levels, child_levels + 1)
                if values > MAX_VALUES:
                    raise ConfigError(
                        f"{source} holds more than {MAX_VALUES:,} values once its YAML aliases are "
                        f"expanded; write the values out instead."
                    )
            on_path.discard(key)
            measured[key] = (values, levels)
        values, levels = measured[key]
        if depth + levels - 1 > MAX_DEPTH:
            raise _too_deep(source)
        return values, levels

    walk(root, 1)
