"""The SQS client the lab uses: dummy keys for local endpoints, real AWS only when the user opts in."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, InvalidRegionError, ProfileNotFound

from labapp import settings
from labapp.errors import EndpointError, clipped, quoted

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


# A local session reads no profile and no AWS config or credentials file: a profile named on a work
# laptop but missing here would fail with ProfileNotFound, a broken ~/.aws/config with
# ConfigParseError, and a local endpoint needs none of them.
_LOCAL_SESSION_VARS = {
    "profile": (None, None, None, None),
    "config_file": (None, None, os.devnull, None),
    "credentials_file": (None, None, os.devnull, None),
}


# sqs.eu-west-1.amazonaws.com (and .com.cn): the region a request to that host must be signed for.
_AWS_SQS_HOST = re.compile(r"sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
_AWS_DOMAINS = ("amazonaws.com", "amazonaws.com.cn")


def _client_error(where: str, exc: BotoCoreError) -> EndpointError:
    return EndpointError(
        f"Could not make an SQS client for {where}: {clipped(str(exc), 150)} (check your AWS_* variables)."
    )


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
        try:
            session = botocore.session.Session(session_vars=_LOCAL_SESSION_VARS)
            # The region only names the signature's scope here; fixed, so AWS_DEFAULT_REGION may be unset.
            return boto3.session.Session(**LOCAL_CREDENTIALS, botocore_session=session).client(
                "sqs", endpoint_url=endpoint_url, region_name=REGION, config=config
            )
        except BotoCoreError as exc:  # e.g. AWS_DEFAULTS_MODE=bogus in the environment
            raise _client_error(endpoint_url, exc) from None
    where = endpoint_url or "real AWS"
    if not allow_aws:
        raise EndpointError(
            f"Refusing to talk to {where}: the lab only uses endpoints on this machine; "
            f"set {settings.ALLOW_AWS_ENV}=1 if you really mean to use AWS."
        )
    log.warning("Using %s with your own AWS credentials (%s=1).", where, settings.ALLOW_AWS_ENV)
    try:
        session = boto3.session.Session()
    except ProfileNotFound as exc:
        raise EndpointError(
            f"The AWS profile {quoted(exc.kwargs.get('profile'))} is not in your AWS config; "
            f"fix or unset AWS_PROFILE."
        ) from None
    region = _aws_region(session.region_name, endpoint_url)
    try:
        return session.client("sqs", endpoint_url=endpoint_url, region_name=region, config=config)
    except InvalidRegionError:
        raise EndpointError(
            f"The AWS region {quoted(region)} is not a region name like {REGION}; fix AWS_DEFAULT_REGION."
        ) from None
    except BotoCoreError as exc:
        raise _client_error(where, exc) from None


def _aws_region(configured: str | None, endpoint_url: str | None) -> str:
    """Return the region to sign for: the endpoint's own, else the configured one, else say what to set."""
    host = (urlparse(endpoint_url).hostname or "") if endpoint_url else ""
    named = _AWS_SQS_HOST.fullmatch(host)
    if named:
        # A request to sqs.eu-west-1.amazonaws.com signed for another region is refused.
        return named.group("region")
    if configured:
        return configured
    if host and not host.endswith(_AWS_DOMAINS):
        # An emulator on another host (the user opted in): the region only names the signature's scope.
        return REGION
    raise EndpointError(
        f"No AWS region is configured for real AWS; set AWS_DEFAULT_REGION (e.g. to {REGION}) "
        f"or a region in your AWS profile."
    )
