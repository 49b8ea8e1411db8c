"""Bad input through the real `labapp` command: one line on stderr, exit 2, within seconds, never a traceback.

Each case was a traceback, a hang or a wrong message before: an alias bomb in .ebextensions (97 s,
3.9 GB), deep YAML or JSON (RecursionError), a folder of .yaml files (silently the defaults), a
cron.yaml or a `send --file` that is not UTF-8 (UnicodeDecodeError), and real AWS without a region
("the SQS endpoint did not answer (You must specify a region.)").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from labapp.cli import main
from labapp.sqs.client import SqsClient
from labapp.sqs.queues import ensure_queues

MAX_MESSAGE = 300  # characters
TIME_BOUND_S = 15  # a Python start-up on a loaded two-core machine, and then a prompt refusal
NOWHERE = "http://127.0.0.1:1"  # a local endpoint that is never contacted before the error


def labapp(tmp_path: Path, *argv: str, **env: str) -> tuple[int, str, float]:
    """Run `python -m labapp` with a private LAB_HOME and no AWS region; return (code, stderr, seconds)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAB_"))}
    environment |= {"LAB_HOME": str(tmp_path / "home"), "AWS_CONFIG_FILE": str(tmp_path / "no-config")}
    environment |= env
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "labapp", *argv],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stderr, time.perf_counter() - started


def assert_one_sentence(code: int, err: str, seconds: float, *words: str) -> None:
    lines = [line for line in err.splitlines() if "WARNING" not in line and "INFO" not in line]
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("labapp: "), err[-2000:]
    assert len(lines[0]) <= MAX_MESSAGE, lines[0][:500]
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]
    assert seconds < TIME_BOUND_S, f"took {seconds:.1f} s"


def daemon_args(*extra: str) -> list[str]:
    return [
        "daemon",
        "--endpoint-url",
        NOWHERE,
        "--queue-url",
        f"{NOWHERE}/0/q",
        "--http-url",
        NOWHERE,
        *extra,
    ]


def bomb() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 9)]
    return "\n".join(lines) + "\noption_settings:\n  aws:elasticbeanstalk:sqsd:\n    HttpPath: *a8\n"


CONFIGS: dict[str, tuple[str, str, str]] = {
    "alias-bomb": ("bomb.config", bomb(), "200,000 values"),
    "deep-yaml": ("deep.config", "option_settings: " + "[" * 5000 + "]" * 5000 + "\n", "50 levels deep"),
    "deep-json": (
        "deep.json",
        '{"option_settings": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "50 levels deep",
    ),
    "big-yaml": ("big.config", "option_settings:\n" + "  # pad\n" * 400_000, "262,144 bytes"),
}


@pytest.mark.parametrize("case", CONFIGS)
def test_a_hostile_config_is_one_sentence(tmp_path: Path, case: str) -> None:
    name, text, words = CONFIGS[case]
    (tmp_path / name).write_text(text)
    assert_one_sentence(*labapp(tmp_path, *daemon_args("--config", str(tmp_path / name))), words)


def test_a_folder_of_yaml_files_is_one_sentence_naming_them(tmp_path: Path) -> None:
    folder = tmp_path / "bundle" / ".ebextensions"
    folder.mkdir(parents=True)
    (folder / "sqsd.yaml").write_text(
        "option_settings:\n  aws:elasticbeanstalk:sqsd:\n    HttpConnections: 7\n"
    )
    result = labapp(tmp_path, *daemon_args("--config", str(folder.parent)))
    assert_one_sentence(*result, "sqsd.yaml", "EB reads only *.config")


def test_a_non_utf8_cron_yaml_is_one_sentence(tmp_path: Path) -> None:
    cron = tmp_path / "cron.yaml"
    cron.write_bytes(b"version: 1\ncron:\n - name: caf\xe9\n   url: /x\n   schedule: '* * * * *'\n")
    assert_one_sentence(*labapp(tmp_path, *daemon_args("--cron", str(cron))), str(cron), "offset 29")


def test_send_file_that_is_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    body = tmp_path / "body.bin"
    body.write_bytes(b"hello \xff\xfe world")
    result = labapp(tmp_path, "send", "--file", str(body), LAB_ENDPOINT_URL=NOWHERE)
    assert_one_sentence(*result, str(body), "offset 6", "0xFF")


def test_send_file_over_1_mib_is_refused_unread(tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_bytes(b"a" * (1_048_576 + 1))
    result = labapp(tmp_path, "send", "--file", str(body), LAB_ENDPOINT_URL=NOWHERE)
    assert_one_sentence(*result, "larger than 1,048,576 bytes")


def test_real_aws_without_a_region_says_set_aws_default_region(tmp_path: Path) -> None:
    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/q"
    result = labapp(tmp_path, "daemon", "--queue-url", queue, "--http-url", NOWHERE, LAB_ALLOW_AWS="1")
    assert_one_sentence(*result, "set AWS_DEFAULT_REGION")


def test_send_over_the_queues_maximum_message_size_names_both_numbers(
    emulator: Any, sqs: SqsClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = ensure_queues(sqs, f"small-{uuid.uuid4().hex[:8]}", 3)
    sqs.set_queue_attributes(QueueUrl=pair.url, Attributes={"MaximumMessageSize": "1024"})
    monkeypatch.setenv("LAB_ENDPOINT_URL", emulator.url)
    code = main(["send", "--queue", pair.name, "x" * 1025])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "1,025 bytes" in err and "MaximumMessageSize is 1,024" in err, err
