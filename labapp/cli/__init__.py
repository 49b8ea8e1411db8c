"""The `labapp` command: start and stop the lab, send and inspect messages, run the daemon alone.

Errors are one sentence and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from labapp.errors import LabError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `labapp` command; errors print one sentence and exit non-zero."""
    from labapp.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LabError as exc:
        print(f"labapp: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"labapp: SQS said {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
        return 2
    except BotoCoreError as exc:
        print(f"labapp: the SQS endpoint did not answer ({exc}); try `labapp doctor`.", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"labapp: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
