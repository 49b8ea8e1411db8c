"""Safety: the lab never talks to real AWS by accident, never shows a key, and keeps its doors shut.

No test here sends anything to a non-loopback address: constructing a client is enough to see
which endpoint and credentials it would use, and a tripwire fails any test that tries to connect
elsewhere.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labapp.chaos.harness import ChaosLab
from labapp.chaos.profile import CHAOS_PROFILE
from labapp.chaos.reconcile import plan_messages
from labapp.errors import EndpointError
from labapp.runtime.emulator import Emulator
from labapp.runtime.servers import HttpServer
from labapp.signature import SIGNATURE_HEADER
from labapp.sqs.client import SqsClient, sqs_client
from labapp.sqs.queues import QueuePair, ensure_queues, send_messages
from labapp.sqsd.daemon import Daemon
from labapp.sqsd.options import LAB_PROFILE
from labapp.sqsd.post import build_post
from labapp.worker import state as worker_state
from labapp.worker.app import create_app

REPO = Path(__file__).resolve().parents[1]
FAKE_KEY_ID = "AKIA" + "Q7XW3EXAMPLEZ5RT"  # AKIA + 16 uppercase letters and digits, like a real one
FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLE4q"  # 40 characters, like a real secret key
KEY_ID_PATTERN = re.compile(r"AKIA[0-9A-Z]{16}")
SECRET_PATTERN = re.compile(r"aws_secret_access_key\W{0,5}[A-Za-z0-9/+=]{40}", re.IGNORECASE)


def leaked_keys(text: str) -> list[str]:
    """Return every access key id or secret key found in text."""
    found = KEY_ID_PATTERN.findall(text) + SECRET_PATTERN.findall(text)
    if FAKE_SECRET in text:
        found.append(FAKE_SECRET)
    return found


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that opens a connection to something other than this machine."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
                raise AssertionError(f"a safety test tried to connect to {address}")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return int(real_connect_ex(sock, address))

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def real_looking_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A learner's shell: real-looking keys in the environment and a `prod` profile on disk."""
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        f"[prod]\naws_access_key_id = {FAKE_KEY_ID}\naws_secret_access_key = {FAKE_SECRET}\n"
    )
    (aws / "config").write_text("[profile prod]\nregion = eu-west-1\n")
    env = {
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_PROFILE": "prod",
        "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
        "AWS_CONFIG_FILE": str(aws / "config"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("LAB_ALLOW_AWS", "LAB_LOCAL_HOSTS", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
    return env


# -- the endpoint guard ------------------------------------------------------------------------------
LOCAL_ENDPOINTS = [
    "http://127.0.0.1:4566",
    "http://localhost:9324",
    "HTTP://LOCALHOST:4566",
    "http://127.5.5.5:4566",
    "http://[::1]:4566",
]
REMOTE_ENDPOINTS = [
    None,  # boto's default: real AWS
    "https://sqs.us-east-1.amazonaws.com",
    "http://10.0.0.5:4566",
    "http://0.0.0.0:4566",
    "http://169.254.169.254",
    "http://localhost.evil.example:4566",
    "http://127.0.0.1.nip.io:4566",
    "http://localhost:4566@evil.example/",
]


@pytest.mark.parametrize("endpoint", LOCAL_ENDPOINTS)
def test_local_endpoints_are_allowed(endpoint: str, real_looking_keys: dict[str, str]) -> None:
    client = sqs_client(endpoint)
    assert client.meta.endpoint_url.lower() == endpoint.lower()


@pytest.mark.parametrize("endpoint", REMOTE_ENDPOINTS)
def test_other_endpoints_are_refused_without_lab_allow_aws(
    endpoint: str | None, real_looking_keys: dict[str, str]
) -> None:
    with pytest.raises(EndpointError, match="LAB_ALLOW_AWS=1"):
        sqs_client(endpoint)


@pytest.mark.parametrize("endpoint", REMOTE_ENDPOINTS)
def test_lab_allow_aws_lets_a_client_be_built_with_the_learners_own_keys(
    endpoint: str | None, real_looking_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_ALLOW_AWS", "1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = sqs_client(endpoint)  # built, never called
    assert client._request_signer._credentials.access_key == FAKE_KEY_ID
    assert sqs_client(endpoint, allow_aws=True) is not None
    with pytest.raises(EndpointError):
        sqs_client(endpoint, allow_aws=False)  # an explicit False wins over the variable


@pytest.mark.parametrize("value", ["0", "true", "yes", ""])
def test_only_lab_allow_aws_1_opens_the_guard(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_ALLOW_AWS", value)
    with pytest.raises(EndpointError):
        sqs_client("https://sqs.us-east-1.amazonaws.com")


# -- credentials -----------------------------------------------------------------------------------
def test_local_clients_use_dummy_keys_whatever_the_environment(real_looking_keys: dict[str, str]) -> None:
    credentials = sqs_client("http://127.0.0.1:4566")._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == ("test", "test")


def test_a_profile_this_machine_lacks_does_not_break_local_clients(
    real_looking_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # AWS_PROFILE=prod copied from a work laptop, with no such profile here: the local lab needs
    # no profile, so it must not fail with botocore's ProfileNotFound.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(Path(real_looking_keys["AWS_CONFIG_FILE"]).parent / "missing"))
    monkeypatch.setenv(
        "AWS_SHARED_CREDENTIALS_FILE", str(Path(real_looking_keys["AWS_CONFIG_FILE"]).parent / "none")
    )
    credentials = sqs_client("http://127.0.0.1:4566")._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == ("test", "test")


def test_no_key_reaches_the_logs(
    real_looking_keys: dict[str, str],
    emulator: Emulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level("DEBUG")  # botocore's debug log prints request headers and credential sources
    sqs = sqs_client(emulator.url)
    queues = ensure_queues(sqs, f"safe-{uuid.uuid4().hex[:8]}", 3)
    send_messages(sqs, queues.url, [plan_messages(1)[0].body])
    app = create_app({"LEDGER_PATH": str(tmp_path / "ledger.sqlite")})
    with HttpServer(app) as worker:
        daemon = Daemon(sqs, LAB_PROFILE, queue_url=queues.url, http_url=worker.url, wait_time_seconds=1)
        try:
            while daemon.counts["deleted"] == 0:
                daemon.poll_once()
                daemon.wait_idle(10)
        finally:
            daemon.close()
    with pytest.raises(EndpointError):
        sqs_client("https://sqs.us-east-1.amazonaws.com")
    monkeypatch.setenv("LAB_ALLOW_AWS", "1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sqs_client("https://sqs.us-east-1.amazonaws.com")  # logs a warning about the learner's own keys
    assert "own AWS credentials" in caplog.text
    assert len(caplog.records) > 20
    assert leaked_keys(caplog.text) == []


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labapp", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_no_key_reaches_cli_output(
    real_looking_keys: dict[str, str], emulator: Emulator, sqs: SqsClient, queues: QueuePair, tmp_path: Path
) -> None:
    env = {**os.environ, "LAB_HOME": str(tmp_path / "home"), "LAB_ENDPOINT_URL": emulator.url}
    body = plan_messages(1)[0].body
    runs = [
        run_cli("--help", env=env),
        run_cli("status", env=env),
        run_cli("send", body, "--queue", queues.name, "--attr", "source=safety", env=env),
        run_cli("peek", "--queue", queues.name, env=env),
        run_cli("dlq", "list", "--queue", queues.name, env=env),
        run_cli("send", "{}", "--queue", "no-such-queue", env=env),  # an error path
    ]
    output = "\n".join(f"$ labapp {shlex.join(r.args[3:])}\n{r.stdout}{r.stderr}" for r in runs)
    assert runs[2].returncode == 0, output
    assert "source = safety" in runs[3].stdout, output
    assert runs[5].returncode != 0
    assert leaked_keys(output) == [], output


def test_no_key_reaches_the_worker_or_daemon_logs(
    real_looking_keys: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    # The child processes inherit the keys, as they would from a learner's shell.
    with ChaosLab(emulator.url, tmp_path, CHAOS_PROFILE.replace(MaxRetries=2)) as lab:
        plan = plan_messages(20, poison_every=5)
        lab.feed(plan)
        report = lab.finish(plan, timeout=60)
        logs = lab.worker.output(since_start=False) + lab.daemon.output(since_start=False)
    assert report.ok, report.summary()
    assert "sqsd: polling" in logs and "rejected" in logs
    assert leaked_keys(logs) == []


# -- notebooks -------------------------------------------------------------------------------------
def notebooks_with_keys(root: Path) -> dict[str, list[str]]:
    """Scan every .ipynb under root (sources, outputs, metadata) and return those holding a key."""
    found = {}
    for path in sorted(root.rglob("*.ipynb")):
        if ".venv" in path.parts or "node_modules" in path.parts:
            continue
        keys = leaked_keys(path.read_text(encoding="utf-8", errors="replace"))
        if keys:
            found[str(path.relative_to(root))] = keys
    return found


def test_the_scanner_finds_a_key_planted_in_a_notebook_output(tmp_path: Path) -> None:
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "source": ["import os\n", "print(os.environ)"],
                "outputs": [
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": [f"{{'AWS_ACCESS_KEY_ID': '{FAKE_KEY_ID}'"],
                    }
                ],
            },
            {
                "cell_type": "code",
                "source": ["!cat ~/.aws/credentials"],
                "outputs": [
                    {"output_type": "stream", "text": [f"aws_secret_access_key = {FAKE_SECRET[::-1]}\n"]}
                ],
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "leaky.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "clean.ipynb").write_text(json.dumps({**notebook, "cells": []}))
    found = notebooks_with_keys(tmp_path)
    assert list(found) == ["sub/leaky.ipynb"]
    assert len(found["sub/leaky.ipynb"]) == 2


def test_no_notebook_in_the_repository_holds_a_key() -> None:
    notebooks = [p for p in REPO.rglob("*.ipynb") if ".venv" not in p.parts]
    for folder in ("notebooks", "solutions"):
        if (REPO / folder).is_dir():
            assert list((REPO / folder).glob("*.ipynb")), f"{folder}/ exists but holds no notebook to scan"
    print(f"scanned {len(notebooks)} notebooks")
    assert notebooks_with_keys(REPO) == {}


# -- the worker's door -------------------------------------------------------------------------------
def order() -> str:
    return plan_messages(1)[0].body


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.1.20", "172.17.0.1", "2001:db8::1"])
def test_the_worker_refuses_other_machines_by_default(tmp_path: Path, address: str) -> None:
    app = create_app({"LEDGER_PATH": str(tmp_path / "l.sqlite")})
    client = app.test_client()
    for method, path in (
        ("post", "/"),
        ("get", "/_lab/health"),
        ("put", "/_lab/failures"),
        ("post", "/_lab/reset"),
    ):
        reply = getattr(client, method)(path, data=order(), environ_base={"REMOTE_ADDR": address})
        assert reply.status_code == 403, (method, path)
    assert worker_state.of(app).ledger.summary()["applied"] == 0


@pytest.mark.parametrize("address", ["127.0.0.1", "127.9.9.9", "::1"])
def test_the_worker_answers_this_machine(tmp_path: Path, address: str) -> None:
    app = create_app({"LEDGER_PATH": str(tmp_path / "l.sqlite")})
    reply = app.test_client().post("/", data=order(), environ_base={"REMOTE_ADDR": address})
    assert reply.status_code == 200


def test_allow_remote_opens_the_worker_to_other_machines(tmp_path: Path) -> None:
    app = create_app({"LEDGER_PATH": str(tmp_path / "l.sqlite"), "ALLOW_REMOTE": True})
    reply = app.test_client().post("/", data=order(), environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert reply.status_code == 200


# -- the optional shared secret ------------------------------------------------------------------------
def test_the_shared_secret_is_off_by_default_and_documented(tmp_path: Path) -> None:
    app = create_app({"LEDGER_PATH": str(tmp_path / "l.sqlite")})
    assert app.config["SHARED_SECRET"] is None
    assert app.test_client().post("/", data=order()).status_code == 200  # no signature needed
    message = {"MessageId": "m-1", "Body": "{}", "Attributes": {}}
    assert SIGNATURE_HEADER not in build_post(message, "q", LAB_PROFILE).headers
    assert SIGNATURE_HEADER in build_post(message, "q", LAB_PROFILE, secret="s").headers
    assert "LAB_SHARED_SECRET" in (REPO / "README.md").read_text()
    worker_state.of(app).ledger.close()


@pytest.fixture
def signed_worker(tmp_path: Path) -> Iterator[HttpServer]:
    app = create_app({"LEDGER_PATH": str(tmp_path / "ledger.sqlite"), "SHARED_SECRET": "the-right-one"})
    with HttpServer(app) as server:
        yield server
    worker_state.of(app).ledger.close()


@pytest.mark.parametrize(
    ("secret", "accepted"), [("the-right-one", True), ("a-wrong-one", False), (None, False)]
)
def test_the_shared_secret_end_to_end(
    sqs: SqsClient,
    signed_worker: HttpServer,
    run_daemon: Any,
    wait_for: Any,
    secret: str | None,
    accepted: bool,
) -> None:
    options = LAB_PROFILE.replace(ErrorVisibilityTimeout=0)
    queues = ensure_queues(sqs, f"sig-{uuid.uuid4().hex[:8]}", options.MaxRetries, options.VisibilityTimeout)
    message_id = send_messages(sqs, queues.url, [order()])[0]
    running = run_daemon(queues.url, signed_worker.url, options, secret=secret)
    if accepted:
        wait_for(lambda: "deleted" in running.kinds())
        return
    # Refused with 401, retried (the receive count climbs), and after MaxRetries off to the DLQ.
    wait_for(lambda: running.kinds().count("retry_scheduled") >= options.MaxRetries, timeout=20)
    responses = [e for e in running.events if e.kind == "response" and e.message_id == message_id]
    assert {e.status for e in responses} == {401}
    assert "X-Lab-Signature" in responses[0].detail
    counts = [e.receive_count for e in running.events if e.kind == "received"]
    assert counts[: options.MaxRetries] == list(range(1, options.MaxRetries + 1))
    dlq = wait_for(lambda: sqs.receive_message(QueueUrl=queues.dlq_url, WaitTimeSeconds=1).get("Messages"))
    assert dlq[0]["MessageId"] == message_id
    assert worker_state.of(signed_worker.app).ledger.summary()["applied"] == 0


# -- JupyterLab keeps its token ----------------------------------------------------------------------
TOKEN_OFF = re.compile(
    r"--(ServerApp|NotebookApp|IdentityProvider)\.(token|password)\s*=\s*(''|\"\"|\s|$)"
    r"|--(ServerApp|NotebookApp)\.disable_check_xsrf\s*=\s*True"
    r"|--(ServerApp|NotebookApp)\.(ip|allow_origin)\s*=\s*['\"]?(0\.0\.0\.0|\*)",
    re.IGNORECASE,
)


def make_recipe(target: str) -> str:
    """Return the commands of one Makefile target."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{target}\s*:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return "\n".join(recipe)


def run_make_test_localstack(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `make test-localstack` where no Python >= 3.13 can be found (no pyenv, a bare PATH)."""
    venv = Path(sys.prefix)
    stamps = [f"-o{venv / name}" for name in (".runtime-installed", ".dev-installed")]
    bare = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), **env}
    argv = ["make", "-s", "-C", str(REPO), f"VENV={venv}", *stamps, "test-localstack"]
    return subprocess.run(argv, env=bare, capture_output=True, text=True, timeout=120, check=False)


def test_make_test_localstack_without_python_313_says_so_and_succeeds(tmp_path: Path) -> None:
    # It once printed "not tested" and then ran the next recipe line anyway, which exited 2.
    done = run_make_test_localstack(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "was not tested" in done.stdout


def test_make_test_localstack_in_ci_without_python_313_fails(tmp_path: Path) -> None:
    done = run_make_test_localstack(tmp_path, CI="1")
    assert done.returncode != 0
    assert "CI must prove the LocalStack backend" in done.stderr


def test_make_lab_keeps_jupyter_token_auth_on() -> None:
    from labapp.cli.jupyter import jupyter_argv

    assert "labapp lab" in make_recipe("lab")
    argv = " ".join(jupyter_argv(8888, "a-random-token", Path("/tmp"), as_root=False))
    assert "jupyter lab" in argv
    assert "--ServerApp.ip=127.0.0.1" in argv
    assert not TOKEN_OFF.search(argv), argv
    assert "--IdentityProvider.token=a-random-token" in argv


@pytest.mark.parametrize(
    "flags",
    [
        "--ServerApp.token=''",
        "--NotebookApp.token=",
        '--IdentityProvider.token=""',
        "--ServerApp.password=''",
        "--ServerApp.disable_check_xsrf=True",
        "--ServerApp.ip=0.0.0.0",
    ],
)
def test_the_token_check_catches_each_way_of_turning_auth_off(flags: str) -> None:
    assert TOKEN_OFF.search(f"jupyter lab {flags} --notebook-dir=notebooks")


def test_an_empty_jupyter_token_in_compose_still_means_a_random_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docker-compose.yml passes JUPYTER_TOKEN=${JUPYTER_TOKEN:-}; empty must not mean "no token".
    compose = (REPO / "docker-compose.yml").read_text()
    assert "JUPYTER_TOKEN: ${JUPYTER_TOKEN:-}" in compose
    assert "token=''" not in compose and '--ServerApp.token=""' not in compose
    from jupyter_server.auth.identity import IdentityProvider

    monkeypatch.setenv("JUPYTER_TOKEN", "")
    provider = IdentityProvider()
    assert provider.token and provider.token_generated
