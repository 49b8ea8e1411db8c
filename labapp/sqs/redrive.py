"""Moving messages between queues: redrive from the DLQ, and picking single messages out of it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from labapp.errors import LabError, WaitTimeout
from labapp.runtime.wait import wait_until
from labapp.sqs.client import SqsClient
from labapp.sqs.limits import MAX_BATCH
from labapp.sqs.queues import QueuePair, receive_batch

log = logging.getLogger("labapp.sqs")

MOVE_TASK_TIMEOUT_S = 30.0


MOVE_TASK_DONE = ("COMPLETED", "FAILED", "CANCELLED")


def redrive(
    sqs: SqsClient, queues: QueuePair, max_messages: int | None = None, timeout: float = MOVE_TASK_TIMEOUT_S
) -> tuple[str, int]:
    """Move DLQ messages back to the worker queue and wait until they are back; return (how, count moved).

    StartMessageMoveTask is used where the endpoint has it (AWS, LocalStack), and its progress
    followed with ListMessageMoveTasks (docs/aws-behaviour.md#dlq-move-start). moto lacks it
    (docs/aws-behaviour.md#emu-moto-no-move-task), so the kit then moves messages itself: receive
    from the DLQ, send the same body and attributes to the source queue, and delete from the DLQ
    only after the send succeeded.
    """
    if max_messages is None:
        try:
            handle = sqs.start_message_move_task(SourceArn=queues.dlq_arn, DestinationArn=queues.arn)
        except ClientError as exc:
            log.info(
                "StartMessageMoveTask unavailable (%s); moving messages by hand.",
                exc.response["Error"]["Code"],
            )
        else:
            return "StartMessageMoveTask", _wait_for_move_task(sqs, queues, handle["TaskHandle"], timeout)
    return "receive-send-delete", move_messages(sqs, queues.dlq_url, queues.url, max_messages)


def _wait_for_move_task(sqs: SqsClient, queues: QueuePair, task_handle: str, timeout: float) -> int:
    def finished() -> dict[str, Any] | None:
        for task in sqs.list_message_move_tasks(SourceArn=queues.dlq_arn).get("Results", []):
            if task.get("TaskHandle") in (task_handle, None) and task.get("Status") in MOVE_TASK_DONE:
                return dict(task)
        return None

    try:
        task = wait_until(finished, timeout, "the DLQ redrive to finish", interval=0.2) or {}
    except WaitTimeout:
        raise LabError(
            f"The redrive of {queues.dlq_name} did not finish in {timeout:.0f}s; it goes on in SQS "
            "(ListMessageMoveTasks shows it)."
        ) from None
    if task["Status"] != "COMPLETED":
        raise LabError(
            f"The redrive of {queues.dlq_name} ended {task['Status']}: {task.get('FailureReason', '')}"
        )
    return int(task.get("ApproximateNumberOfMessagesMoved", 0))


def move_messages(sqs: SqsClient, source_url: str, target_url: str, max_messages: int | None = None) -> int:
    """Move messages one batch at a time, keeping body and attributes; return how many moved."""
    moved = 0
    while max_messages is None or moved < max_messages:
        messages = receive_batch(
            sqs, source_url, MAX_BATCH if max_messages is None else min(MAX_BATCH, max_messages - moved)
        )
        if not messages:
            break
        for message in messages:
            _move(sqs, source_url, target_url, message)
            moved += 1
    return moved


def _move(sqs: SqsClient, source_url: str, target_url: str, message: dict[str, Any]) -> str:
    """Send one received message on with its body and attributes, then delete it; return the new id."""
    kwargs: dict[str, Any] = {"QueueUrl": target_url, "MessageBody": message["Body"]}
    if message.get("MessageAttributes"):
        kwargs["MessageAttributes"] = message["MessageAttributes"]
    new_id = str(sqs.send_message(**kwargs)["MessageId"])
    # Deleted only after the send succeeded: a failure leaves a copy, never a loss.
    sqs.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])
    return new_id


MAX_SEARCH_BATCHES = 100  # 1,000 messages: more than a lab's DLQ ever holds


def move_selected(sqs: SqsClient, source_url: str, target_url: str, message_ids: Iterable[str]) -> list[str]:
    """Move only the messages with these ids, keeping body and attributes; return their new ids.

    StartMessageMoveTask moves a whole queue, so picking messages means receive, send, delete.
    Messages looked at but not picked stay invisible until the search ends, so the same ones do
    not come back in every batch, and then are made visible again at once.
    """
    wanted = set(message_ids)
    moved: list[str] = []
    held: list[dict[str, Any]] = []
    try:
        for _ in range(MAX_SEARCH_BATCHES):
            if not wanted:
                break
            messages = receive_batch(sqs, source_url)
            if not messages:
                break
            for message in messages:
                if message["MessageId"] not in wanted:
                    held.append(message)
                    continue
                moved.append(_move(sqs, source_url, target_url, message))
                wanted.discard(message["MessageId"])
    finally:
        for message in held:
            sqs.change_message_visibility(
                QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    return moved
