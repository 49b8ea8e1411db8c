"""Every `LAB_*` environment variable the lab reads, and where it keeps its files.

One module reads the environment, so a reader finds every knob here and nowhere else. Each
variable is a module constant with a `#:` comment; the functions read the live value, so a test
or a notebook that sets a variable sees it at once.
"""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path

from labapp.errors import ConfigError

#: Loopback: every server the lab starts binds here, never to 0.0.0.0.
HOST = "127.0.0.1"
#: Where the lab's SQS endpoint listens unless LAB_ENDPOINT_URL says otherwise (LocalStack's port).
ENDPOINT_PORT = 4566
#: Where `labapp up` serves the worker app.
WORKER_PORT = 8000

#: Folder for the lab's state, ledgers, logs and progress (default ~/.worker-tier-lab).
HOME_ENV = "LAB_HOME"
#: The SQS endpoint to use or start, e.g. http://127.0.0.1:4566.
ENDPOINT_ENV = "LAB_ENDPOINT_URL"
#: "1" lets the lab talk to real AWS with your own credentials; anything else refuses.
ALLOW_AWS_ENV = "LAB_ALLOW_AWS"
#: Comma-separated host names of emulators on a private network (e.g. `localstack` in compose)
#: that get the same dummy credentials as loopback; naming them is the opt-in.
LOCAL_HOSTS_ENV = "LAB_LOCAL_HOSTS"
#: Which emulator to start when nothing answers: "moto" (default) or "localstack".
BACKEND_ENV = "LAB_BACKEND"
#: A shared secret: the daemon signs each POST and the worker checks the signature.
SHARED_SECRET_ENV = "LAB_SHARED_SECRET"
#: "1" lets the worker answer clients that are not on this machine (containers on a network).
WORKER_ALLOW_REMOTE_ENV = "LAB_WORKER_ALLOW_REMOTE"
#: Folder of the solution notebooks that `ex.solution()` reads (default: the repository's).
SOLUTIONS_DIR_ENV = "LAB_SOLUTIONS_DIR"
#: "off" stops exercise checks and predictions from writing progress.json (e.g. for a demo).
PROGRESS_ENV = "LAB_PROGRESS"
#: Who this learner is, for notebook 11's drill: it picks the hidden fault (default user@host).
LEARNER_ENV = "LAB_LEARNER"
#: LocalStack's own virtual environment (default .venv-localstack).
LOCALSTACK_VENV_ENV = "LAB_LOCALSTACK_VENV"
#: A Python >= 3.13 for LocalStack, when none is found on PATH or in pyenv.
LOCALSTACK_PYTHON_ENV = "LAB_LOCALSTACK_PYTHON"

#: The shortest shared secret the lab accepts (32 characters, e.g. 16 random bytes as hex).
MIN_SECRET_CHARS = 32
#: Secrets that were published as examples, so everyone knows them.
PUBLIC_SECRETS = frozenset({"change-me-compose-lab"})
_MAKE_SECRET = './docker/make-env.sh or python -c "import secrets; print(secrets.token_hex(32))"'

BACKENDS = ("moto", "localstack")
#: The repository (or, in a Docker image, the folder the package was installed from).
ROOT = Path(__file__).resolve().parents[1]


def lab_home() -> Path:
    """Return the folder for the lab's state, ledgers and logs, creating it if needed."""
    home = Path(os.environ.get(HOME_ENV) or Path.home() / ".worker-tier-lab")
    home.mkdir(parents=True, exist_ok=True)
    return home


def configured_endpoint() -> str | None:
    """Return LAB_ENDPOINT_URL, or None when it is not set (the daemon then means real AWS)."""
    return os.environ.get(ENDPOINT_ENV) or None


def endpoint_url() -> str:
    """Return the SQS endpoint the lab uses: LAB_ENDPOINT_URL, or loopback port 4566."""
    return os.environ.get(ENDPOINT_ENV) or f"http://{HOST}:{ENDPOINT_PORT}"


def allow_aws() -> bool:
    """Return True when the user opted in to real AWS (LAB_ALLOW_AWS=1)."""
    return os.environ.get(ALLOW_AWS_ENV) == "1"


def local_hosts() -> set[str]:
    """Return the emulator host names named in LAB_LOCAL_HOSTS."""
    return {name.strip() for name in os.environ.get(LOCAL_HOSTS_ENV, "").split(",") if name.strip()}


def backend() -> str:
    """Return the emulator to start when nothing answers (LAB_BACKEND, default moto)."""
    return os.environ.get(BACKEND_ENV) or "moto"


def shared_secret() -> str | None:
    """Return the shared secret for signed requests, or None when it is not set; refuse a weak one."""
    secret = os.environ.get(SHARED_SECRET_ENV) or None
    if secret is None:
        return None
    # The value itself is never quoted: an error message may end up in a shared log.
    if secret in PUBLIC_SECRETS:
        raise ConfigError(
            f"{SHARED_SECRET_ENV} is the public example value, which anyone can sign with; "
            f"make your own with {_MAKE_SECRET}."
        )
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"{SHARED_SECRET_ENV} has {len(secret)} characters and needs at least {MIN_SECRET_CHARS}; "
            f"make one with {_MAKE_SECRET}."
        )
    return secret


def worker_allow_remote() -> bool:
    """Return True when the worker may answer clients on other machines."""
    return os.environ.get(WORKER_ALLOW_REMOTE_ENV) == "1"


def solutions_dir() -> Path:
    """Return the folder with the solution notebooks."""
    return Path(os.environ.get(SOLUTIONS_DIR_ENV) or ROOT / "solutions")


def progress_off() -> bool:
    """Return True when LAB_PROGRESS=off asks the lab not to record exercise results."""
    return os.environ.get(PROGRESS_ENV, "").strip().lower() == "off"


def learner() -> str:
    """Return LAB_LEARNER, or `user@host`: stable for one learner, different for the next one."""
    named = os.environ.get(LEARNER_ENV, "").strip()
    if named:
        return named
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid, e.g. in a bare container
        user = str(os.getuid()) if hasattr(os, "getuid") else "learner"
    return f"{user}@{socket.gethostname()}"


def localstack_venv() -> Path:
    """Return LocalStack's own virtual environment."""
    return Path(os.environ.get(LOCALSTACK_VENV_ENV) or ".venv-localstack")


def localstack_python() -> str:
    """Return the interpreter named in LAB_LOCALSTACK_PYTHON, or an empty string."""
    return os.environ.get(LOCALSTACK_PYTHON_ENV, "")
