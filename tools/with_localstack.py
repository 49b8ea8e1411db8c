"""Run one command against a LocalStack of its own: `python tools/with_localstack.py -- CMD ...`.

LocalStack starts on a free loopback port, the command runs with LAB_ENDPOINT_URL and LAB_BACKEND
pointing at it (and a private LAB_HOME), and LocalStack stops when the command ends, whatever its
exit status; the exit status is the command's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from labapp.runtime.localstack import LocalStack
from labapp.runtime.ports import free_port


def main(argv: list[str]) -> int:
    """Start LocalStack, run argv with it, stop it, and return argv's exit status."""
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python tools/with_localstack.py -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    with LocalStack(port=free_port()) as localstack:
        env = dict(
            os.environ,
            LAB_ENDPOINT_URL=localstack.url,
            LAB_BACKEND="localstack",
            LAB_HOME=tempfile.mkdtemp(prefix="labapp-localstack-home-"),
        )
        return subprocess.run(argv, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
