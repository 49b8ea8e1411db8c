"""One message's life: received, POSTed, deleted on 200 or hidden again; retries up to the DLQ.

Facts: docs/aws-behaviour.md#status-200-deletes, #status-other-retried, #retries-counted-by-sqs.
"""

from __future__ import annotations

from labapp.course.diagrams.canvas import (
    BLUE,
    GREEN,
    GREY,
    MUTED,
    ORANGE,
    SKY,
    TEXT,
    TINT,
    VERMILLION,
    WHITE,
    Canvas,
)


def message_lifecycle() -> str:
    """Return the life of one message: a delivery that succeeds above, one that fails below."""
    c = Canvas(
        "message-lifecycle",
        532,
        "Life of one message in the worker queue",
        "Time runs left to right. Success: the message is sent and visible; sqsd receives it and it "
        "is hidden for VisibilityTimeout, default 300 seconds; sqsd POSTs it to the app, the app "
        "works and answers 200, and sqsd calls DeleteMessage, so the message is gone. Failure: sqsd "
        "receives it, POSTs it, the app answers 500 (or 4xx, 202, or times out); sqsd calls "
        "ChangeMessageVisibility to ErrorVisibilityTimeout, default 2 seconds; the message is "
        "visible again and is received again with ApproximateReceiveCount 2. The receipt handle "
        "stays with sqsd and is never sent to the app.",
    )
    c.arrow((40, 36), (820, 36), colour=GREY, free="both")
    c.label(40, 22, "time (not to scale)", anchor="start", fill=MUTED)
    visible, hidden, gone = (SKY, False), (GREY, False), (WHITE, True)
    lanes = [
        (
            56,
            "✓ Delivery succeeds: the app answers 200",
            56,
            [
                (40, 110, ["Sent", "SendMessage"], BLUE),
                (174, 110, ["Received", "by sqsd"], ORANGE),
                (308, 110, ["POST", "to your app"], ORANGE),
                (442, 110, ["App works", "on the job"], GREY),
                (576, 110, ["Answer", "✓ 200 OK"], GREEN),
                (710, 110, ["Deleted", "DeleteMessage"], ORANGE),
            ],
            [
                (40, 174, ["visible"], visible),
                (174, 710, ["hidden", "VisibilityTimeout, default 300 s"], hidden),
                (710, 820, ["gone"], gone),
            ],
        ),
        (
            250,
            "✗ Delivery fails: the app answers 500 (or 4xx, 202, or times out)",
            72,
            [
                (40, 90, ["Received", "count 1"], ORANGE),
                (152, 96, ["POST", "to your app"], ORANGE),
                (270, 80, ["Answer", "✗ 500"], VERMILLION),
                (374, 184, ["Hide again", "ChangeMessageVisibility", "to ErrorVisibilityTimeout"], ORANGE),
                (630, 190, ["Received again", "ApproximateReceiveCount", "= 2"], ORANGE),
            ],
            [
                (40, 374, ["hidden", "VisibilityTimeout"], hidden),
                (374, 558, ["hidden · default 2 s", "ErrorVisibilityTimeout"], hidden),
                (558, 630, ["visible", "again"], visible),
                (630, 820, ["hidden again", "VisibilityTimeout"], hidden),
            ],
        ),
    ]
    for top, title, box_h, steps, states in lanes:
        c.lane(20, top, 820, box_h + 120, title)
        for i, (x, w, lines, colour) in enumerate(steps):
            c.box(x, top + 38, w, box_h, lines, colour, dash=colour == VERMILLION)
            if i:  # boxes stand for instants, so the arrow between them reads as "then"
                px, pw = steps[i - 1][:2]
                c.arrow((px + pw, top + 38 + box_h / 2), (x, top + 38 + box_h / 2), colour=GREY)
        bar = top + box_h + 62
        c.label(40, bar - 10, "message state in SQS", anchor="start", fill=MUTED)
        for x0, x1, lines, (colour, dash) in states:
            outline = GREY if colour == WHITE else colour  # a white fill still needs a visible edge
            c.rect(x0, bar, x1 - x0, 40, outline, dash, fill=TINT[colour], cls="state")
            c.label((x0 + x1) / 2, bar + 20, lines)
    c.box(
        20,
        460,
        820,
        56,
        [
            "The receipt handle stays with sqsd and is never sent to the app.",
            "sqsd needs it to call DeleteMessage and ChangeMessageVisibility.",
        ],
        GREY,
        align="start",
    )
    return c.svg()


def retry_path() -> str:
    """Return the retry path: receive counts up to maxReceiveCount, then the dead-letter queue."""
    c = Canvas(
        "retry-path",
        452,
        "Retries and the dead-letter queue",
        "SQS counts every receive of a message in ApproximateReceiveCount; the daemon does not "
        "count. Receives 1, 2, 3 up to N are delivered to sqsd and fail; after each failure the "
        "message returns to the queue after ErrorVisibilityTimeout. N is maxReceiveCount, which "
        "equals MaxRetries, default 10. When a receive would make the count exceed maxReceiveCount, "
        "SQS moves the message to the dead-letter queue instead of delivering it. Once the bug is "
        "fixed, a redrive with StartMessageMoveTask sends it back to the queue.",
    )
    c.box(
        20, 20, 820, 64, ["SQS worker queue", "keeps ApproximateReceiveCount per message"], SKY, align="start"
    )
    c.box(456, 30, 370, 44, ["SQS counts the receives, not the daemon"], BLUE)
    # One column per receive keeps the count visible as a position, not only as a number.
    for x, count in [(60, "1"), (190, "2"), (320, "3"), (510, "N")]:
        c.box(x, 150, 100, 72, [f"count {count}", "POST to app", "✗ fails"], ORANGE)
        c.arrow((x + 30, 84), (x + 30, 150), colour=BLUE)
        c.arrow((x + 70, 150), (x + 70, 84), colour=VERMILLION, dash=True)
    c.label(465, 186, "…", size=TEXT)
    c.box(
        640,
        150,
        180,
        72,
        ["count would be N+1", "> maxReceiveCount:", "not delivered"],
        VERMILLION,
        dash=True,
    )
    c.arrow((730, 84), (730, 150), colour=BLUE)
    c.box(640, 290, 180, 60, ["Dead-letter queue", "(DLQ)"], VERMILLION, dash=True)
    c.arrow((730, 222), (730, 290), colour=VERMILLION)
    c.label(720, 256, "moved by SQS", anchor="end")
    c.arrow((640, 320), (36, 320), (36, 84), colour=GREEN)
    c.label(338, 306, "redrive with StartMessageMoveTask, once the bug is fixed")
    legend = [
        (BLUE, False, "ReceiveMessage by sqsd: SQS adds 1 to ApproximateReceiveCount"),
        (VERMILLION, True, "answer not 200: back in the queue after ErrorVisibilityTimeout (default 2 s)"),
        (None, False, "N = maxReceiveCount in the queue's RedrivePolicy = MaxRetries (default 10)"),
    ]
    for i, (colour, dash, text) in enumerate(legend):
        y = 376 + 26 * i
        if colour:
            c.arrow((40, y), (84, y), colour=colour, dash=dash, free="both")
        c.label(100, y, text, anchor="start")
    return c.svg()
