"""Notebook 03, writing the worker: its predictions, and your app's log next to sqsd's for one message.

Each prediction is the keyword arguments of `course.predict`, so a cell reads
`course.predict(**course.nb03.POSTS_FOR_400)` and the words live here, not in a long cell.
Facts: docs/aws-behaviour.md#status-other-retried, #status-202-redelivered, #log-line.
"""

from __future__ import annotations

from typing import Any

from labapp.course.lab import Lab

POSTS_FOR_400: dict[str, Any] = {
    "qid": "03.p1",
    "question": (
        "The lab's queue moves a message to the dead-letter queue after 3 receives (MaxRetries 3). "
        "How many POSTs does the message get whose handler answers 400 Bad Request?"
    ),
    "choices": {
        "1": (
            "That is the claim: a 4xx means the message is at fault, so why retry? But sqsd does not look "
            "at the class of the status. Any answer but 200 is a failure, and the message comes back."
        ),
        "3": (
            "A 400 is a failure like any other. The message is received and POSTed until its "
            "receive count reaches maxReceiveCount (MaxRetries, 3 here); the next receive moves it to the DLQ."
        ),
        "10": (
            "10 is EB's default MaxRetries on AWS. The lab makes its queue with MaxRetries 3, so that you "
            "wait seconds instead of minutes; the rule is the same."
        ),
        "until it expires": (
            "That is what happens on a queue without a dead-letter queue. The lab's queue has a RedrivePolicy, "
            "as the queue EB creates always does, so SQS moves the message after maxReceiveCount receives."
        ),
    },
    "answer": "3",
}

AFTER_202: dict[str, Any] = {
    "qid": "03.p2",
    "question": (
        "This handler answers 202 at once and makes the thumbnails on a thread. MaxRetries is 3. "
        "What happens to the message?"
    ),
    "choices": {
        "deleted after one POST": (
            "202 means 'accepted' to a person, not to sqsd: it deletes a message only after a 200. "
            "To the daemon a 202 is a failure."
        ),
        "POSTed 3 times, the work runs 3 times, then the DLQ": (
            "Each 202 is a failure, so the message comes back after ErrorVisibilityTimeout and the "
            "handler starts the work again on a new thread. After 3 receives SQS moves the message, whose "
            "work is long done, to the DLQ."
        ),
        "deleted, and lost if the instance stops mid-work": (
            "A common worry, and the wrong one: sqsd never deletes the message after a 202, so nothing is "
            "lost. It comes back. The danger is work done again and again, not work lost."
        ),
        "kept in flight until the thread ends": (
            "sqsd knows nothing about your thread. For the daemon the POST ended when the 202 arrived, "
            "and a 202 is a failure."
        ),
    },
    "answer": "POSTed 3 times, the work runs 3 times, then the DLQ",
}


def _from_daemon(line: str) -> bool:
    """Return True for a log book line the daemon wrote (its loggers are labapp.daemon.* and labapp.sqsd.*)."""
    return " labapp.daemon" in line or " labapp.sqsd" in line


def both_logs(lab: Lab, message_id: str, n: int = 8) -> None:
    """Print the app's log lines and the daemon's sqsd log lines that name one message, in two blocks."""
    app = [line for line in lab.logbook.lines if message_id in line and not _from_daemon(line)]
    text = lab.sqsd_log_path.read_text(encoding="utf-8") if lab.sqsd_log_path.exists() else ""
    daemon = [line for line in text.splitlines() if message_id in line]
    print("Your app's log (what the handler wrote):")
    print("\n".join(f"  {line}" for line in app[-n:]) or "  (no line names this message)")
    print("sqsd's log (on an instance: /var/log/aws-sqsd/default.log):")
    print("\n".join(f"  {line}" for line in daemon[-n:]) or "  (no line names this message)")
