"""The sqsd options: AWS's names and defaults, .ebextensions files, overrides and helpful errors."""

from __future__ import annotations

import dataclasses
import json
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

# REFERENCE.md §2, copied by hand so that a change to a default has to change this table too.
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
