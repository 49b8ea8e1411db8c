"""The SQS client the lab uses: dummy keys for local endpoints, real AWS only when the user opts in."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.session
from botocore.config import Config

from labapp import settings
from labapp.errors import EndpointError

log = logging.getLogger("labapp.sqs")

REGION = "us-east-1"


# Dummy keys: a local endpoint accepts anything, and passing them explicitly means a learner's
# real profile or AWS_* variables are never picked up by accident.
LOCAL_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


SqsClient = Any  # boto3's generated client has no importable static type without extra stubs


def is_local(url: str) -> bool:
    """Return True when url points at this machine or at an emulator host named in LAB_LOCAL_HOSTS."""
    host = urlparse(url).hostname or ""
    if host == "localhost" or host in settings.local_hosts():
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sqs_client(
    endpoint_url: str | None, *, read_timeout: float = 30, allow_aws: bool | None = None
) -> SqsClient:
    """Return an SQS client for a local endpoint, refusing real AWS unless the user opted in."""
    if allow_aws is None:
        allow_aws = settings.allow_aws()
    config = Config(
        connect_timeout=2,
        read_timeout=read_timeout,
        retries={"max_attempts": 1, "mode": "standard"},
        max_pool_connections=20,
    )
    if endpoint_url is not None and is_local(endpoint_url):
        # A session that ignores AWS_PROFILE: a profile named on a work laptop but missing here
        # would otherwise fail with ProfileNotFound, and a local endpoint needs none.
        without_profile = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        return boto3.session.Session(**LOCAL_CREDENTIALS, botocore_session=without_profile).client(
            "sqs", endpoint_url=endpoint_url, region_name=REGION, config=config
        )
    if not allow_aws:
        where = endpoint_url or "real AWS"
        raise EndpointError(
            f"Refusing to talk to {where}: the lab only uses endpoints on this machine; "
            f"set {settings.ALLOW_AWS_ENV}=1 if you really mean to use AWS."
        )
    log.warning(
        "Using %s with your own AWS credentials (%s=1).", endpoint_url or "real AWS", settings.ALLOW_AWS_ENV
    )
    return boto3.session.Session().client("sqs", endpoint_url=endpoint_url, config=config)
