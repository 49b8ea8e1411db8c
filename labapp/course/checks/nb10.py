"""The checks of notebook 10, from the lab to AWS: each one drives a real lab and reads what happened."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from labapp.course.checks.core import Answers, NotYet, fresh_id, register
from labapp.course.handlers import sandbox, send_and_wait
from labapp.course.nb10 import WORKER_IAM_NEEDS, iam_gaps
from labapp.course.wire import request_for
from labapp.errors import ConfigError
from labapp.sqsd.ebextensions import load_ebextensions


@register("10.1")
def _check_10_1(a: Answers) -> str:
    import tempfile

    text = a.value("config_text")
    if not isinstance(text, str):
        raise NotYet("config_text should be the file's text, as a string.")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sqsd.config"
        path.write_text(text, encoding="utf-8")
        try:
            options = load_ebextensions(path)
        except ConfigError as exc:
            raise NotYet(f"EB would not accept it: {exc}") from None
    wanted = {
        "HttpPath": "/worker",
        "HttpConnections": 10,
        "InactivityTimeout": 120,
        "VisibilityTimeout": 150,
        "MaxRetries": 5,
    }
    for name, value in wanted.items():
        if getattr(options, name) != value:
            raise NotYet(f"{name} is {getattr(options, name)!r}; the task asks for {value!r}.")
    with sandbox("10", options) as box:
        [mid] = send_and_wait(box, {"type": "order", "order_id": fresh_id("cfg"), "amount": 1})
        line = request_for(box, mid).request_line
    if not line.startswith("POST /worker "):
        raise NotYet(f"the daemon sent {line!r}.")
    return (
        "the kit's .ebextensions reader accepted the file, and a daemon configured from it POSTed to /worker."
    )


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
