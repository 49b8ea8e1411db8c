"""The `labapp` command line: every command, its options and its one-line help."""

from __future__ import annotations

import argparse
from typing import Any

from labapp import settings
from labapp.bench import BENCHMARKS
from labapp.cli import commands as c
from labapp.cli.jupyter import JUPYTER_PORT, cmd_lab
from labapp.sqs.limits import MAX_DELAY_S
from labapp.sqsd.post import ENCODINGS


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every `labapp` command."""
    parser = argparse.ArgumentParser(
        prog="labapp", description="Start and stop the lab, send and inspect messages, run the daemon alone."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    for name, func, text in (
        ("up", c.cmd_up, "Start the lab in the background: SQS endpoint, queues, worker and daemon."),
        ("serve", c.cmd_serve, "Run the lab stack in the foreground (what `up` runs in the background)."),
    ):
        p = add(name, func, text)
        p.add_argument("--worker-port", type=int, default=8000)
        p.add_argument(
            "--backend",
            choices=["moto", "localstack"],
            default=settings.backend(),
            help="which emulator to start when nothing answers on the endpoint (default moto)",
        )
    p = add("lab", cmd_lab, "Start the lab and JupyterLab together; both stop when JupyterLab ends.")
    p.add_argument("--worker-port", type=int, default=settings.WORKER_PORT)
    p.add_argument("--jupyter-port", type=int, default=JUPYTER_PORT)
    p.add_argument("--backend", choices=list(settings.BACKENDS), default=settings.backend())
    add("down", c.cmd_down, "Stop the lab started by `up`.")
    add("status", c.cmd_status, "Show the endpoint, queue depths, DLQ depth, worker and daemon.")
    p = add("send", c.cmd_send, "Send a message (or many) to the worker queue.")
    p.add_argument("body", nargs="?", help='the message body, e.g. \'{"type": "order", ...}\'')
    p.add_argument("--file", help="read the body from this file")
    p.add_argument(
        "--attr", action="append", default=[], metavar="NAME=VALUE", help="a String message attribute"
    )
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--delay", type=int, default=0, help=f"DelaySeconds (0-{MAX_DELAY_S})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--queue", help="queue name (default: the lab's worker queue)")
    yes_help = "on real SQS, where a look is a receive that counts toward maxReceiveCount, do not ask"
    p = add("peek", c.cmd_peek, "Look at messages without receiving them (real SQS: asks first).")
    p.add_argument("--dlq", action="store_true", help="peek at the dead-letter queue")
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--queue")
    p.add_argument("--yes", action="store_true", help=yes_help)
    p = add("dlq", c.cmd_dlq, "List, show, redrive or purge the dead-letter queue.")
    p.add_argument("action", choices=["list", "show", "redrive", "purge"])
    p.add_argument("message_id", nargs="?")
    p.add_argument("--queue")
    p.add_argument("--yes", action="store_true", help=yes_help)
    add("doctor", c.cmd_doctor, "Check Python, ports, the endpoint and the lab; print one fix per problem.")
    add("reset", c.cmd_reset, "Back to a clean lab: queues emptied, ledger cleared, injected failures off.")
    p = add("daemon", c.cmd_daemon, "Run the mini sqsd in the foreground against any HTTP app.")
    p.add_argument("--config", help="an .ebextensions folder or one .config file (YAML or JSON)")
    p.add_argument("--endpoint-url", help="SQS endpoint (default: LAB_ENDPOINT_URL or real AWS if allowed)")
    p.add_argument("--queue-url", help="overrides WorkerQueueURL")
    p.add_argument("--queue-name", help="look the queue URL up by name")
    p.add_argument("--http-url", default="http://127.0.0.1:80", help="where the app listens (AWS: port 80)")
    p.add_argument(
        "--option", action="append", default=[], metavar="Name=Value", help="override an sqsd option"
    )
    p.add_argument(
        "--encoding", choices=ENCODINGS, default="sqsd", help="article-form is the seed article's claim"
    )
    p.add_argument("--accept-any-2xx", action="store_true", help="delete on any 2xx (AWS: only 200)")
    p.add_argument("--wait-time-seconds", type=int, default=20, help="long-poll wait per receive (AWS: 20)")
    p.add_argument("--cron", metavar="FILE", help="a cron.yaml: enqueue its periodic tasks (leader-elected)")
    p = add("emulator", c.cmd_emulator, "Run only the SQS endpoint (moto) in the foreground.")
    p.add_argument("--port", type=int, default=4566)
    p = add("worker", c.cmd_worker, "Run only the Flask worker app (waitress) in the foreground.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--ledger", help="SQLite file for the idempotency ledger")
    p = add("instance", c.cmd_instance, "Run one instance of the live fleet (started by the fleet itself).")
    for name in ("--endpoint-url", "--queue-url", "--ledger", "--ready-file"):
        p.add_argument(name, required=True)
    p.add_argument("--connections", type=int, default=5)
    p = add(
        "localstack", c.cmd_localstack, "Install LocalStack's own virtualenv, or print the Python it needs."
    )
    p.add_argument("action", choices=["install", "python"])
    p = add("progress", c.cmd_progress, "Show your exercise results per notebook.")
    p.add_argument("--reset", action="store_true", help="forget every recorded result")
    p = add("drill", c.cmd_drill, "Say which fault a notebook 11 drill seed holds (for instructors).")
    p.add_argument("seed", nargs="?", help="a learner's seed, as their drill cell prints it (default: yours)")
    p = add("bench", c.cmd_bench, "Run the benchmarks (all, or the one named) and print their figures.")
    p.add_argument("name", nargs="?", choices=list(BENCHMARKS), help="one benchmark; its own options follow")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser
