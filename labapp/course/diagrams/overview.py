"""The overview: a web and a worker environment that share one SQS queue (docs/aws-behaviour.md#one-tier)."""

from __future__ import annotations

from labapp.course.diagrams.canvas import BLUE, GREY, MUTED, ORANGE, SKY, TEXT, TINT, VERMILLION, Canvas


def architecture() -> str:
    """Return the overview: a web and a worker environment that share one SQS queue."""
    c = Canvas(
        "architecture",
        692,
        "Worker tier architecture",
        "Users reach a web server environment: a load balancer in front of web app instances. The "
        "web app calls SendMessage to put jobs on an SQS worker queue, which has a dead-letter queue"
        " attached by a RedrivePolicy whose maxReceiveCount equals MaxRetries, default 10. A "
        "separate worker environment with no public endpoint shares the queue. On each worker "
        "instance the daemon sqsd calls ReceiveMessage, POSTs each message to "
        "http://localhost:80/<HttpPath>, where nginx proxies to your app, and reads the answer. On "
        "200 sqsd calls DeleteMessage; on any other answer it calls ChangeMessageVisibility with "
        "ErrorVisibilityTimeout.",
    )
    c.lane(150, 20, 690, 140, "Web server environment", "web tier · public URL", BLUE, fill=TINT[BLUE])
    c.lane(20, 300, 820, 224, "Worker environment", "", ORANGE, fill=TINT[ORANGE])
    # The note sits under the title because the top-right corner is where arrow 5's label goes.
    c.label(36, 342, "worker tier · no public endpoint", anchor="start", fill=MUTED)
    c.lane(40, 362, 770, 142, "Worker instance", "one of several", ORANGE, stack=True, size=TEXT)
    for x, y, w, h, lines, colour, dash, stack in [
        (20, 72, 100, 56, ["Users"], GREY, False, False),
        (330, 72, 170, 56, ["Load balancer"], BLUE, False, False),
        (590, 72, 210, 56, ["Web app instances"], BLUE, False, True),
        (590, 206, 210, 60, ["SQS worker queue", "shared by both environments"], SKY, False, False),
        (40, 206, 200, 60, ["Dead-letter queue", "(DLQ)"], VERMILLION, True, False),
        (60, 404, 150, 64, ["Your app"], GREY, False, False),
        (330, 404, 150, 64, ["nginx", "listens on port 80"], GREY, False, False),
        (590, 404, 210, 64, ["sqsd", "the worker daemon"], ORANGE, False, False),
    ]:
        c.box(x, y, w, h, lines, colour, dash=dash, stack=stack)
    c.arrow((120, 100), (330, 100))
    c.label(225, 86, "HTTP requests")
    c.arrow((500, 100), (590, 100))
    c.arrow((695, 128), (695, 206), colour=BLUE)
    c.badge(695, 184, 1)
    c.label(711, 184, "SendMessage", anchor="start")
    c.arrow((590, 236), (240, 236), colour=VERMILLION, dash=True)
    c.label(415, 224, "RedrivePolicy", weight="600")
    c.label(415, 250, "maxReceiveCount = MaxRetries (default 10)")
    c.arrow((612, 266), (612, 404), colour=BLUE)
    c.badge(612, 284, 2)
    c.label(596, 284, "ReceiveMessage", anchor="end")
    c.arrow((646, 404), (646, 266), colour=BLUE)
    c.badge(646, 330, 5)
    c.label(662, 330, ["DeleteMessage or", "ChangeMessageVisibility"], anchor="start")
    c.arrow((590, 420), (480, 420), colour=GREY)
    c.arrow((330, 420), (210, 420), colour=GREY)
    c.badge(535, 420, 3)
    c.label(535, 400, "POST")
    c.label(270, 404, "proxies")
    c.arrow((210, 452), (330, 452), colour=GREY)
    c.arrow((480, 452), (590, 452), colour=GREY)
    c.badge(535, 452, 4)
    c.label(535, 476, "answer")
    steps = [
        "The web app puts a job on the queue with SendMessage.",
        "sqsd, the daemon on every worker instance, fetches messages with ReceiveMessage.",
        "sqsd POSTs each message to http://localhost:80/<HttpPath>; nginx proxies it to your app.",
        "Your app answers with an HTTP status code.",
        "On 200 sqsd calls DeleteMessage; on any other answer "
        "ChangeMessageVisibility(ErrorVisibilityTimeout).",
    ]
    for i, step in enumerate(steps):
        c.badge(32, 552 + 24 * i, i + 1)
        c.label(52, 552 + 24 * i, step, anchor="start")
    c.label(
        20,
        676,
        "Web and worker are two separate environments (one tier per environment); they share the queue.",
        anchor="start",
        fill=MUTED,
    )
    return c.svg()
