"""docker-compose.yml and docker/Dockerfile: pinned images, loopback-only ports, ordered healthy start."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
SERVICES = {"localstack", "worker", "daemon", "jupyter"}


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def pinned(image: str) -> bool:
    """True for name:tag or name@digest with a tag other than latest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


def test_compose_file_is_valid_and_safe() -> None:
    found = services()
    assert set(found) == SERVICES

    for name, service in found.items():
        image = service.get("image", "")
        assert pinned(image), f"{name}: image {image!r} must carry a fixed tag"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} must be bound to 127.0.0.1"
        check = service.get("healthcheck", {})
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} needs a healthcheck"
        assert not check.get("disable")
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES
            assert rule == {"condition": "service_healthy"}, (
                f"{name} must wait for {dependency} to be healthy"
            )

    localstack = found["localstack"]
    assert localstack["image"] == "localstack/localstack:4.14.0"
    assert localstack["environment"]["SERVICES"] == "sqs"
    assert localstack["environment"]["LOCALSTACK_AUTH_TOKEN"] == "${LOCALSTACK_AUTH_TOKEN:-}"
    assert localstack["ports"] == ["127.0.0.1:4566:4566"]
    assert "/_localstack/health" in " ".join(localstack["healthcheck"]["test"])

    assert set(found["daemon"]["depends_on"]) == {"localstack", "worker"}
    assert set(found["jupyter"]["depends_on"]) == {"localstack", "worker", "daemon"}
    assert found["jupyter"]["ports"] == ["127.0.0.1:8888:8888"]

    # Docker's own check, where the compose plugin is installed; everything above always runs.
    if compose_available():
        result = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), "config", "-q"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr


def test_containers_are_wired_to_each_other() -> None:
    found = services()
    worker, daemon, jupyter = found["worker"], found["daemon"], found["jupyter"]
    assert worker["command"][:4] == ["python", "-m", "labapp", "worker"]
    assert worker["command"][worker["command"].index("--host") + 1] == "0.0.0.0"
    assert worker["environment"]["LAB_WORKER_ALLOW_REMOTE"] == "1"

    command = daemon["command"]
    assert command[:4] == ["python", "-m", "labapp", "daemon"]
    flags = dict(zip(command[4::2], command[5::2], strict=True))
    assert flags["--config"] == "deploy/.ebextensions"
    assert flags["--endpoint-url"] == "http://localstack:4566"
    assert flags["--http-url"] == "http://worker:8000"
    assert "--queue-name" in flags or "--queue-url" in flags

    for service in (worker, daemon, jupyter):
        assert service["environment"]["LAB_ENDPOINT_URL"] == "http://localstack:4566"
    # Both ends of the POST must share the secret, and it must come from the user's environment.
    assert worker["environment"]["LAB_SHARED_SECRET"] == daemon["environment"]["LAB_SHARED_SECRET"]
    assert worker["environment"]["LAB_SHARED_SECRET"].startswith("${LAB_SHARED_SECRET")


def test_jupyter_keeps_token_auth_on() -> None:
    jupyter = services()["jupyter"]
    text = " ".join(jupyter["command"])
    assert not re.search(r"token=(''|\"\"|\s|$)", text) and "password=" not in text.lower()
    assert "--ip=0.0.0.0" in text  # inside the container only; the host port is loopback
    # An empty JUPYTER_TOKEN makes Jupyter generate a random token (jupyter_server checks truthiness).
    assert jupyter["environment"]["JUPYTER_TOKEN"] == "${JUPYTER_TOKEN:-}"


def test_dockerfile_pins_its_base_and_runs_as_a_user() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    bases = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert bases == ["python:3.12-slim"] and all(pinned(b) for b in bases)
    assert any(line.startswith("RUN pip install -r requirements.txt") for line in lines)
    assert any(line.startswith("USER ") and line.split()[1] != "root" for line in lines)
