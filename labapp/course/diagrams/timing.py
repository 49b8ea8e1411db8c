"""Time in the worker tier: the two clocks of one POST, and the leader that sends periodic tasks.

Facts: docs/aws-behaviour.md#opt-inactivity-timeout, #nginx-504, #cron-leader, #cron-post.
"""

from __future__ import annotations

from labapp.course.diagrams.canvas import (
    BLUE,
    GREEN,
    GREY,
    MUTED,
    ORANGE,
    PURPLE,
    SKY,
    TEXT,
    TINT,
    VERMILLION,
    WHITE,
    Canvas,
)


def two_clocks() -> str:
    """Return the two clocks of one POST, plus nginx's timeout, for a 400 s job with AWS defaults."""
    c = Canvas(
        "two-clocks",
        500,
        "Two clocks run during one POST",
        "One POST of a 400 second job with the AWS defaults, from the moment sqsd receives the "
        "message. nginx in front of the app gives up after 60 seconds with a 504 unless "
        "proxy_read_timeout is raised. Clock A, the daemon, waits up to InactivityTimeout, 299 "
        "seconds, for the answer. Clock B, SQS, hides the message for VisibilityTimeout, 300 "
        "seconds, from the receive. Rule: job time < InactivityTimeout <= VisibilityTimeout, and "
        "nginx's timeout raised above the job time. If the job outlasts VisibilityTimeout the "
        "message becomes visible again and a second instance starts the same work, a duplicate. If "
        "it outlasts InactivityTimeout or nginx's timeout, sqsd counts a failure and retries "
        "although the app may finish the work.",
    )

    def x(t: float) -> float:
        """Map seconds since the receive to a horizontal position."""
        return 190 + 1.5 * t  # 1.5 px per second fits 0..420 s between the row names and the margin

    c.label(
        20,
        24,
        "One POST of a 400 s job with the AWS defaults; t = 0 when sqsd receives the message and POSTs it",
        anchor="start",
        weight="600",
    )
    rows = [
        (["Your app", "runs the job"], 400, GREY, False, "job runs 400 s", ""),
        (
            ["nginx", "proxy in front of app"],
            60,
            ORANGE,
            False,
            "60 s",
            "✗ 504 after 60 s unless proxy_read_timeout is raised",
        ),
        (
            ["Clock A: sqsd", "waits for the answer"],
            299,
            BLUE,
            False,
            "InactivityTimeout: waits up to 299 s",
            "✗ failure, retries later",
        ),
        (
            ["Clock B: SQS", "hides the message"],
            300,
            SKY,
            False,
            "VisibilityTimeout: hidden for 300 s",
            "✗ visible again → duplicate",
        ),
    ]
    for i, (name, end, colour, dash, inside, after) in enumerate(rows):
        mid = 66 + 52 * i
        c.label(20, mid, name, anchor="start", head=True)
        c.rect(x(0), mid - 14, x(end) - x(0), 28, colour, dash, cls="state")
        c.label(x(0) + 10, mid, inside, anchor="start")
        if after:
            c.label(x(end) + 10, mid, after, anchor="start")
    c.line((x(0), 256), (x(420), 256))
    for t in range(0, 421, 60):
        c.line((x(t), 256), (x(t), 262))
        c.label(x(t), 276, f"{t} s" if t in (0, 420) else str(t), fill=MUTED)
    c.box(
        20,
        300,
        820,
        56,
        [
            "✓ Safe: job time < InactivityTimeout ≤ VisibilityTimeout",
            "and nginx's proxy_read_timeout raised above the job time",
        ],
        GREEN,
        align="start",
    )
    c.box(
        20,
        370,
        820,
        52,
        [
            "✗ Job outlasts VisibilityTimeout",
            "The message becomes visible again and a second instance starts the same work: a duplicate.",
        ],
        VERMILLION,
        dash=True,
        align="start",
    )
    c.box(
        20,
        432,
        820,
        52,
        [
            "✗ Job outlasts InactivityTimeout or nginx's proxy_read_timeout",
            "sqsd counts the POST as a failure and retries, although the app may finish the work.",
        ],
        VERMILLION,
        dash=True,
        align="start",
    )
    return c.svg()


def leader_election() -> str:
    """Return how one leader instance turns cron.yaml into scheduled messages."""
    c = Canvas(
        "leader-election",
        624,
        "Periodic tasks: one leader sends the scheduled messages",
        "Three worker instances each run sqsd with a scheduler. A DynamoDB leader table, named like "
        "*-stack-AWSEBWorkerCronLeaderRegistry*, holds a lease. Instance A is the leader and renews "
        "the lease; B and C are on standby. At each time in cron.yaml, in UTC, the leader sends one "
        "message to the worker queue with body 'elasticbeanstalk scheduled job' and attributes "
        "beanstalk.sqsd.task_name, beanstalk.sqsd.path and beanstalk.sqsd.scheduled_time. Any "
        "instance may receive it; it POSTs an empty body to the task URL with headers X-Aws-Sqsd-"
        "Taskname, X-Aws-Sqsd-Scheduled-At and X-Aws-Sqsd-Path. If the leader stops renewing, its "
        "lease expires and another instance takes over.",
    )
    c.box(
        20,
        20,
        820,
        80,
        ["DynamoDB leader table", "*-stack-AWSEBWorkerCronLeaderRegistry*"],
        PURPLE,
        align="start",
    )
    c.box(540, 32, 284, 56, ["Lease: instance A", "expires unless A renews it"], PURPLE)
    c.lane(20, 150, 820, 176, "Worker environment", "", ORANGE, fill=TINT[ORANGE])
    for x, name, role, leader in [
        (40, "Instance A", "★ leader", True),
        (310, "Instance B", "standby", False),
        (580, "Instance C", "standby", False),
    ]:
        c.lane(x, 190, 240, 116, name, role, ORANGE, dash=not leader, size=TEXT)
        c.box(x + 12, 224, 108, 68, ["sqsd", "+ scheduler"], ORANGE)
        c.box(x + 146, 224, 82, 68, ["Your app"], GREY)
        c.arrow((x + 190, 190), (x + 190, 100), colour=GREY, dash=not leader)
    c.label(220, 125, "renews the lease", anchor="end")
    c.label(490, 125, ["checks the lease,", "takes over when it expires"], anchor="end")
    c.label(760, 125, "checks the lease", anchor="end")
    c.arrow((700, 258), (726, 258), colour=GREY)
    c.badge(713, 236, 3)
    c.box(40, 370, 780, 48, ["SQS worker queue"], SKY)
    c.arrow((100, 306), (100, 370), colour=BLUE)
    c.badge(100, 348, 1)
    c.label(116, 348, "at each cron.yaml time (UTC): SendMessage", anchor="start")
    c.arrow((700, 370), (700, 306), colour=BLUE)
    c.badge(700, 348, 2)
    c.label(684, 348, "any instance may receive it", anchor="end")
    for x, n, lines in [
        (
            20,
            1,
            [
                "Scheduled message: leader → queue",
                "body: elasticbeanstalk scheduled job",
                "attributes:",
                "· beanstalk.sqsd.task_name",
                "· beanstalk.sqsd.path",
                "· beanstalk.sqsd.scheduled_time",
            ],
        ),
        (
            435,
            3,
            [
                "POST to the task URL: sqsd → app",
                "body: empty",
                "headers:",
                "· X-Aws-Sqsd-Taskname",
                "· X-Aws-Sqsd-Scheduled-At",
                "· X-Aws-Sqsd-Path",
            ],
        ),
    ]:
        c.rect(x, 446, 405, 132, GREY, fill=WHITE)
        c.badge(x + 22, 468, n)
        c.label(x + 42, 512, lines, anchor="start", head=True)
    c.label(
        20,
        602,
        "If the leader stops renewing, its lease expires and another instance takes over as leader.",
        anchor="start",
        fill=MUTED,
    )
    return c.svg()
