"""Notebook 10, from the lab to AWS: the .ebextensions text for options, and the worker role's permissions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labapp.sqsd.options import AWS_DEFAULTS, SqsdOptions


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
