"""docker-compose.yml and docker/Dockerfile: pinned images, loopback-only ports, ordered healthy start,
no public secret, and JupyterLab running as the host user."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
MAKE_ENV = ROOT / "docker" / "make-env.sh"
SERVICES = {"localstack", "worker", "daemon", "jupyter"}


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def pinned(image: str) -> bool:
    """True for name:tag or name@digest with a tag other than latest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per Dockerfile instruction, continuation lines joined."""
    found, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        found.append((keyword.upper(), args.strip()))
        pending = ""
    return found


def dockerfile_env() -> dict[str, str]:
    pairs = [pair for keyword, args in dockerfile_instructions() if keyword == "ENV" for pair in args.split()]
    return dict(pair.split("=", 1) for pair in pairs)


def modes_set_on(path: str) -> list[int]:
    """Octal modes the Dockerfile's RUN lines give a path (mkdir -m, install -m, chmod), in order."""
    modes = []
    for keyword, args in dockerfile_instructions():
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|\|\||;", args):
            words = shlex.split(command)
            if path not in words[1:]:
                continue
            mode = ""
            if words[0] == "chmod":
                mode = next((word for word in words[1:] if not word.startswith("-")), "")
            elif words[0] in ("mkdir", "install"):
                for i, word in enumerate(words):
                    if word == "-m" and i + 1 < len(words):
                        mode = words[i + 1]
                    elif word.startswith("--mode="):
                        mode = word.split("=", 1)[1]
            if re.fullmatch(r"[0-7]{3,4}", mode):
                modes.append(int(mode, 8))
    return modes


def compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


def compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`docker compose config -q` with only these LAB_ variables (an empty --env-file hides a real .env)."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    clean = {key: value for key, value in os.environ.items() if not key.startswith("LAB_")}
    return subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid_and_safe(tmp_path: Path) -> None:
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
        result = compose_config(tmp_path, LAB_SHARED_SECRET="0" * 64)
        assert result.returncode == 0, result.stderr
        refused = compose_config(tmp_path)
        assert refused.returncode != 0 and "make-env.sh" in refused.stderr, refused.stderr


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


def test_shared_secret_has_no_public_default() -> None:
    found = services()
    secrets = {
        name: service["environment"]["LAB_SHARED_SECRET"]
        for name, service in found.items()
        if "LAB_SHARED_SECRET" in service.get("environment", {})
    }
    assert {"worker", "daemon"} <= set(secrets)
    for name, value in secrets.items():
        # ${VAR:?message} makes compose stop with the message when VAR is unset or empty.
        match = re.fullmatch(r"\$\{LAB_SHARED_SECRET:\?(?P<message>[^}]+)\}", value)
        assert match, f"{name}: LAB_SHARED_SECRET is {value!r}; use ${{LAB_SHARED_SECRET:?...}}, no default"
        assert "docker/make-env.sh" in match["message"], "the message must say how to make a secret"
    # Any default for it anywhere in the file (-, :-, =, :=) would be the same public secret everywhere.
    assert not re.search(r"\$\{LAB_SHARED_SECRET:?[-=]", COMPOSE.read_text())


def run_make_env(script: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("LAB_", "SUDO_"))}
    return subprocess.run(
        [str(script), *args], env={**clean, **env}, capture_output=True, text=True, timeout=30
    )


def read_env(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_make_env_writes_a_private_env_file(tmp_path: Path) -> None:
    assert MAKE_ENV.read_text().startswith("#!/bin/sh\n") and os.access(MAKE_ENV, os.X_OK)
    made = run_make_env(MAKE_ENV, str(tmp_path))
    assert made.returncode == 0, made.stderr
    env_file = tmp_path / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = read_env(env_file)
    assert re.fullmatch(r"[0-9a-f]{64}", values["LAB_SHARED_SECRET"])
    assert (values["LAB_UID"], values["LAB_GID"]) == (str(os.getuid()), str(os.getgid()))
    # It covers every variable compose insists on, and the ones the jupyter service's user reads.
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", COMPOSE.read_text()))
    assert required and required | {"LAB_UID", "LAB_GID"} <= set(values)

    # A second run keeps the secret a running lab may already use.
    again = run_make_env(MAKE_ENV, str(tmp_path))
    assert again.returncode != 0 and "--force" in again.stderr
    assert read_env(env_file) == values
    # So does a failed --force.
    bad = run_make_env(MAKE_ENV, "--force", str(tmp_path), LAB_UID="not-a-number")
    assert bad.returncode != 0 and read_env(env_file) == values

    # --force writes a fresh secret, private even over a file that was not.
    env_file.chmod(0o644)
    forced = run_make_env(MAKE_ENV, "--force", str(tmp_path), LAB_UID="1001", LAB_GID="1002")
    assert forced.returncode == 0, forced.stderr
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    fresh = read_env(env_file)
    assert fresh["LAB_SHARED_SECRET"] != values["LAB_SHARED_SECRET"]
    assert (fresh["LAB_UID"], fresh["LAB_GID"]) == ("1001", "1002")


def test_make_env_writes_next_to_the_compose_file_by_default(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    script = tmp_path / "docker" / "make-env.sh"
    shutil.copy2(MAKE_ENV, script)
    made = run_make_env(script)
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"[0-9a-f]{64}", read_env(tmp_path / ".env")["LAB_SHARED_SECRET"])
    assert not (tmp_path / "docker" / ".env").exists()


def test_jupyter_runs_as_the_host_user() -> None:
    jupyter = services()["jupyter"]
    user = str(jupyter.get("user", ""))
    assert re.fullmatch(r"\$\{LAB_UID(:-\d+)?\}:\$\{LAB_GID(:-\d+)?\}", user), (
        f"jupyter user is {user!r}: it must be the host's ${{LAB_UID}}:${{LAB_GID}} to save into ./notebooks"
    )
    assert any(str(volume).startswith("./notebooks:") for volume in jupyter["volumes"])

    # That uid has no account in the image, hence no home: both must point somewhere any uid can write.
    lab_home = dockerfile_env()["LAB_HOME"]
    for key in ("HOME", "JUPYTER_RUNTIME_DIR"):
        value = str(jupyter["environment"].get(key, ""))
        assert any(value == place or value.startswith(place + "/") for place in ("/tmp", lab_home)), (
            f"jupyter {key}={value!r} is not under /tmp or {lab_home}"
        )

    # LAB_HOME is a named volume, which starts as a copy of the image's folder, mode included...
    named = set(yaml.safe_load(COMPOSE.read_text())["volumes"])
    mounts = [str(volume).split(":") for volume in jupyter["volumes"]]
    assert any(target == lab_home and source in named for source, target, *_ in mounts)
    # ...so the Dockerfile must make that folder writable for every uid, sticky like /tmp.
    modes = modes_set_on(lab_home)
    assert modes, f"the Dockerfile never sets a mode on {lab_home}; only its owner (uid 1000) could write"
    assert modes[-1] & 0o1002 == 0o1002, (
        f"{lab_home} gets mode {oct(modes[-1])}, not world-writable and sticky"
    )
