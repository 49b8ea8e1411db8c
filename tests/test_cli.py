"""The `labapp` command: the happy path on private ports and a private LAB_HOME, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from labapp.cli import main
from labapp.runtime.background import read_state
from labapp.runtime.ports import free_port
from labapp.sqs.client import sqs_client
from labapp.sqs.queues import ensure_queues


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run one command in this process and return (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labapp", *argv], capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(code: int, out: str, err: str, needle: str) -> None:
    assert code != 0
    assert needle in err, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("labapp: ")
    assert "Traceback" not in out + err


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`labapp up` on a free endpoint port and a free worker port; `labapp down` always follows."""
    home = tmp_path_factory.mktemp("lab-home")
    endpoint = f"http://127.0.0.1:{free_port()}"
    worker_port = free_port()
    patch = pytest.MonkeyPatch()
    patch.setenv("LAB_HOME", str(home))
    patch.setenv("LAB_ENDPOINT_URL", endpoint)
    for name in ("LAB_ALLOW_AWS", "LAB_BACKEND", "LAB_LOCAL_HOSTS", "LAB_SHARED_SECRET"):
        patch.delenv(name, raising=False)
    try:
        code = main(["up", "--worker-port", str(worker_port)])
        assert code == 0, (home / "stack.log").read_text(errors="replace")
        state = json.loads((home / "stack.json").read_text())
        yield {"home": home, "endpoint": endpoint, "worker_port": worker_port, "state": state}
    finally:
        main(["down"])
        left = read_state()
        if left is not None:  # `down` failed: never leave the stack this test started behind
            os.kill(int(left["pid"]), signal.SIGKILL)
        patch.undo()


def ledger(lab: dict[str, Any]) -> dict[str, Any]:
    return dict(requests.get(f"{lab['state']['worker_url']}/_lab/ledger", timeout=5).json())


# -- the happy path ------------------------------------------------------------------------------------
def test_up_uses_the_private_ports_and_home(lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    state = lab["state"]
    assert state["endpoint_url"] == lab["endpoint"]
    assert state["worker_url"] == f"http://127.0.0.1:{lab['worker_port']}"
    assert state["backend"] == "moto"
    assert Path(state["ledger"]).is_relative_to(lab["home"])
    code, out, _ = run(capsys, "up", "--worker-port", str(lab["worker_port"]))
    assert code == 0
    assert "already running" in out


def test_status(lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status")
    assert (code, err) == (0, "")
    assert f"moto at {lab['endpoint']}" in out
    assert f"up at {lab['state']['worker_url']}" in out
    assert f"polling {lab['state']['queue']}" in out
    for column in ("visible", "in flight", "delayed", "DLQ", "polled by"):
        assert column in out
    assert re.search(rf"^{lab['state']['queue']} +0 +0 +0 +0  the stack's daemon", out, re.M), out


def test_status_shows_every_lab_s_queues(lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    # A notebook's lab has queues of its own; status used to show only the stack's idle zeros.
    sqs = sqs_client(lab["endpoint"])
    name = f"lab-nb{uuid.uuid4().hex[:4]}"
    pair = ensure_queues(sqs, name, 3)
    sqs.send_message(QueueUrl=pair.url, MessageBody="waiting", DelaySeconds=900)
    sqs.send_message(QueueUrl=pair.url, MessageBody="ready")
    sqs.send_message(QueueUrl=pair.dlq_url, MessageBody="dead")
    sqs.receive_message(QueueUrl=pair.url, VisibilityTimeout=300)
    sqs.send_message(QueueUrl=pair.url, MessageBody="ready too")
    code, out, _ = run(capsys, "status")
    assert code == 0
    notebook = name.removeprefix("lab-")
    assert re.search(rf"^{name} +1 +1 +1 +1  notebook {notebook}'s lab$", out, re.M), out
    assert f"{name}-dlq " not in out  # a DLQ is a column of its queue's row, not a row


def test_send_is_processed(
    lab: dict[str, Any], capsys: pytest.CaptureFixture[str], wait_for: Callable[..., Any]
) -> None:
    body = json.dumps({"type": "order", "order_id": "cli-1", "amount": 3})
    code, out, err = run(capsys, "send", body, "--attr", "source=cli")
    assert (code, err) == (0, "")
    uuid.UUID(out.strip())  # prints the message id
    wait_for(lambda: ledger(lab)["applications"].get("order:cli-1") == 1, timeout=15)


def test_peek_and_dlq_commands_on_another_queue(
    lab: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # A queue no daemon polls, so what the commands show stays put.
    sqs = sqs_client(lab["endpoint"])
    pair = ensure_queues(sqs, f"cli-{uuid.uuid4().hex[:8]}", 3)
    code, out, _ = run(capsys, "send", "hello", "--queue", pair.name, "--count", "3", "--attr", "k=v")
    assert code == 0
    assert f"Sent 3 messages to {pair.name}" in out

    code, out, _ = run(capsys, "peek", "--queue", pair.name)
    assert code == 0
    assert out.count("body: hello") == 3
    assert "attr k = v" in out
    code, out, _ = run(capsys, "peek", "--queue", pair.name, "-n", "10")
    assert out.count("body: hello") == 3  # peeking consumed nothing

    code, out, _ = run(capsys, "dlq", "list", "--queue", pair.name)
    assert (code, out.strip()) == (0, "(no messages)")
    dead_id = sqs.send_message(QueueUrl=pair.dlq_url, MessageBody='{"dead": true}')["MessageId"]
    code, out, _ = run(capsys, "peek", "--dlq", "--queue", pair.name)
    assert dead_id in out
    code, out, _ = run(capsys, "dlq", "list", "--queue", pair.name)
    assert dead_id in out
    code, out, _ = run(capsys, "dlq", "show", dead_id, "--queue", pair.name)
    assert code == 0
    assert json.loads(out)["Body"] == '{"dead": true}'
    code, out, err = run(capsys, "dlq", "show", "no-such-id", "--queue", pair.name)
    assert_one_line_error(code, out, err, "No message no-such-id")

    code, out, _ = run(capsys, "dlq", "redrive", "--queue", pair.name)
    assert code == 0
    assert f"Redrove 1 messages from {pair.dlq_name} to {pair.name} using receive-send-delete" in out
    sqs.send_message(QueueUrl=pair.dlq_url, MessageBody="again")
    code, out, _ = run(capsys, "dlq", "purge", "--queue", pair.name)
    assert (code, out.strip()) == (0, f"Purged {pair.dlq_name}.")
    code, out, _ = run(capsys, "peek", "--queue", pair.name)
    assert out.count("body: hello") == 3
    assert '{"dead": true}' in out


def test_peek_is_not_a_receive(lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    # Each peek used to be a receive: on a queue with maxReceiveCount 3 the message was in the DLQ
    # before the fourth one.
    sqs = sqs_client(lab["endpoint"])
    pair = ensure_queues(sqs, f"cli-{uuid.uuid4().hex[:8]}", 3)
    run(capsys, "send", "still here", "--queue", pair.name)
    for _ in range(5):
        code, out, _ = run(capsys, "peek", "--queue", pair.name)
        assert code == 0
        assert "visible  receive_count=0" in out and "body: still here" in out
    code, out, _ = run(capsys, "peek", "--dlq", "--queue", pair.name)
    assert (code, out.strip()) == (0, "(no messages)")


def test_peek_at_a_queue_without_a_dlq(lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    sqs = sqs_client(lab["endpoint"])
    name = f"plain-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="no redrive policy")
    code, out, err = run(capsys, "peek", "--queue", name)  # used to say NonExistentQueue
    assert (code, err) == (0, "")
    assert "body: no redrive policy" in out
    for argv in (["peek", "--dlq", "--queue", name], ["dlq", "list", "--queue", name]):
        code, out, err = run(capsys, *argv)
        assert_one_line_error(
            code, out, err, f"Queue {name} has no dead-letter queue: it has no RedrivePolicy."
        )


def test_peek_at_a_missing_queue_names_the_queues_there(
    lab: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "peek", "--queue", "nope")
    assert_one_line_error(code, out, err, f"No queue named 'nope' on {lab['endpoint']}. Queues there: ")
    assert lab["state"]["queue"] in err
    assert "labapp up" not in err  # the lab is up


@pytest.fixture
def bare_moto(no_lab: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's own server, which has no look route: peeking there is a receive, as on real SQS."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    monkeypatch.setenv("LAB_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_peek_that_would_receive_asks_first(bare_moto: str, capsys: pytest.CaptureFixture[str]) -> None:
    sqs = sqs_client(bare_moto)
    pair = ensure_queues(sqs, f"aws-like-{uuid.uuid4().hex[:8]}", 3)
    sqs.send_message(QueueUrl=pair.url, MessageBody="counted")
    code, out, err = run(capsys, "peek", "--queue", pair.name)  # no terminal to ask on
    assert_one_line_error(code, out, err, "count toward the queue's maxReceiveCount")
    assert f"(maxReceiveCount is 3 on {pair.name}); pass --yes to peek anyway." in err
    attrs = sqs.get_queue_attributes(QueueUrl=pair.url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1"
    code, out, _ = run(capsys, "peek", "--queue", pair.name, "--yes")
    assert code == 0
    assert "receive_count=1" in out and "body: counted" in out


def test_peek_that_would_receive_asks_on_a_terminal(bare_moto: str) -> None:
    import pexpect

    sqs = sqs_client(bare_moto)
    pair = ensure_queues(sqs, f"aws-like-{uuid.uuid4().hex[:8]}", 3)
    sqs.send_message(QueueUrl=pair.url, MessageBody="counted")
    env = {**os.environ, "LAB_ENDPOINT_URL": bare_moto}
    for answer, expected in (("n", "Not peeking; nothing was received."), ("y", "receive_count=1")):
        child = pexpect.spawn(
            sys.executable,
            ["-m", "labapp", "peek", "--queue", pair.name],
            env=env,
            timeout=30,
            encoding="utf-8",
        )
        child.expect_exact("Peek anyway? [y/N] ")
        assert "each look would count toward the queue's maxReceiveCount" in str(child.before)
        child.sendline(answer)
        child.expect_exact(expected)  # "n" received nothing, so the "y" look is the first receive
        child.expect(pexpect.EOF)
        child.close()


def test_commands_as_processes(lab: dict[str, Any]) -> None:
    done = run_process("status")
    assert done.returncode == 0, done.stderr
    assert lab["endpoint"] in done.stdout
    done = run_process("send")
    assert done.returncode == 2
    assert done.stderr.strip() == "labapp: send needs a message body or --file FILE."


def test_bad_attribute_is_one_line(lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "send", "x", "--attr", "novalue")
    assert_one_line_error(code, out, err, "--attr takes name=value")


def test_reset(lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "reset")
    assert code == 0
    assert "Reset:" in out
    assert ledger(lab)["summary"] == {"applied": 0, "deliveries": 0, "duplicates": 0}


FAKE_DOCKER = """#!/bin/sh
# A stand-in for the docker CLI: FAKE_DOCKER_ENGINE / FAKE_DOCKER_COMPOSE, when set, are what
# `docker info` and `docker compose version` print; unset, each fails as a real one does.
case "$1" in
    info) [ -n "$FAKE_DOCKER_ENGINE" ] && { echo "$FAKE_DOCKER_ENGINE"; exit 0; }
          echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1 ;;
    compose) [ -n "$FAKE_DOCKER_COMPOSE" ] && { echo "$FAKE_DOCKER_COMPOSE"; exit 0; }
          echo "docker: unknown command: docker compose" >&2; exit 1 ;;
esac
exit 1
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `docker` first on PATH whose engine and compose plugin answer only when told to."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("FAKE_DOCKER_ENGINE", raising=False)
    monkeypatch.delenv("FAKE_DOCKER_COMPOSE", raising=False)
    return bin_dir


def test_doctor_reports_what_docker_lacks_and_still_passes(
    lab: dict[str, Any], fake_docker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It used to say "ok Docker (optional): found" with no engine and no compose plugin.
    code, out, _ = run(capsys, "doctor")
    assert code == 0, out  # optional checks never make the doctor fail
    assert "--  Docker engine (optional): installed, but no engine answers: Cannot connect" in out
    assert "--  Docker compose plugin (optional): missing" in out
    assert "Docker (optional): found" not in out
    assert "FIX" not in out


def test_docker_checks_engine_plugin_and_env(
    fake_docker: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labapp.cli.doctor import docker_checks

    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "28.2.2")
    monkeypatch.setenv("FAKE_DOCKER_COMPOSE", "2.39.1")
    engine, compose, env = docker_checks(tmp_path)
    assert (engine.ok, engine.detail) == (True, "answers (server 28.2.2)")
    assert (compose.ok, compose.detail) == (True, "version 2.39.1")
    assert not env.ok and "make-env.sh" in env.fix and env.optional
    (tmp_path / ".env").write_text("# written by make-env.sh\nLAB_SHARED_SECRET=\nLAB_UID=1000\n")
    assert not docker_checks(tmp_path)[2].ok  # an empty secret is no secret
    (tmp_path / ".env").write_text("LAB_SHARED_SECRET=0123abcd\n")
    assert all(check.ok for check in docker_checks(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    [absent] = docker_checks(tmp_path)
    assert (absent.ok, absent.optional) == (False, True) and "not installed" in absent.detail


def test_down_stops_everything(lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    # Runs last in this module; the fixture's `down` then finds nothing to stop.
    code, out, _ = run(capsys, "down")
    assert (code, out.strip()) == (0, "Lab stopped.")
    assert not (lab["home"] / "stack.json").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{lab['state']['worker_url']}/_lab/health", timeout=2)
    code, out, err = run(capsys, "status")
    assert code == 1
    assert "not running" in out + err
    code, out, _ = run(capsys, "down")
    assert (code, out.strip()) == (0, "The lab was not running.")


# -- errors: one sentence on stderr, never a traceback ----------------------------------------------------
@pytest.fixture
def no_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.setenv("LAB_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    for name in ("LAB_ALLOW_AWS", "LAB_LOCAL_HOSTS", "LAB_SHARED_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


QUEUE = ["--queue-url", "http://127.0.0.1:9/000000000000/q"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["daemon", *QUEUE, "--option", "HttpConnections"], "--option takes Name=Value"),
        (["daemon", *QUEUE, "--option", "HttpConnections=500"], "HttpConnections must be from 1 to 100"),
        (["daemon", *QUEUE, "--option", "MaxConcurrentAPIConnections=5"], "EB calls it HttpConnections"),
        (["daemon", *QUEUE, "--option", "MimetypeJSON=true"], "EB calls it MimeType"),
        (["daemon", *QUEUE, "--config", "/no/such/.ebextensions"], "does not exist"),
        (["daemon", *QUEUE, "--endpoint-url", "http://203.0.113.7:4566"], "Refusing to talk to"),
        (["send"], "send needs a message body"),
        (["send", "x", "--count", "0"], "--count must be 1 or more"),
        (["send", "--file", "/no/such/body.json"], "No such file or directory"),
    ],
)
def test_errors_are_one_line(
    no_lab: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, out, err, needle)


def test_bad_config_file_names_the_option(
    no_lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sqsd.config"
    config.write_text("option_settings:\n  aws:elasticbeanstalk:sqsd:sqsd:\n    HttpConnections: 5\n")
    code, out, err = run(capsys, "daemon", *QUEUE, "--config", str(config))
    assert_one_line_error(code, out, err, "the namespace is aws:elasticbeanstalk:sqsd")


def test_non_loopback_endpoint_is_refused_before_any_traffic(
    no_lab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAB_ENDPOINT_URL", "http://10.0.0.5:4566")
    started = time.monotonic()
    for argv in (["peek"], ["send", "x"], ["dlq", "list"]):
        code, out, err = run(capsys, *argv)
        assert_one_line_error(code, out, err, "Refusing to talk to http://10.0.0.5:4566")
        assert "LAB_ALLOW_AWS=1" in err
    assert time.monotonic() - started < 2  # refused at once, not after a connect timeout


def test_endpoint_not_answering(no_lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "peek")
    assert_one_line_error(code, out, err, "does not answer")


def test_status_when_not_running(no_lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status")
    assert code == 1
    assert "The lab is not running; start it with `labapp up`." in out + err
    assert "Traceback" not in out + err
    code, out, _ = run(capsys, "down")
    assert (code, out.strip()) == (0, "The lab was not running.")


def test_errors_as_a_process(no_lab: Path) -> None:
    done = run_process("daemon", *QUEUE, "--option", "MaxConcurrentAPIConnections=5")
    assert done.returncode == 2
    assert_one_line_error(done.returncode, done.stdout, done.stderr, "EB calls it HttpConnections")
    done = run_process("status")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr


def test_the_daemon_logs_every_outcome_to_the_lab_homes_sqsd_log(tmp_path: Path) -> None:
    # `labapp daemon` against an app that is not there: one warning naming the URL, and the
    # refusals in aws-sqsd/default.log as the real sqsd writes them.
    from labapp.runtime.emulator import Emulator
    from labapp.runtime.process import ChildProcess
    from labapp.runtime.wait import wait_until
    from labapp.sqs import ensure_queues, send_messages, sqs_client

    home = tmp_path / "home"
    with Emulator(port=0) as emulator:
        sqs = sqs_client(emulator.url)
        queues = ensure_queues(sqs, "log-check", 3)
        send_messages(sqs, queues.url, ["one"])
        nobody = f"http://127.0.0.1:{free_port()}"
        argv = ["daemon", "--endpoint-url", emulator.url, "--queue-url", queues.url, "--http-url", nobody]
        argv += ["--wait-time-seconds", "1", "--option", "ErrorVisibilityTimeout=0"]
        env = {**os.environ, "LAB_HOME": str(home)}
        with ChildProcess.labapp("daemon", argv, tmp_path / "daemon.out", env=env) as daemon:
            log_file = home / "logs" / "aws-sqsd" / "default.log"
            wait_until(
                lambda: log_file.exists() and "socket-err" in log_file.read_text(), 30, "a logged refusal"
            )
            assert nobody in daemon.output()
        text = log_file.read_text()
    assert "message: sent to %[" in text and "ECONNREFUSED" in text
