"""The sqsd options: AWS's names and defaults, .ebextensions files, overrides and helpful errors."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import pytest

from labapp.errors import ConfigError, LabError
from labapp.sqsd.ebextensions import load_ebextensions
from labapp.sqsd.options import (
    AWS_DEFAULTS,
    LAB_PROFILE,
    NAMESPACE,
    OPTION_NAMES,
    RANGES,
    SqsdOptions,
    parse_overrides,
    with_options,
)

# docs/aws-behaviour.md §2, copied by hand so that a change to a default has to change this table too.
REFERENCE_DEFAULTS = {
    "WorkerQueueURL": None,
    "HttpPath": "/",
    "MimeType": "application/json",
    "HttpConnections": 50,
    "ConnectTimeout": 5,
    "InactivityTimeout": 299,
    "VisibilityTimeout": 300,
    "ErrorVisibilityTimeout": 2,
    "RetentionPeriod": 345600,
    "MaxRetries": 10,
}
REFERENCE_RANGES = {
    "HttpConnections": (1, 100),
    "ConnectTimeout": (1, 60),
    "InactivityTimeout": (1, 36000),
    "VisibilityTimeout": (0, 43200),
    "ErrorVisibilityTimeout": (0, 43200),
    "RetentionPeriod": (60, 1209600),
    "MaxRetries": (1, 100),
}


def test_defaults_are_the_reference_defaults() -> None:
    assert dataclasses.asdict(AWS_DEFAULTS) == REFERENCE_DEFAULTS
    assert dataclasses.asdict(SqsdOptions()) == REFERENCE_DEFAULTS
    assert set(OPTION_NAMES) == set(REFERENCE_DEFAULTS)
    assert NAMESPACE == "aws:elasticbeanstalk:sqsd"


def test_ranges_are_the_reference_ranges() -> None:
    assert REFERENCE_RANGES == RANGES
    for name, (low, high) in REFERENCE_RANGES.items():
        assert getattr(SqsdOptions(**{name: low}), name) == low
        assert getattr(SqsdOptions(**{name: high}), name) == high


def test_lab_profile_is_valid_and_short() -> None:
    assert LAB_PROFILE.MaxRetries == 3
    assert LAB_PROFILE.ErrorVisibilityTimeout <= 2
    assert LAB_PROFILE.InactivityTimeout < AWS_DEFAULTS.InactivityTimeout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (name, value)
        for name, (low, high) in REFERENCE_RANGES.items()
        for value in (low - 1, high + 1, "ten", 1.5, True, None, "²")
    ],
)
def test_every_bad_value_names_the_option(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name):
        with_options(AWS_DEFAULTS, {name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HttpPath", "jobs"),
        ("HttpPath", 5),
        ("HttpPath", "/a b"),
        ("HttpPath", "/a\r\nX-Forged: 1"),
        ("MimeType", ""),
        ("MimeType", "  "),
        ("MimeType", "text/plain\r\nX-Forged: 1"),
        ("WorkerQueueURL", 7),
    ],
)
def test_bad_strings_name_the_option(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name):
        with_options(AWS_DEFAULTS, {name: value})


def test_config_error_is_a_lab_error() -> None:
    assert issubclass(ConfigError, LabError)


def test_values_may_be_strings_as_in_a_config_file() -> None:
    options = with_options(AWS_DEFAULTS, {"HttpConnections": " 10 ", "ErrorVisibilityTimeout": "0"})
    assert options.HttpConnections == 10
    assert options.ErrorVisibilityTimeout == 0
    assert AWS_DEFAULTS.HttpConnections == 50  # frozen: the base is unchanged
    assert options.replace(HttpPath="/jobs").HttpPath == "/jobs"


@pytest.mark.parametrize(
    ("wrong", "right"), [("MaxConcurrentAPIConnections", "HttpConnections"), ("MimetypeJSON", "MimeType")]
)
def test_article_option_names_are_rejected_with_a_hint(wrong: str, right: str) -> None:
    with pytest.raises(ConfigError) as caught:
        with_options(AWS_DEFAULTS, {wrong: "1"})
    message = str(caught.value)
    assert wrong in message
    assert f"EB calls it {right}" in message
    assert "\n" not in message


def test_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="HttpConnections") as caught:
        with_options(AWS_DEFAULTS, {"Timeout": "5"})
    assert "Timeout is not an sqsd option" in str(caught.value)


def test_parse_overrides() -> None:
    assert parse_overrides(["HttpConnections=10", " MimeType = text/plain "]) == {
        "HttpConnections": "10",
        "MimeType": "text/plain",
    }
    assert parse_overrides(["HttpPath=/a=b"]) == {"HttpPath": "/a=b"}
    for bad in ("HttpConnections", "=10", " =1"):
        with pytest.raises(ConfigError, match="Name=Value"):
            parse_overrides([bad])


def test_as_option_settings_round_trips(tmp_path: Path) -> None:
    options = LAB_PROFILE.replace(HttpPath="/jobs", WorkerQueueURL="http://127.0.0.1:1/0/q")
    path = tmp_path / "sqsd.config"
    path.write_text(json.dumps({"option_settings": options.as_option_settings()}))
    assert load_ebextensions(path) == options


# -- .ebextensions files ---------------------------------------------------------------------------
YAML_MAPPING = """\
option_settings:
  aws:elasticbeanstalk:sqsd:
    HttpPath: /worker
    HttpConnections: 10
    MimeType: text/plain
  aws:elasticbeanstalk:environment:
    EnvironmentType: SingleInstance
"""
YAML_LIST = """\
option_settings:
  - namespace: aws:elasticbeanstalk:sqsd
    option_name: InactivityTimeout
    value: "60"
  - namespace: aws:autoscaling:asg
    option_name: MaxSize
    value: "4"
  - namespace: aws:elasticbeanstalk:sqsd
    option_name: VisibilityTimeout
    value: 90
Resources:
  AWSEBAutoScalingGroup:
    Metadata:
      Queue: !GetAtt [WorkerQueue, Arn]
      Ref: !Ref WorkerQueue
"""


def test_yaml_mapping_form(tmp_path: Path) -> None:
    path = tmp_path / "01-sqsd.config"
    path.write_text(YAML_MAPPING)
    options = load_ebextensions(path)
    assert (options.HttpPath, options.HttpConnections, options.MimeType) == ("/worker", 10, "text/plain")
    assert options.InactivityTimeout == 299  # untouched options keep AWS's defaults


def test_yaml_list_form_with_cloudformation_tags(tmp_path: Path) -> None:
    path = tmp_path / "02-sqsd.config"
    path.write_text(YAML_LIST)
    options = load_ebextensions(path)
    assert (options.InactivityTimeout, options.VisibilityTimeout) == (60, 90)


def test_json_files_in_both_forms(tmp_path: Path) -> None:
    mapping = {"option_settings": {NAMESPACE: {"ErrorVisibilityTimeout": "7"}}}
    listed = {"option_settings": [{"namespace": NAMESPACE, "option_name": "MaxRetries", "value": "5"}]}
    (tmp_path / "a.json").write_text(json.dumps(mapping))
    # A tab-indented JSON document is valid JSON but not valid YAML.
    (tmp_path / "b.config").write_text(json.dumps(listed, indent="\t"))
    assert load_ebextensions(tmp_path / "a.json").ErrorVisibilityTimeout == 7
    assert load_ebextensions(tmp_path / "b.config").MaxRetries == 5


def test_folder_reads_every_config_in_order(tmp_path: Path) -> None:
    folder = tmp_path / ".ebextensions"
    folder.mkdir()
    (folder / "01-first.config").write_text(YAML_MAPPING)
    (folder / "02-second.config").write_text(YAML_LIST)
    (folder / "03-override.config").write_text(
        json.dumps({"option_settings": {NAMESPACE: {"HttpConnections": 20}}})
    )
    (folder / "notes.txt").write_text("not a config: ignored")
    expected = (20, "/worker", 60, 90)
    for path in (folder, tmp_path):  # the folder itself, or the bundle root that holds it
        options = load_ebextensions(path)
        assert (
            options.HttpConnections,
            options.HttpPath,
            options.InactivityTimeout,
            options.VisibilityTimeout,
        ) == expected


def test_base_and_overrides_apply_on_top(tmp_path: Path) -> None:
    path = tmp_path / "sqsd.config"
    path.write_text(YAML_MAPPING)
    options = with_options(load_ebextensions(path, base=LAB_PROFILE), parse_overrides(["HttpConnections=3"]))
    assert options.HttpConnections == 3
    assert options.HttpPath == "/worker"
    assert options.MaxRetries == LAB_PROFILE.MaxRetries


def test_empty_and_unrelated_files_change_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.config").write_text("")
    (tmp_path / "other.config").write_text("option_settings:\n")
    (tmp_path / "packages.config").write_text("packages:\n  yum:\n    git: []\n")
    assert load_ebextensions(tmp_path) == AWS_DEFAULTS


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("option_settings:\n  aws:elasticbeanstalk:sqsd:sqsd:\n    HttpConnections: 5\n", NAMESPACE),
        (
            "option_settings:\n  - namespace: aws:elasticbeanstalk:sqsd:sqsd\n"
            "    option_name: HttpConnections\n    value: 5\n",
            NAMESPACE,
        ),
        (
            "option_settings:\n  aws:elasticbeanstalk:sqsd:\n    MaxConcurrentAPIConnections: 1\n",
            "EB calls it HttpConnections",
        ),
        (
            "option_settings:\n  - namespace: aws:elasticbeanstalk:sqsd\n"
            "    option_name: MimetypeJSON\n    value: true\n",
            "EB calls it MimeType",
        ),
        ("option_settings:\n  aws:elasticbeanstalk:sqsd:\n    HttpConnections: 500\n", "HttpConnections"),
        ("option_settings:\n  aws:elasticbeanstalk:sqsd:\n    ConnectTimeout: soon\n", "ConnectTimeout"),
        ("option_settings:\n  aws:elasticbeanstalk:sqsd: [1, 2]\n", NAMESPACE),
        ("option_settings:\n  - namespace: aws:elasticbeanstalk:sqsd\n    value: 5\n", "option_name"),
        ("option_settings:\n  - just a string\n", "entry"),
        ("option_settings: 5\n", "mapping or a list"),
        ("- a list\n", "option_settings"),
        ("option_settings: {\n", "not valid YAML or JSON"),
        ("option_settings:\n  a: [\n", "not valid YAML or JSON"),
    ],
)
def test_bad_files_raise_one_sentence(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.config"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_ebextensions(path)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_path_and_non_utf8_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_ebextensions(tmp_path / "nope.config")
    path = tmp_path / "latin1.config"
    path.write_bytes("option_settings:\n  # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_ebextensions(path)


# -- hostile and mistaken input: one short sentence, quickly ----------------------------------------
MAX_MESSAGE = 300  # characters: one sentence a learner reads at a glance


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs" document: each level names the one before `width` times (width**levels values)."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return (
        "\n".join(lines) + f"\noption_settings:\n  aws:elasticbeanstalk:sqsd:\n    HttpPath: *a{levels - 1}\n"
    )


def refused(path: Path, *words: str) -> str:
    """Load `path`, expecting one short ConfigError sentence that holds `words`, within two seconds."""
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_ebextensions(path)
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert elapsed < 2, f"took {elapsed:.1f} s"
    assert "\n" not in message and len(message) <= MAX_MESSAGE, message[:500]
    for word in words:
        assert word in message, message
    return message


def test_an_alias_bomb_is_refused_at_once_in_one_short_sentence(tmp_path: Path) -> None:
    # Before: 97 s, 3.9 GB, and an error "sentence" gigabytes long (the repr of the value).
    path = tmp_path / "bomb.config"
    path.write_text(alias_bomb())
    assert len(path.read_bytes()) < 600
    refused(path, "more than 200,000 values", "aliases")


def test_a_document_with_too_many_aliases_is_refused(tmp_path: Path) -> None:
    many = "anchor: &x 1\nlist: [" + ", ".join(["*x"] * 101) + "]\n"
    (tmp_path / "many.config").write_text(many)
    refused(tmp_path / "many.config", "more than 100 YAML aliases")
    (tmp_path / "ok.config").write_text(many.replace(", *x]", "]"))  # exactly 100 is allowed
    assert load_ebextensions(tmp_path / "ok.config") == AWS_DEFAULTS


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cycle.config").write_text("option_settings: &loop\n  - *loop\n")
    refused(tmp_path / "cycle.config", "cycle")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.config", "option_settings: " + "[" * 5000 + "]" * 5000 + "\n"),  # was a RecursionError
        ("deep-block.config", "".join("  " * i + f"k{i}:\n" for i in range(60))),
        ("deep.json", '{"option_settings": ' + "[" * 100_000 + "]" * 100_000 + "}"),  # was a RecursionError
        ("deep-object.config", "{" + '"a": {' * 60 + "}" * 61),
    ],
)
def test_deep_nesting_is_refused_before_parsing_recurses(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    refused(tmp_path / name, "more than 50 levels deep")


def test_nesting_up_to_the_limit_still_parses(tmp_path: Path) -> None:
    (tmp_path / "y.config").write_text("other: " + "[" * 49 + "]" * 49 + "\n")  # the mapping is level 1
    (tmp_path / "j.config").write_text('{"other": ' + "[" * 49 + "]" * 49 + "}")
    assert load_ebextensions(tmp_path / "y.config") == AWS_DEFAULTS
    assert load_ebextensions(tmp_path / "j.config") == AWS_DEFAULTS
    # Aliases count as copies for depth too: 30 levels named inside 30 more is 60.
    nested = "a: &a " + "[" * 30 + "]" * 30 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    (tmp_path / "alias-depth.config").write_text(nested)
    refused(tmp_path / "alias-depth.config", "more than 50 levels deep")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    # Before: a 2.9 MB YAML took 37 s to parse.
    path = tmp_path / "huge.config"
    path.write_text("option_settings:\n" + "# padding\n" * 300_000)
    refused(path, "larger than 262,144 bytes")


@pytest.mark.parametrize(
    "text",
    [
        "option_settings:\n  aws:elasticbeanstalk:sqsd:\n    HttpPath: " + "x" * 100_000 + "\n",
        "option_settings:\n  aws:elasticbeanstalk:sqsd:\n    HttpConnections: '" + "9" * 5_000 + "'\n",
        "option_settings:\n  aws:elasticbeanstalk:sqsd:\n    HttpConnections: " + "9" * 5_000 + "\n",
        '{"option_settings": {"aws:elasticbeanstalk:sqsd": {"MaxRetries": ' + "9" * 5_000 + "}}}",
        "option_settings:\n  aws:elasticbeanstalk:sqsd:\n    MimeType: ["
        + ", ".join(["x" * 50] * 2000)
        + "]\n",
        "option_settings:\n  aws:elasticbeanstalk:sqsd:\n    " + "N" * 50_000 + ": 1\n",
        "option_settings:\n  - " + "x" * 50_000 + "\n",
        "option_settings:\n  - namespace: aws:elasticbeanstalk:sqsd\n    option_name: [a, b]\n",
        "option_settings:\n  when: 2024-13-45\n",
        "option_settings: !!python/object:os.system [echo]\n",
    ],
    ids=[
        "long-path",
        "long-number-text",
        "long-number",
        "long-json-number",
        "long-list",
        "long-name",
        "long-entry",
        "list-as-option-name",
        "bad-date",
        "python-tag",
    ],
)
def test_every_message_quotes_input_briefly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "long.config"
    path.write_text(text)
    refused(path)


def test_options_quote_long_values_briefly() -> None:
    for name, value in [
        ("HttpPath", "x" * 10_000),
        ("MimeType", "a\x00" * 5_000),
        ("MaxRetries", "9" * 5_000),
    ]:
        with pytest.raises(ConfigError) as caught:
            with_options(AWS_DEFAULTS, {name: value})
        message = str(caught.value)
        assert message.startswith(name) and len(message) <= MAX_MESSAGE and "..." in message, message
    with pytest.raises(ConfigError) as caught:
        parse_overrides(["y" * 10_000])
    assert len(str(caught.value)) <= MAX_MESSAGE


def test_a_byte_order_mark_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "notepad.config"
    path.write_bytes(b"\xef\xbb\xbf" + YAML_MAPPING.encode())
    assert load_ebextensions(path).HttpPath == "/worker"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"option_settings": {NAMESPACE: {"MaxRetries": 4}}}).encode()
    )
    assert load_ebextensions(path).MaxRetries == 4


def test_a_non_utf8_config_names_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.config"
    path.write_bytes(b"option_settings:\n  # caf\xe9\n")
    refused(path, str(path), "offset 24", "0xE9")


# -- which files a folder holds ----------------------------------------------------------------------
def test_a_folder_of_yaml_files_is_an_error_that_names_them(tmp_path: Path) -> None:
    # Before: the defaults, silently; EB would skip these files too, and the deploy would surprise.
    folder = tmp_path / ".ebextensions"
    folder.mkdir()
    (folder / "01-sqsd.yaml").write_text(YAML_MAPPING)
    (folder / "02-more.yml").write_text(YAML_LIST)
    (folder / "03-other.json").write_text("{}")
    for path in (tmp_path, folder):
        message = refused(path, "no *.config file", "EB reads only *.config", "01-sqsd.yaml", "02-more.yml")
        assert "03-other.json" in message


def test_yaml_next_to_config_files_is_a_warning_that_names_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / ".ebextensions"
    folder.mkdir()
    (folder / "01-sqsd.config").write_text(YAML_MAPPING)
    (folder / "02-forgotten.yaml").write_text(YAML_LIST)
    with caplog.at_level(logging.WARNING, logger="labapp.sqsd"):
        options = load_ebextensions(tmp_path)
    assert options.HttpPath == "/worker" and options.VisibilityTimeout == AWS_DEFAULTS.VisibilityTimeout
    [record] = caplog.records
    assert "02-forgotten.yaml" in record.getMessage() and "*.config" in record.getMessage()


def test_an_empty_ebextensions_or_a_bundle_root_means_the_defaults(tmp_path: Path) -> None:
    folder = tmp_path / ".ebextensions"
    folder.mkdir()
    (folder / "README.txt").write_text("nothing yet")
    assert load_ebextensions(tmp_path) == AWS_DEFAULTS
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "cron.yaml").write_text("version: 1\ncron: []\n")  # belongs at the root, not a config
    (bundle / "docker-compose.yml").write_text("services: {}\n")
    (bundle / "package.json").write_text("{}")
    assert load_ebextensions(bundle) == AWS_DEFAULTS
