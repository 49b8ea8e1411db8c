"""The checks of notebook 10, from the lab to AWS: each one drives a real lab and reads what happened."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labapp.cli.bundle import LEDGER_ENV, bundle_problems, read_bundle
from labapp.course import portfolio
from labapp.course.checks.core import Answers, NotAttempted, NotYet, fresh_id, register
from labapp.course.handlers import sandbox
from labapp.course.nb10 import (
    OUTAGE_S,
    PROVIDER_GAP_S,
    REPORT_S,
    WORKER_IAM_NEEDS,
    iam_gaps,
    last_delivery_s,
)
from labapp.errors import ConfigError
from labapp.sqsd.options import LAB_PROFILE, SqsdOptions
from labapp.worker import state as worker_state


@register("10.1")
def _check_10_1(a: Answers) -> str:
    wanted = a.instance("bundle_options", SqsdOptions, "sqsd options, such as AWS_DEFAULTS.replace(...)")
    folder = a.value("my_bundle")
    if not isinstance(folder, (str, Path)) or not Path(folder).is_dir():
        raise NotAttempted(
            "run the cell with course.nb10.build_bundle(bundle_options): it makes `my_bundle`."
        )
    try:
        reading = read_bundle(Path(folder))
    except ConfigError as exc:
        raise NotYet(f"EB would not accept the bundle: {exc}") from None
    options = reading.options
    if options != wanted:
        raise NotYet(
            "the bundle's .ebextensions say something else than bundle_options: run the cell with "
            "build_bundle again after a change."
        )
    if options.InactivityTimeout < REPORT_S:
        raise NotYet(
            f"InactivityTimeout is {options.InactivityTimeout} s and the nightly report runs up to {REPORT_S} s: "
            "sqsd would stop waiting, count a failure and run the report again."
        )
    problems = bundle_problems(reading)
    if problems:
        raise NotYet(problems[0])
    if options.ErrorVisibilityTimeout < PROVIDER_GAP_S:
        raise NotYet(
            f"after a failed payment the daemon tries again {options.ErrorVisibilityTimeout} s later "
            f"(ErrorVisibilityTimeout); the provider asks for at least {PROVIDER_GAP_S} s."
        )
    last_try = last_delivery_s(options)
    if last_try <= OUTAGE_S:
        raise NotYet(
            f"an order's deliveries come {options.ErrorVisibilityTimeout} s apart, {options.MaxRetries} of them, so "
            f"the last comes about {last_try} s after the first, within a {OUTAGE_S} s outage, and "
            "the order ends in the DLQ."
        )
    ran = _run(Path(folder), options)
    return (
        f"the kit's readers accept the bundle as EB would, its timeouts outlast a {REPORT_S} s report "
        f"(nginx's included), its retries outlast a {OUTAGE_S // 60}-minute outage, and {ran}"
    )


def _run(folder: Path, production: SqsdOptions) -> str:
    """Serve the bundle's application.py and let a daemon with its path and connections POST to it."""
    handler = portfolio.kept_handler()
    if handler is not None and f"def {handler.name}(" not in (folder / "application.py").read_text():
        handler = None  # built before the handler was kept
    with tempfile.TemporaryDirectory() as scratch:
        app_module = _load_application(folder / "application.py", Path(scratch) / "ledger.sqlite")
        quick = LAB_PROFILE.replace(
            HttpPath=production.HttpPath, HttpConnections=production.HttpConnections, MaxRetries=2
        )
        with sandbox("10", quick, app=app_module.application) as box:
            order = {"type": "order", "order_id": fresh_id("bundle"), "amount": 12}
            box.send([order, "this is not JSON"])
            done = box.wait_until_idle(timeout=20)
            ledger = worker_state.of(app_module._app).ledger
            applied = ledger.applied(f"order:{order['order_id']}")
    who = f"your {handler.name} from {handler.exercise}" if handler else "the kit's worker"
    if not applied or done.dead_letter != 1:
        raise NotYet(
            f"the bundle's application.py, answering with {who}, did not do the order and refuse the "
            f"broken message: order done {applied}, DLQ {done.dead_letter} (expected 1)."
        )
    return f"its application.py, answering with {who}, did an order and sent a broken message to the DLQ."


def _load_application(path: Path, ledger: Path) -> Any:
    """Import a bundle's application.py under a name of its own, its ledger in `ledger`."""
    spec = importlib.util.spec_from_file_location(f"bundle_application_{fresh_id('app')}", path)
    if spec is None or spec.loader is None:
        raise NotYet(f"{path} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    saved = os.environ.get(LEDGER_ENV)
    os.environ[LEDGER_ENV] = str(ledger)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise NotYet(f"application.py fails when EB starts it: {type(exc).__name__}: {exc}") from None
    finally:
        if saved is None:
            os.environ.pop(LEDGER_ENV, None)
        else:
            os.environ[LEDGER_ENV] = saved
    return module


@register("10.2")
def _check_10_2(a: Answers) -> str:
    policy = a.value("worker_policy")
    if not isinstance(policy, Mapping) or "Statement" not in policy:
        raise NotYet("worker_policy should be a policy document: a dict with Version and Statement.")
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    for statement in statements:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") == "Allow" and any(action in ("*", "sqs:*") for action in actions):
            raise NotYet("one statement allows every action of a service; list the ones the worker needs.")
    gaps = iam_gaps(policy)
    if gaps:
        raise NotYet("missing: " + "; ".join(f"{need} ({WORKER_IAM_NEEDS[need]})" for need in gaps) + ".")
    return "the role lets the daemon receive, delete and retry, the leader enqueue periodic tasks, and the daemon report metrics."
