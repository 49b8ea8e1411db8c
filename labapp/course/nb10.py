"""Notebook 10, from the lab to AWS: .ebextensions text, your own bundle, and the worker role."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labapp.cli.bundle import (
    application_py,
    bundle_problems,
    describe,
    read_bundle,
    render_bundle,
    zip_bundle,
)
from labapp.course import portfolio
from labapp.course.nb08 import DEPLOY_CRON
from labapp.settings import lab_home
from labapp.sqsd.options import AWS_DEFAULTS, SqsdOptions

#: Exercise 10.1's production facts: the nightly report's longest run, and the payment provider's
#: rules (at least this long between calls after a failure; outages last up to this long).
REPORT_S = 95
PROVIDER_GAP_S = 30
OUTAGE_S = 240

# Predictions before the claim checks (docs/aws-behaviour.md#opt-names-invalid, #one-tier, #worker-role).
ARTICLE_CONFIG: dict[str, Any] = {
    "qid": "10.p1",
    "question": (
        "An article's file sets MimetypeJSON and MaxConcurrentAPIConnections in the namespace "
        "aws:elasticbeanstalk:sqsd:sqsd. What does a reader with EB's rules make of it?"
    ),
    "choices": {
        "It accepts all of it": "Look again at each name: EB rejects a namespace or option it does not know.",
        "It accepts the namespace, not the two options": (
            "The namespace has one `sqsd`, not two, so it is refused before any option is read."
        ),
        "It refuses all three names": (
            "The namespace is aws:elasticbeanstalk:sqsd, and the options are MimeType and HttpConnections."
        ),
    },
    "answer": "It refuses all three names",
}
ONE_ENVIRONMENT: dict[str, Any] = {
    "qid": "10.p2",
    "question": "Can one Elastic Beanstalk environment be your web tier and your worker tier at once?",
    "choices": {
        "Yes, with a web and a worker line in the Procfile": (
            "The Procfile starts processes on the instances; it does not give the environment a queue or a "
            "daemon. The tier does, and an environment has one."
        ),
        "Yes, if you choose both tiers when creating it": "There is no such choice: the tier is web or worker.",
        "No: an environment has one tier, so it takes two environments": (
            "You create a web environment and a worker environment, and the web tier sends to the "
            "worker's queue."
        ),
    },
    "answer": "No: an environment has one tier, so it takes two environments",
}
THREE_ACTIONS: dict[str, Any] = {
    "qid": "10.p3",
    "question": (
        "The worker role allows only ReceiveMessage, DeleteMessage and ChangeMessageVisibility. What stops "
        "working?"
    ),
    "choices": {
        "Nothing: those are the daemon's calls": (
            "They are its calls for ordinary messages. Periodic tasks and the daemon's metrics need more."
        ),
        "Every message: the daemon cannot receive": "ReceiveMessage is in the list, so messages still flow.",
        "Periodic tasks and the daemon's metrics": (
            "The leader needs SendMessage and the DynamoDB leader table to enqueue tasks, and the "
            "daemon needs PutMetricData. Messages still flow, so the gap stays hidden."
        ),
    },
    "answer": "Periodic tasks and the daemon's metrics",
}
DEFAULT_RETRIES: dict[str, Any] = {
    "qid": "10.p4",
    "question": (
        "With EB's defaults (ErrorVisibilityTimeout 2 s, MaxRetries 10), the provider is down and every "
        "delivery of an order fails. About how many seconds after the first delivery does the last one come?"
    ),
    "answer": 18,
    "tolerance": 4,
    "unit": "s",
    "low": "There are ten deliveries, and each failure hides the order for 2 s before the next.",
    "high": (
        "Ten deliveries 2 s apart span nine gaps, about 18 s; then the order goes to the DLQ. The defaults "
        "give up in seconds, not minutes."
    ),
    "right": (
        "Ten deliveries 2 s apart span nine gaps, about 18 s, and then the order goes to the DLQ: a 4-minute "
        "outage outlasts EB's defaults more than ten times over."
    ),
}


# -- 10: taking it to AWS ---------------------------------------------------------------------------------
def ebextensions_yaml(options: SqsdOptions, only_changed: bool = True) -> str:
    """Return an `.ebextensions/*.config` text that sets these sqsd options."""
    import yaml

    settings = options.as_option_settings()
    if only_changed:
        namespace, values = next(iter(settings.items()))
        defaults = AWS_DEFAULTS.as_option_settings()[namespace]
        settings = {namespace: {k: v for k, v in values.items() if defaults.get(k) != v}}
    # Whole numbers as numbers, the way people write them in .ebextensions.
    typed = {ns: {k: int(v) if v.isdigit() else v for k, v in opts.items()} for ns, opts in settings.items()}
    return str(yaml.safe_dump({"option_settings": typed}, sort_keys=False))


# What a worker instance's role must allow (docs/aws-behaviour.md#worker-role): the daemon's own calls, periodic
# tasks (the leader enqueues them, elected through a DynamoDB table) and its CloudWatch metrics.
WORKER_IAM_NEEDS = {
    "sqs:ReceiveMessage": "the daemon receives messages",
    "sqs:DeleteMessage": "the daemon deletes a message after a 200",
    "sqs:ChangeMessageVisibility": "the daemon sets ErrorVisibilityTimeout after a failure",
    "sqs:SendMessage": "the leader enqueues periodic tasks from cron.yaml",
    "dynamodb:*Item": "instances elect the periodic-task leader through a DynamoDB table",
    "cloudwatch:PutMetricData": "the daemon publishes its metrics",
}


def _allows(pattern: str, needed: str) -> bool:
    import fnmatch

    service, _, action = needed.partition(":")
    if needed == "dynamodb:*Item":
        return pattern.lower() in ("*", "dynamodb:*") or (
            pattern.lower().startswith("dynamodb:") and pattern.lower().endswith("item")
        )
    return fnmatch.fnmatch(needed.lower(), pattern.lower()) and bool(service and action)


def iam_gaps(policy: Mapping[str, Any]) -> list[str]:
    """Return the permissions a worker needs that this policy document does not allow."""
    allowed: list[str] = []
    statements = policy.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    for statement in statements:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        allowed.extend([actions] if isinstance(actions, str) else list(actions))
    return [need for need in WORKER_IAM_NEEDS if not any(_allows(p, need) for p in allowed)]


# -- 10.1: your own bundle --------------------------------------------------------------------------------
def show_portfolio() -> None:
    """Print what the kit kept of your solved exercises, and what the bundle takes from each."""
    for exercise, name in portfolio.KEPT.items():
        record = portfolio.load(exercise)
        if record is None:
            print(f"{exercise} {name}: not kept yet (solve {exercise}: its check keeps a correct answer)")
        elif "source" in record:
            uses = ", ".join(record["imports"]) or "nothing imported"
            print(f"{exercise} {name}: your function, {len(record['source'].splitlines())} lines ({uses})")
        else:
            lab_values = {k: v for k, v in record["options"].items() if v != getattr(AWS_DEFAULTS, k)}
            print(f"{exercise} {name}: " + ", ".join(f"{k}={v}" for k, v in lab_values.items()))
    if portfolio.kept_handler() is None:
        print("Without a kept 03.1 handler, the bundle's application.py runs the kit's own worker.")


def last_delivery_s(options: SqsdOptions) -> int:
    """When a message that fails every time gets its last delivery, counted from its first (POSTs aside)."""
    return (options.MaxRetries - 1) * options.ErrorVisibilityTimeout


def show_deliveries(options: SqsdOptions, outage_s: int = OUTAGE_S) -> None:
    """Print when each delivery of an always-failing message comes, and whether it outlasts an outage."""
    times = [n * options.ErrorVisibilityTimeout for n in range(options.MaxRetries)]
    shown = ", ".join(f"{t} s" for t in times[:6]) + (f", ... {times[-1]} s" if len(times) > 6 else "")
    print(
        f"MaxRetries={options.MaxRetries}, ErrorVisibilityTimeout={options.ErrorVisibilityTimeout}: {shown}"
    )
    if times[-1] > outage_s:
        print(f"The last delivery comes after a {outage_s} s outage is over: the message goes through.")
    else:
        print(f"Every delivery comes within a {outage_s} s outage: the message ends in the DLQ.")


def build_bundle(options: SqsdOptions, folder: str | Path | None = None) -> Path | None:
    """Write a deployable bundle (application.py with your 03.1 handler, .ebextensions, nginx, Procfile,
    cron.yaml) for these sqsd options, show it as EB reads it, and return its folder (lab_home()/bundle
    unless you name one); None, with a sentence, when `options` are not sqsd options yet."""
    if not isinstance(options, SqsdOptions):
        print(f"The bundle needs sqsd options, such as AWS_DEFAULTS.replace(...); got {options!r}.")
        return None
    target = Path(folder) if folder is not None else lab_home() / "bundle"
    handler = portfolio.kept_handler()
    origin = "Generated by course.nb10.build_bundle(); build it again rather than edit it."
    if handler is None:
        application = application_py(origin + " It runs the kit's worker.")
    else:
        mine = f" It answers with your {handler.name} from exercise {handler.exercise}."
        application = application_py(origin + mine, handler.imports, handler.source, handler.name)
    cron = DEPLOY_CRON.read_text(encoding="utf-8")
    files = render_bundle(options, cron, application=application, origin=origin)
    for path, text in files.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(text, encoding="utf-8")
    show_bundle(target)
    upload = zip_bundle(target.with_suffix(".zip"), target, files=list(files))
    print(f"{upload.name}: these files and the labapp package, ready for `eb deploy` or the console's upload")
    return target


def show_bundle(folder: str | Path) -> None:
    """Print the bundle's files and what the kit's readers take from them, as EB would."""
    root = Path(folder)
    print(f"{root.name}/")
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        print(f"  {file.relative_to(root)}")
    reading = read_bundle(root)
    print("\n".join(describe(reading)))
    for problem in bundle_problems(reading):
        print(f"problem: {problem}")
