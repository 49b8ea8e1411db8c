"""What each `labapp` command does; the parser is in cli/parser.py, error handling in cli/__init__.py."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labapp import settings
from labapp.errors import ConfigError, LabError
from labapp.runtime.wait import stop_on_signals
from labapp.signature import control_headers
from labapp.sqsd.ebextensions import load_ebextensions
from labapp.sqsd.options import AWS_DEFAULTS, LAB_PROFILE, parse_overrides, with_options
from labapp.sqsd.post import ARTICLE_FORM_WARNING

log = logging.getLogger("labapp")
#: How many DLQ messages `dlq list` shows, and how many `dlq show` searches (a receive shows ten).
DLQ_LIST = 10
DLQ_SEARCH = 1000
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


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
    from labapp.runtime.background import read_state
    from labapp.runtime.stack import WORKER_QUEUE
    from labapp.settings import endpoint_url as default_endpoint_url
    from labapp.sqs.client import sqs_client
    from labapp.sqs.queues import lookup_queues

    state = read_state() or {}
    endpoint = getattr(args, "endpoint_url", None) or state.get("endpoint_url") or default_endpoint_url()
    name = getattr(args, "queue", None) or state.get("queue") or WORKER_QUEUE
    sqs = sqs_client(endpoint)
    try:
        return sqs, lookup_queues(sqs, name)
    except LabError:
        _explain_lost_endpoint(state)
        raise


def _explain_lost_endpoint(state: dict[str, Any]) -> None:
    """Raise the reason the running lab's queues are missing, when it is a restarted or vanished endpoint."""
    from labapp.runtime.background import endpoint_health
    from labapp.runtime.supervisor import Health, loss_sentence

    if state and endpoint_health(state) is not Health.OK:
        said = loss_sentence(state) or f"The SQS endpoint at {state['endpoint_url']} lost the lab's queues."
        raise LabError(f"{said} The lab makes them again within seconds; `labapp up` heals it now.")


# -- commands ------------------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    from labapp.runtime.background import read_state, spawn

    running = read_state()
    if running is not None and _heal_running(running):
        return 0
    started = time.perf_counter()
    if args.backend == "localstack":
        from labapp.runtime.localstack import install

        install()
    state = spawn(["--worker-port", str(args.worker_port), "--backend", args.backend], timeout=90)
    took = time.perf_counter() - started
    print(
        f"Lab ready in {took:.1f}s: {state['backend']} SQS at {state['endpoint_url']}, queue {state['queue']}"
    )
    print(f"  worker {state['worker_url']}, daemon polling with the lab profile. Stop with `labapp down`.")
    return 0


def _heal_running(state: dict[str, Any]) -> bool:
    """Heal a running lab whose endpoint restarted; return False when it must be started afresh."""
    from labapp.runtime.background import endpoint_health, terminate, wait_for_heal
    from labapp.runtime.supervisor import CHECK_INTERVAL_S, Health, loss_sentence

    health = endpoint_health(state)
    if health is Health.OK:
        print(f"The lab is already running: {state['backend']} SQS at {state['endpoint_url']}.")
        note = loss_sentence(state)
        if note:
            print(f"  Earlier: {note}")
        return True
    if health is Health.VANISHED and not state.get("owns_endpoint"):
        # Nothing answers and the lab did not start that endpoint: start the lab again with its own.
        note = loss_sentence(state) or f"The SQS endpoint at {state['endpoint_url']} does not answer."
        print(f"{note} Starting the lab again with an endpoint of its own.")
        terminate()
        return False
    # Restarted (or the lab's own emulator died): the stack's supervisor makes the queues again.
    healed = wait_for_heal(state["marker"], timeout=10 * CHECK_INTERVAL_S + 60)
    print(loss_sentence(healed) or "The SQS endpoint was restarted.")
    print(
        f"  The queues are made again and the daemon restarted: {healed['queue']} at {healed['endpoint_url']}."
    )
    return True


def cmd_serve(args: argparse.Namespace) -> int:
    from labapp.runtime.background import serve_forever
    from labapp.runtime.stack import Stack

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    return serve_forever(Stack(LAB_PROFILE, worker_port=args.worker_port, backend=args.backend))


def cmd_down(args: argparse.Namespace) -> int:
    from labapp.runtime.background import terminate

    print("Lab stopped." if terminate() else "The lab was not running.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from labapp.cli.status import show_status
    from labapp.runtime.background import read_state

    state = read_state()
    if state is None:
        print("The lab is not running; start it with `labapp up`.", file=sys.stderr)
        return 1
    return show_status(state)


def cmd_send(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from labapp.sqs.limits import MAX_MESSAGE_BYTES
    from labapp.sqs.queues import send_messages
    from labapp.sqsd.documents import read_file_text

    if args.file:
        body = read_file_text(Path(args.file), MAX_MESSAGE_BYTES, "SQS takes in one message")
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
        print("(no messages)")
    for message in messages:
        attrs = message.get("Attributes", {})
        state = message.get("State", "visible")
        print(f"{message['MessageId']}  {state}  receive_count={attrs.get('ApproximateReceiveCount', '?')}")
        print(f"  body: {message['Body'][:200]}")
        for name, value in (message.get("MessageAttributes") or {}).items():
            print(f"  attr {name} = {value.get('StringValue', '<binary>')}")


def _dlq_url(queues: Any) -> str:
    if not queues.dlq_url:
        raise LabError(f"Queue {queues.name} has no dead-letter queue: it has no RedrivePolicy.")
    return str(queues.dlq_url)


def _peek(args: argparse.Namespace, sqs: Any, queues: Any, url: str, n: int) -> list[dict[str, Any]]:
    """Peek without side effects; where only a receive can look (real SQS), ask first."""
    from labapp.sqs.look import PeekReceives
    from labapp.sqs.queues import peek

    try:
        return peek(sqs, url, n)
    except PeekReceives as exc:
        counted = f"{exc} (maxReceiveCount is {queues.max_receive_count} on {queues.name})"
        if not args.yes:
            if not sys.stdin.isatty():
                raise LabError(f"{counted}; pass --yes to peek anyway.") from None
            answer = input(f"{counted}. Peek anyway? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise LabError("Not peeking; nothing was received.") from None
    return peek(sqs, url, n, receive_ok=True)


def cmd_peek(args: argparse.Namespace) -> int:
    sqs, queues = _context(args)
    url = _dlq_url(queues) if args.dlq else queues.url
    _print_messages(_peek(args, sqs, queues, url, args.n))
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    from labapp.sqs.queues import purge
    from labapp.sqs.redrive import redrive

    sqs, queues = _context(args)
    dlq_url = _dlq_url(queues)
    if args.action == "list":
        _print_messages(_peek(args, sqs, queues, dlq_url, DLQ_LIST))
    elif args.action == "show":
        found = [
            m for m in _peek(args, sqs, queues, dlq_url, DLQ_SEARCH) if m["MessageId"] == args.message_id
        ]
        if not found:
            raise LabError(f"No message {args.message_id} in {queues.dlq_name}.")
        print(json.dumps(found[0], indent=2, default=str))
    elif args.action == "redrive":
        how, moved = redrive(sqs, queues)
        count = f"{moved} messages"
        print(f"Redrove {count} from {queues.dlq_name} to {queues.name} using {how}.")
    elif args.action == "purge":
        purge(sqs, dlq_url)
        print(f"Purged {queues.dlq_name}.")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from labapp.cli.doctor import run_checks

    checks = run_checks()
    for check in checks:
        # An optional check that fails is worth knowing, not fixing: "--", and the exit stays 0.
        mark = "ok " if check.ok else ("-- " if check.optional else "FIX")
        print(f"{mark} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            print(f"    -> {check.fix}")
    return 0 if all(c.ok or c.optional for c in checks) else 1


def cmd_reset(args: argparse.Namespace) -> int:
    import requests

    from labapp.runtime.background import read_state
    from labapp.sqs.queues import purge

    state = read_state()
    if state is None:
        print("The lab is not running; nothing to reset. Start it with `labapp up`.")
        return 0
    sqs, queues = _context(args)
    purge(sqs, queues.url)
    purge(sqs, queues.dlq_url)
    # A worker with a shared secret only takes signed control calls.
    headers = control_headers(settings.shared_secret(), "POST", "/_lab/reset")
    requests.post(f"{state['worker_url']}/_lab/reset", headers=headers, timeout=5).raise_for_status()
    print(f"Reset: {queues.name} and {queues.dlq_name} emptied, ledger cleared, injected failures off.")
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from labapp.sqs.client import sqs_client
    from labapp.sqs.queues import ensure_queues
    from labapp.sqsd.daemon import Daemon
    from labapp.sqsd.log import attach_file, default_log_path

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    secret = settings.shared_secret()  # a weak secret stops the daemon before it touches SQS
    options = load_ebextensions(args.config) if args.config else AWS_DEFAULTS
    options = with_options(options, parse_overrides(args.option))
    endpoint = args.endpoint_url or settings.configured_endpoint()
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
        secret=secret,
    )
    # As on an EB instance: every outcome also goes to aws-sqsd/default.log (in the lab home).
    attach_file(daemon)
    log.info("sqsd: writing its log to %s", default_log_path())
    stop = stop_on_signals()  # only a command line installs signal handlers
    scheduler = _cron_thread(args.cron, sqs, daemon.queue_url, stop) if args.cron else None
    try:
        daemon.run(stop)
    finally:
        daemon.close(wait_for_receives=False)  # exit at once on SIGTERM, even mid long poll
        if scheduler is not None:
            scheduler.join()
    log.info("sqsd: stopped cleanly %s", daemon.counts)
    return 0


def _cron_thread(path: str, sqs: Any, queue_url: str, stop: threading.Event) -> threading.Thread:
    """Start the cron.yaml scheduler next to the daemon; one leader per lease file, as EB elects one."""
    from labapp.settings import lab_home
    from labapp.sqsd.cron import load_cron
    from labapp.sqsd.periodic import Lease, Scheduler

    scheduler = Scheduler(sqs, queue_url, load_cron(path), lease=Lease(lab_home() / "cron-leader.sqlite"))
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="cron")
    thread.start()
    return thread


def cmd_emulator(args: argparse.Namespace) -> int:
    from labapp.runtime.emulator import Emulator

    with Emulator(port=args.port) as emulator:
        print(f"moto SQS at {emulator.url}; Ctrl-C to stop.", flush=True)
        stop = stop_on_signals()
        stop.wait()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from labapp.runtime.servers import HttpServer
    from labapp.settings import lab_home
    from labapp.worker.app import create_app

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    app = create_app(
        {
            "LEDGER_PATH": args.ledger or str(lab_home() / "worker-ledger.sqlite"),
            "ALLOW_REMOTE": settings.worker_allow_remote(),
            "SHARED_SECRET": settings.shared_secret(),
        }
    )
    stop = stop_on_signals()  # only a command line installs signal handlers
    # A worker process really dies when told to crash; in a notebook the server only closes.
    with HttpServer(app, port=args.port, host=args.host, threads=args.threads, crash="exit") as server:
        print(f"worker at {server.url}", flush=True)
        stop.wait()
    return 0


def cmd_instance(args: argparse.Namespace) -> int:
    from labapp.runtime.instance import run_instance

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    return run_instance(args.endpoint_url, args.queue_url, args.ledger, args.ready_file, args.connections)


def cmd_localstack(args: argparse.Namespace) -> int:
    from labapp.runtime.localstack import find_python, install

    if args.action == "python":
        python = find_python()
        print(python or "no Python >= 3.13 found")
        return 0 if python else 1
    print(install())
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from labapp.course import progress

    if args.reset:
        progress.reset()
        print("Progress cleared.")
        return 0
    print(progress.format_table())
    return 0


def cmd_drill(args: argparse.Namespace) -> int:
    from labapp import settings
    from labapp.course.nb11 import fault_of_seed

    seed = args.seed if args.seed is not None else settings.learner()
    fault = fault_of_seed(seed)
    print(f"Drill seed {seed!r} holds Fault.{fault.name}: {fault.value}.")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from labapp import bench

    return bench.run([args.name] if args.name else [], args.bench_args)
