"""Notebook 02, the daemon and the POST: its predictions.

A prediction is the keyword arguments of `course.predict`, so a cell reads
`course.predict(**course.nb02.POST_BODY)` and does not show the answer before it is asked.
Facts: docs/aws-behaviour.md#post-body, #claim-form-body, #post-content-type, #claim-mimetype-json.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIMETYPE_LABEL", "POST_BODY"]

POST_BODY: dict[str, Any] = {
    "qid": "02.p1",
    "question": "The daemon POSTs your order to the worker. What is the body of that POST?",
    "choices": {
        "form data: SQSMessageBody=...&SQSMReceiptHandle=...": "That is the article's claim. Real sqsd sends no form fields, and it never sends the receipt handle.",
        "the order's JSON, exactly as sent": "The body is the message, byte for byte. What sqsd knows about the message comes in X-Aws-Sqsd-* headers.",
        "a JSON envelope with Body, MessageId and ReceiptHandle": "That is what ReceiveMessage gives the daemon. The daemon unpacks it: your application gets only the body, and headers.",
        "the order's JSON, URL-encoded": "Nothing is encoded: the body is the text you sent.",
    },
    "answer": "the order's JSON, exactly as sent",
}

MIMETYPE_LABEL: dict[str, Any] = {
    "qid": "02.p2",
    "question": "You set MimeType to application/x-www-form-urlencoded and send the order again. What does the worker get?",
    "choices": {
        "form data: SQSMessageBody=...": "sqsd never builds form fields. MimeType only fills the Content-Type header.",
        "the same JSON body, labelled as form data": "MimeType is copied into Content-Type and nothing else changes: the body is still your JSON.",
        "nothing: sqsd accepts only application/json": "MimeType takes any string; sqsd copies it into the Content-Type header.",
        "the JSON body, URL-encoded": "Nothing is encoded: the body is the message as sent.",
    },
    "answer": "the same JSON body, labelled as form data",
}
