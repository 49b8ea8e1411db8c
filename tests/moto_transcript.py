"""Replay one seeded random run of SQS operations on moto's backend, with a fake clock, and print
everything a client could observe, one JSON line per operation.

    python tests/moto_transcript.py SEED fixed|moto [OPERATIONS]

tests/test_moto_fixes.py runs it twice per seed, once with the lab's fixes and once on moto's
own code (each in a fresh process, since the fixes patch the process), and wants the same lines.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

OPERATIONS = ["send", "batch", "recv", "del", "vis", "tick", "count", "purge", "dlqrecv"]
WEIGHTS = [12, 4, 14, 10, 5, 8, 4, 0.2, 2]


def transcript(seed: int, variant: str, operations: int) -> list[Any]:
    """Return the observable result of each operation of one seeded run."""
    import moto.sqs.models as models
    from moto.sqs.exceptions import SQSException

    if variant == "fixed":
        from labapp.runtime.moto_fixes import install

        install()
    clock = [1_700_000_000_000.0]
    # Message and SQSBackend read these module globals at each call; ties happen on purpose.
    models.unix_time_millis = lambda dt=None: clock[0]
    models.unix_time = lambda dt=None: clock[0] / 1000.0
    rng = random.Random(seed)
    backend = models.SQSBackend("us-east-1", "123456789012")
    models.sqs_backends["123456789012"]["us-east-1"] = backend  # the DLQ is looked up there
    backend.create_queue("dlq")
    backend.create_queue(
        "src",
        RedrivePolicy=json.dumps(
            {"deadLetterTargetArn": backend.get_queue("dlq").queue_arn, "maxReceiveCount": 3}
        ),
        MessageRetentionPeriod=40 if seed % 2 else 345600,  # odd seeds: messages expire
    )
    handles: list[str] = []
    out: list[Any] = []
    sent = 0
    for _ in range(operations):
        op = rng.choices(OPERATIONS, WEIGHTS)[0]
        try:
            if op == "send":
                sent += 1
                message = backend.send_message("src", f"b{sent}", delay_seconds=rng.choice([0, 0, 0, 1, 2]))
                out.append((op, message.body))
            elif op == "batch":
                entries = {}
                for j in range(rng.randint(1, 10)):
                    sent += 1
                    entries[str(j)] = {
                        "Id": str(j),
                        "MessageBody": f"b{sent}",
                        "MessageAttributes": {},
                        "DelaySeconds": rng.choice([None, None, 1]),
                    }
                got, failed = backend.send_message_batch("src", entries)
                out.append((op, [m.body for m in got], failed))
            elif op in ("recv", "dlqrecv"):
                queue = "src" if op == "recv" else "dlq"
                got = backend.receive_message(queue, rng.randint(1, 10), 0, rng.choice([0, 1, 2, 5, 30]))
                handles.extend(m.receipt_handle for m in got)
                seen = [
                    (m.body, m.approximate_receive_count, m.approximate_first_receive_timestamp) for m in got
                ]
                out.append((op, seen))
            elif op == "del" and handles:
                queue = rng.choice(["src", "src", "src", "dlq"])
                backend.delete_message(queue, rng.choice(handles[-40:]))
                out.append((op, queue, "ok"))
            elif op == "vis" and handles:
                backend.change_message_visibility("src", rng.choice(handles[-40:]), rng.choice([0, 1, 3]))
                out.append((op, "ok"))
            elif op == "tick":
                clock[0] += rng.choice([0, 1, 250, 1000, 1000, 2000, 5000])
                out.append((op, clock[0]))
            elif op == "count":
                for name in ("src", "dlq"):
                    q = backend.get_queue(name)
                    attrs = backend.get_queue_attributes(name, ["All"])
                    out.append(
                        (
                            op,
                            name,
                            attrs["ApproximateNumberOfMessages"],
                            attrs["ApproximateNumberOfMessagesNotVisible"],
                            attrs["ApproximateNumberOfMessagesDelayed"],
                            len(q.pending_messages),
                            [m.body for m in q.messages],
                        )
                    )
            elif op == "purge":
                backend.purge_queue("src")
                out.append((op, "ok"))
        except SQSException as error:  # ReceiptHandleIsInvalid and the rest
            out.append((op, "error", type(error).__name__))
    return out


if __name__ == "__main__":
    rows = transcript(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3000)
    sys.stdout.write("".join(json.dumps(row) + "\n" for row in rows))
