"""Looking at a queue's messages without receiving them, where the endpoint allows it.

SQS itself has no such call: a receive is the only way to see a message, and each one raises
its ApproximateReceiveCount, so enough looks move it to the dead-letter queue
(docs/aws-behaviour.md#retries-counted-by-sqs). The emulators can do better. LocalStack lists a
queue's messages on its developer endpoint (`GET /_aws/sqs/messages?QueueUrl=...`, JSON when
asked), and the lab's embedded moto endpoint answers the same question on `/_lab/sqs/messages`
(runtime/emulator.py). Both leave every message as it was.
"""

from __future__ import annotations

import base64
from typing import Any

import requests

from labapp.errors import EndpointError, LabError
from labapp.sqs.client import SqsClient, is_local

#: The embedded moto endpoint's route (runtime/emulator.py serves it).
LAB_ROUTE = "/_lab/sqs/messages"
#: LocalStack's developer endpoint; ShowInvisible and ShowDelayed list every message, not only visible ones.
LOCALSTACK_ROUTE = "/_aws/sqs/messages"
NON_EXISTENT = "AWS.SimpleQueueService.NonExistentQueue"
TIMEOUT_S = 5

#: The route that answered for each endpoint, so later looks usually ask once.
_ROUTES: dict[str, str] = {}


class PeekReceives(LabError):
    """This endpoint has no look without receiving; a peek there counts toward maxReceiveCount."""


class NoSuchQueue(LabError):
    """The endpoint has no queue at this URL."""


def look(sqs: SqsClient, queue_url: str) -> list[dict[str, Any]] | None:
    """Return every message of a queue, oldest first, without receiving any; None where no endpoint route exists.

    Each message has ReceiveMessage's keys (MessageId, Body, MD5OfBody, Attributes, and
    MessageAttributes with Binary values as bytes) but no ReceiptHandle, and a State:
    "visible", "in flight" or "delayed".
    """
    endpoint = str(sqs.meta.endpoint_url).rstrip("/")
    if not is_local(endpoint):
        return None  # real SQS: no such route, and guessing paths there would only be refused
    # The route that answered last time first: another emulator may since serve the same port.
    routes = sorted((LAB_ROUTE, LOCALSTACK_ROUTE), key=lambda route: route != _ROUTES.get(endpoint))
    for route in routes:
        try:
            found = _ask(endpoint, route, queue_url)
        except requests.RequestException as exc:
            raise EndpointError(f"The SQS endpoint at {endpoint} does not answer ({exc}).") from None
        if found is not None:
            _ROUTES[endpoint] = route
            return found
    return None


def _ask(endpoint: str, route: str, queue_url: str) -> list[dict[str, Any]] | None:
    params = {"QueueUrl": queue_url}
    if route == LOCALSTACK_ROUTE:
        params.update(ShowInvisible="true", ShowDelayed="true")
    reply = requests.get(
        f"{endpoint}{route}", params=params, headers={"Accept": "application/json"}, timeout=TIMEOUT_S
    )
    try:
        doc = reply.json()
    except ValueError:
        return None  # not this endpoint's route
    if not isinstance(doc, dict):
        return None
    error = (doc.get("Error") or doc.get("ErrorResponse", {}).get("Error") or {}).get("Code")
    if error == NON_EXISTENT:
        raise NoSuchQueue(f"There is no queue at {queue_url}.")
    if route == LAB_ROUTE and reply.ok and "Messages" in doc:
        return [_from_lab(message) for message in doc["Messages"]]
    if route == LOCALSTACK_ROUTE and reply.ok and "ReceiveMessageResponse" in doc:
        listed = (doc["ReceiveMessageResponse"].get("ReceiveMessageResult") or {}).get("Message") or []
        # One message comes as an object, several as a list (LocalStack renders XML as JSON).
        messages = [_from_localstack(m) for m in ([listed] if isinstance(listed, dict) else listed)]
        return sorted(messages, key=lambda m: int(m["Attributes"].get("SentTimestamp", 0)))
    return None


def _binary(value: dict[str, Any]) -> dict[str, Any]:
    # JSON carries Binary values in base64; boto3 hands them out as bytes, and so does a look.
    if "BinaryValue" in value:
        return {**value, "BinaryValue": base64.b64decode(value["BinaryValue"])}
    return dict(value)


def _from_lab(message: dict[str, Any]) -> dict[str, Any]:
    found = {key: value for key, value in message.items() if key != "MessageAttributes"}
    if message.get("MessageAttributes"):
        found["MessageAttributes"] = {k: _binary(v) for k, v in message["MessageAttributes"].items()}
    return found


def _from_localstack(message: dict[str, Any]) -> dict[str, Any]:
    attributes = {a["Name"]: a["Value"] for a in _as_list(message.get("Attribute"))}
    visible = attributes.pop("IsVisible", "true") == "true"
    delayed = attributes.pop("IsDelayed", "false") == "true"
    if attributes.get("ApproximateFirstReceiveTimestamp") == "0":
        del attributes["ApproximateFirstReceiveTimestamp"]  # LocalStack's "never received"
    found: dict[str, Any] = {
        "MessageId": message["MessageId"],
        "Body": message.get("Body", ""),
        "MD5OfBody": message.get("MD5OfBody", ""),
        "Attributes": attributes,
        "State": "delayed" if delayed else ("visible" if visible else "in flight"),
    }
    message_attributes = {a["Name"]: _binary(a["Value"]) for a in _as_list(message.get("MessageAttribute"))}
    if message_attributes:
        found["MessageAttributes"] = message_attributes
    return found


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, dict) else list(value)
