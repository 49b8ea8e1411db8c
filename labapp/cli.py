"""The `labapp` command: start and stop the lab, send and inspect messages, run the daemon alone."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labapp.config import AWS_DEFAULTS, LAB_PROFILE, load_ebextensions, parse_overrides, with_options
from labapp.errors import ConfigError, LabError
from labapp.post import ARTICLE_FORM_WARNING, ENCODINGS

log = logging.getLogger("labapp")


def _attributes(pairs: Sequence[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--attr takes name=value, e.g. --attr customer=42; got {pair!r}.")
        result[name] = value
    return result


def _context(args: argparse.Namespace) -> tuple[Any, Any]:
    """Return (sqs client, queue pair) of the running lab, or of --endpoint-url / --queue."""
    from labapp.queues import lookup_queues, sqs_client
    from labapp.stack import WORKER_QUEUE, default_endpoint_url, read_state

    state = read_state() or {}
    endpoint = getattr(args, "endpoint_url", None) or state.get("endpoint_url") or default_endpoint_url()
    name = getattr(args, "queue", None) or state.get("queue") or WORKER_QUEUE
    sqs = sqs_client(endpoint)
    return sqs, lookup_queues(sqs, name)


# -- commands ------------------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    from labapp.stack import read_state, spawn

    running = read_state()
    if running is not None:
        print(f"The lab is already running: {running['backend']} SQS at {running['endpoint_url']}.")
        return 0
    started = time.perf_counter()
    if args.backend == "localstack":
        from labapp.localstack import install

        install()
    state = spawn(["--worker-port", str(args.worker_port), "--backend", args.backend], timeout=90)
    took = time.perf_counter() - started
    print(
        f"Lab ready in {took:.1f}s: {state['backend']} SQS at {state['endpoint_url']}, queue {state['queue']}"
    )
    print(f"  worker {state['worker_url']}, daemon polling with the lab profile. Stop with `labapp down`.")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from labapp.stack import Stack, serve_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return serve_forever(Stack(LAB_PROFILE, worker_port=args.worker_port, backend=args.backend))


def cmd_down(args: argparse.Namespace) -> int:
    from labapp.stack import terminate

    print("Lab stopped." if terminate() else "The lab was not running.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import requests

    from labapp.queues import depth
    from labapp.stack import read_state

    state = read_state()
    if state is None:
        print("The lab is not running; start it with `labapp up`.", file=sys.stderr)
        return 1
    sqs, queues = _context(args)
    d = depth(sqs, queues)
    try:
        health = requests.get(f"{state['worker_url']}/_lab/health", timeout=2).json()
        worker = f"up at {state['worker_url']}, ledger {health['ledger']}"
        daemon = health.get("daemon", "unknown")
    except (requests.RequestException, ValueError):
        worker, daemon = "NOT ANSWERING", "unknown"
    rows = [
        ("endpoint", f"{state['backend']} at {state['endpoint_url']}"),
        ("queue", queues.name),
        ("visible", d.visible),
        ("in flight", d.in_flight),
        ("delayed", d.delayed),
        ("dead-letter queue", f"{d.dead_letter} in {queues.dlq_name}"),
        ("worker", worker),
        ("daemon", daemon),
    ]
    for key, value in rows:
        print(f"{key:>18}: {value}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from labapp.queues import send_messages

    if args.file:
        body = Path(args.file).read_text(encoding="utf-8")
    elif args.body is not None:
        body = args.body
    else:
        raise ConfigError("send needs a message body or --file FILE.")
    if args.count < 1:
        raise ConfigError(f"--count must be 1 or more; got {args.count}.")
    attributes = _attributes(args.attr)
    sqs, queues = _context(args)
    with tqdm(total=args.count, unit="msg", disable=args.count < 100 or args.quiet) as bar:
        ids = send_messages(sqs, queues.url, [body] * args.count, attributes, args.delay, progress=bar.update)
    if args.count == 1:
        print(ids[0])
    else:
        print(f"Sent {len(ids)} messages to {queues.name} (first id {ids[0]}).")
    return 0


def _print_messages(messages: list[dict[str, Any]]) -> None:
    if not messages:
        print("(no messages visible)")
    for message in messages:
        attrs = message.get("Attributes", {})
        print(f"{message['MessageId']}  receive_count={attrs.get('ApproximateReceiveCount', '?')}")
        print(f"  body: {message['Body'][:200]}")
        for name, value in (message.get("MessageAttributes") or {}).items():
            print(f"  attr {name} = {value.get('StringValue', '<binary>')}")


def cmd_peek(args: argparse.Namespace) -> int:
    from labapp.queues import peek

    sqs, queues = _context(args)
    _print_messages(peek(sqs, queues.dlq_url if args.dlq else queues.url, args.n))
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    from labapp.queues import peek, purge, redrive

    sqs, queues = _context(args)
    if args.action == "list":
        _print_messages(peek(sqs, queues.dlq_url, 10))
    elif args.action == "show":
        found = [m for m in peek(sqs, queues.dlq_url, 10) if m["MessageId"] == args.message_id]
        if not found:
            raise LabError(f"No message {args.message_id} among the first ten in {queues.dlq_name}.")
        print(json.dumps(found[0], indent=2))
    elif args.action == "redrive":
        how, moved = redrive(sqs, queues)
        count = "all messages (asynchronously)" if moved < 0 else f"{moved} messages"
        print(f"Redrove {count} from {queues.dlq_name} to {queues.name} using {how}.")
    elif args.action == "purge":
        purge(sqs, queues.dlq_url)
        print(f"Purged {queues.dlq_name}.")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from labapp.doctor import run_checks

    checks = run_checks()
    for check in checks:
        print(f"{'ok ' if check.ok else 'FIX'} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            print(f"    -> {check.fix}")
    return 0 if all(c.ok for c in checks) else 1


def cmd_reset(args: argparse.Namespace) -> int:
    import requests

    from labapp.queues import purge
    from labapp.stack import read_state

    state = read_state()
    if state is None:
        print("The lab is not running; nothing to reset. Start it with `labapp up`.")
        return 0
    sqs, queues = _context(args)
    purge(sqs, queues.url)
    purge(sqs, queues.dlq_url)
    requests.post(f"{state['worker_url']}/_lab/reset", timeout=5).raise_for_status()
    print(f"Reset: {queues.name} and {queues.dlq_name} emptied, ledger cleared, injected failures off.")
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from labapp.daemon import Daemon
    from labapp.queues import ensure_queues, sqs_client

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options = load_ebextensions(args.config) if args.config else AWS_DEFAULTS
    options = with_options(options, parse_overrides(args.option))
    endpoint = args.endpoint_url or os.environ.get("LAB_ENDPOINT_URL")
    sqs = sqs_client(endpoint, read_timeout=args.wait_time_seconds + 10)
    queue_url = args.queue_url or options.WorkerQueueURL
    if args.queue_name:
        # Like EB's auto-created worker queue: made on first use, with a DLQ after MaxRetries.
        queue_url = ensure_queues(sqs, args.queue_name, options.MaxRetries, options.VisibilityTimeout).url
    if args.encoding == "article-form":
        log.warning("sqsd: %s", ARTICLE_FORM_WARNING)
    daemon = Daemon(
        sqs,
        options,
        queue_url=queue_url,
        http_url=args.http_url,
        encoding=args.encoding,
        accept_any_2xx=args.accept_any_2xx,
        wait_time_seconds=args.wait_time_seconds,
        secret=os.environ.get("LAB_SHARED_SECRET") or None,
    )
    stop = threading.Event()
    # Only the command line installs signal handlers: in a notebook they would fail on a thread.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    scheduler = _cron_thread(args.cron, sqs, daemon.queue_url, stop) if args.cron else None
    try:
        daemon.run(stop)
    finally:
        daemon.close()
        if scheduler is not None:
            scheduler.join()
    log.info("sqsd: stopped cleanly %s", daemon.counts)
    return 0


def _cron_thread(path: str, sqs: Any, queue_url: str, stop: threading.Event) -> threading.Thread:
    """Start the cron.yaml scheduler next to the daemon; one leader per lease file, as EB elects one."""
    from labapp.cron import load_cron
    from labapp.periodic import Lease, Scheduler
    from labapp.stack import lab_home

    scheduler = Scheduler(sqs, queue_url, load_cron(path), lease=Lease(lab_home() / "cron-leader.sqlite"))
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="cron")
    thread.start()
    return thread


def cmd_emulator(args: argparse.Namespace) -> int:
    from labapp.emulator import Emulator

    with Emulator(port=args.port) as emulator:
        print(f"moto SQS at {emulator.url}; Ctrl-C to stop.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from labapp.httpserver import HttpServer
    from labapp.stack import lab_home
    from labapp.worker import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(
        {
            "LEDGER_PATH": args.ledger or str(lab_home() / "worker-ledger.sqlite"),
            "ALLOW_REMOTE": os.environ.get("LAB_WORKER_ALLOW_REMOTE") == "1",
            "SHARED_SECRET": os.environ.get("LAB_SHARED_SECRET") or None,
        }
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # A worker process really dies when told to crash; in a notebook the server only closes.
    with HttpServer(app, port=args.port, host=args.host, threads=args.threads, crash="exit") as server:
        print(f"worker at {server.url}", flush=True)
        stop.wait()
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from labapp import progress

    if args.reset:
        progress.reset()
        print("Progress cleared.")
        return 0
    print(progress.format_table())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from labapp.bench import main as bench_main

    return bench_main(args)


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labapp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    for name, func, text in (
        ("up", cmd_up, "Start the lab in the background: SQS endpoint, queues, worker and daemon."),
        ("serve", cmd_serve, "Run the lab stack in the foreground (what `up` runs in the background)."),
    ):
        p = add(name, func, text)
        p.add_argument("--worker-port", type=int, default=8000)
        p.add_argument(
            "--backend",
            choices=["moto", "localstack"],
            default=os.environ.get("LAB_BACKEND", "moto"),
            help="which emulator to start when nothing answers on the endpoint (default moto)",
        )
    add("down", cmd_down, "Stop the lab started by `up`.")
    add("status", cmd_status, "Show the endpoint, queue depths, DLQ depth, worker and daemon.")
    p = add("send", cmd_send, "Send a message (or many) to the worker queue.")
    p.add_argument("body", nargs="?", help='the message body, e.g. \'{"type": "order", ...}\'')
    p.add_argument("--file", help="read the body from this file")
    p.add_argument(
        "--attr", action="append", default=[], metavar="NAME=VALUE", help="a String message attribute"
    )
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--delay", type=int, default=0, help="DelaySeconds (0-900)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--queue", help="queue name (default: the lab's worker queue)")
    p = add("peek", cmd_peek, "Look at messages without consuming them.")
    p.add_argument("--dlq", action="store_true", help="peek at the dead-letter queue")
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--queue")
    p = add("dlq", cmd_dlq, "List, show, redrive or purge the dead-letter queue.")
    p.add_argument("action", choices=["list", "show", "redrive", "purge"])
    p.add_argument("message_id", nargs="?")
    p.add_argument("--queue")
    add("doctor", cmd_doctor, "Check Python, ports, the endpoint and the lab; print one fix per problem.")
    add("reset", cmd_reset, "Back to a clean lab: queues emptied, ledger cleared, injected failures off.")
    p = add("daemon", cmd_daemon, "Run the mini sqsd in the foreground against any HTTP app.")
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
    p = add("emulator", cmd_emulator, "Run only the SQS endpoint (moto) in the foreground.")
    p.add_argument("--port", type=int, default=4566)
    p = add("worker", cmd_worker, "Run only the Flask worker app (waitress) in the foreground.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--ledger", help="SQLite file for the idempotency ledger")
    p = add("progress", cmd_progress, "Show your exercise results per notebook.")
    p.add_argument("--reset", action="store_true", help="forget every recorded result")
    p = add("bench", cmd_bench, "Measure throughput, latency and start-up time on this machine.")
    p.add_argument("--messages", type=int, default=2000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `labapp` command; errors print one sentence and exit non-zero."""
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
