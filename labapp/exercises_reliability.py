"""Exercises of notebooks 04-06, 09 and 10: retries and the DLQ, idempotency, timeouts, monitoring, AWS."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labapp import lessons
from labapp.checks import (
    FAST_FAIL,
    Answers,
    NotAttempted,
    NotYet,
    fresh_id,
    register,
    require_answer,
    wait_idle,
    worker_app,
)
from labapp.config import LAB_PROFILE, load_ebextensions
from labapp.errors import ConfigError


# -- 04 ------------------------------------------------------------------------------------------------
@register(
    "04.1",
    "Five tries, one second apart",
    (
        "MaxRetries becomes the queue's RedrivePolicy maxReceiveCount; ErrorVisibilityTimeout is the pause between tries.",
        "five_tries = LAB_PROFILE.replace(MaxRetries=5, ErrorVisibilityTimeout=1)",
    ),
)
def _check_04_1(a: Answers) -> str:
    options = a.options("five_tries")
    if options.ErrorVisibilityTimeout > 2 or options.MaxRetries > 10:
        raise NotYet(
            "keep ErrorVisibilityTimeout at about 1 s and MaxRetries small, so the check finishes in seconds."
        )
    with lessons.sandbox("04", options) as box:
        box.inject(error_rate=1.0, status=503)
        [mid] = box.send({"type": "order", "order_id": fresh_id("retry"), "amount": 1})
        wait_idle(box, timeout=options.MaxRetries * (options.ErrorVisibilityTimeout + 1) + 15)
        posts = len(lessons.stories(box, [mid])[mid].posts)
        in_dlq = mid in lessons.dead_letter_ids(box)
    if posts != 5:
        raise NotYet(
            f"the failing message was POSTed {posts} times before it moved to the DLQ; the goal is 5."
        )
    if not in_dlq:
        raise NotYet("the message did not reach the dead-letter queue.")
    return "five POSTs about a second apart, then SQS moved the message to the DLQ: MaxRetries became maxReceiveCount."


@register(
    "04.2",
    "Fix, then redrive",
    (
        "Order matters: a redrive before the fix sends the messages straight back to the DLQ.",
        "lab.heal() turns the injected failure off; lab.redrive() moves the DLQ's messages back.",
    ),
)
def _check_04_2(a: Answers) -> str:
    fix_and_redrive = a.function("fix_and_redrive")
    with lessons.sandbox("04", FAST_FAIL) as box:
        box.inject(error_rate=1.0, status=500)
        orders = [{"type": "order", "order_id": fresh_id("stuck"), "amount": n} for n in (1, 2, 3)]
        lessons.send_and_wait(box, orders, timeout=30)
        posts_before = sum(1 for e in box.events if e.kind == "posted")
        fix_and_redrive(box)
        wait_idle(box)
        posts_after = sum(1 for e in box.events if e.kind == "posted")
        healed = worker_app(box).extensions["lab.failures"].current.error_rate == 0
        dead = box.depth().dead_letter
        applied = [box.ledger.applied(f"order:{o['order_id']}") for o in orders]
    if all(applied) and dead == 0:
        return "the worker was fixed first, then the three orders came back from the DLQ and were processed once each."
    if posts_after == posts_before and not healed:
        raise NotAttempted(
            "fix_and_redrive changed nothing: the worker still fails and the orders sit in the DLQ."
        )
    if posts_after > posts_before and not healed:
        raise NotYet(
            "you redrove before fixing the worker: the orders failed again and went back to the DLQ."
        )
    raise NotYet(
        f"the worker is fixed, but {dead} orders are still in the DLQ; move them back with lab.redrive()."
    )


@register(
    "04.3",
    "Find the poison message",
    (
        "lab.dead_letters() peeks at the DLQ; each message's 'Body' is the JSON you sent.",
        "return [json.loads(m['Body'])['import_id'] for m in lab.dead_letters()]",
    ),
)
def _check_04_3(a: Answers) -> str:
    poison_ids = a.function("poison_ids")
    with lessons.sandbox("04", FAST_FAIL) as box:
        bad = {"type": "csv_import", "import_id": fresh_id("bad"), "csv": "sku,qty\nA1,3\nB2\n"}
        good = {"type": "csv_import", "import_id": fresh_id("good"), "csv": "sku,qty\nA1,3\n"}
        lessons.send_and_wait(box, [bad, good], timeout=30)
        got = poison_ids(box)
    if got is None:
        raise NotAttempted("poison_ids returned None.")
    if sorted(got) != [bad["import_id"]]:
        raise NotYet(
            f"poison_ids returned {list(got)!r}; the DLQ holds exactly one import (the one with the short row)."
        )
    return "you found the import with the broken row in the DLQ by reading the message bodies; the good import went through."


# -- 05 ------------------------------------------------------------------------------------------------
@register(
    "05.1",
    "Charge each order once",
    (
        "Decide by the business id (order_id), never by the message id: a producer's duplicate has a new message id.",
        "if done.add_if_new(f\"order:{data['order_id']}\"): payments.charge(data['order_id'], data['amount']); "
        "then return 200 either way: a duplicate is finished work.",
    ),
)
def _check_05_1(a: Answers) -> str:
    handler = a.function("handle_payment")
    payments = a.value("payments")
    with lessons.sandbox("05") as box:
        require_answer(box, handler, "handle_payment")
        lessons.install_handler(box, handler)
        first, second = fresh_id("order"), fresh_id("order")
        messages = [{"type": "order", "order_id": first, "amount": 20}] * 3
        ids = box.send([*messages, {"type": "order", "order_id": second, "amount": 5}])
        wait_idle(box)
        told = lessons.stories(box, ids)
    charged_first, charged_second = payments.count(first), payments.count(second)
    if charged_first > 1:
        raise NotYet(
            f"the order sent three times was charged {charged_first} times; key the work by order_id."
        )
    if charged_first == 0 or charged_second != 1:
        raise NotYet(
            "an order that arrived was never charged; charge it the first time you see its order_id."
        )
    if not all(story.deleted for story in told.values()) or len(told) != len(ids):
        raise NotYet("a duplicate was answered with an error, so it was retried; answer 200 for a duplicate.")
    return "the order sent three times was charged once, the other order once, and every copy was answered 200 and deleted."


@register(
    "05.2",
    "Keys for CSV rows",
    (
        "A good key is the same on every redelivery and different for every row, even for two identical rows.",
        "return [f\"{message['import_id']}:{n}\" for n in range(2, rows + 2)] where rows counts the data lines "
        "(the line number, not the row's content, identifies a row).",
    ),
)
def _check_05_2(a: Answers) -> str:
    row_keys = a.function("row_keys")
    sample = {"type": "csv_import", "import_id": fresh_id("imp"), "csv": "sku,qty\nA1,3\nA1,3\nB2,1\n"}
    keys = row_keys(sample)
    if keys is None:
        raise NotAttempted("row_keys returned None.")
    keys = list(keys)
    if len(keys) != 3:
        raise NotYet(f"the sample file has 3 rows (two identical); row_keys returned {len(keys)} keys.")
    if len(set(keys)) != 3:
        raise NotYet("two rows got the same key; identical rows are still two rows.")
    if list(row_keys(dict(sample))) != keys:
        raise NotYet(
            "the same message gave different keys the second time; a redelivery must give the same keys."
        )
    if set(row_keys(dict(sample, import_id=fresh_id("imp")))) & set(keys):
        raise NotYet("another import of the same file got the same keys; put the import_id in the key.")
    with lessons.sandbox("05") as box:
        lessons.install_handler(box, lambda: _import_with(row_keys))
        other = dict(sample, import_id=fresh_id("imp"))
        lessons.send_and_wait(box, [sample, sample, other])
        summary = box.ledger.summary()
    if summary != {"applied": 6, "deliveries": 9, "duplicates": 3}:
        raise NotYet(f"after importing a file twice and another once, the ledger says {summary}.")
    return "importing the same file twice changed nothing the second time, and a second import of the same rows was kept apart."


def _import_with(row_keys: Callable[[dict[str, Any]], Any]) -> Any:
    from flask import current_app, request

    data = json.loads(request.get_data())
    lessons._record(current_app, "csv_import", list(row_keys(data)))
    return "imported", 200


# -- 06 ------------------------------------------------------------------------------------------------
@register(
    "06.1",
    "Timeouts for a two-second job",
    (
        "InactivityTimeout must be longer than the job; VisibilityTimeout must outlast InactivityTimeout.",
        "safe_options = LAB_PROFILE.replace(InactivityTimeout=5, VisibilityTimeout=8)",
    ),
)
def _check_06_1(a: Answers) -> str:
    options = a.options("safe_options")
    with lessons.sandbox("06", options) as box:
        job = {"type": "thumbnail", "image_id": fresh_id("slow"), "sizes": [512], "work_ms": 2000}
        [mid] = lessons.send_and_wait(box, job, timeout=30)
        statuses = lessons.stories(box, [mid])[mid].statuses
    if statuses != [200]:
        what = "timed out" if None in statuses else "was POSTed again while it ran"
        raise NotYet(f"the job {what}: the daemon made {len(statuses)} POSTs answered {statuses}.")
    if options.VisibilityTimeout < options.InactivityTimeout:
        raise NotYet(
            "this job worked, but a job that runs up to InactivityTimeout would be received again while it runs: "
            "make VisibilityTimeout at least InactivityTimeout."
        )
    return (
        "one POST, answered in time, and a message that stays invisible for as long as the daemon may wait."
    )


@register(
    "06.2",
    "Split a long job",
    (
        "One message per size; each sub-job carries its share of the work.",
        "return [dict(job, sizes=[size], work_ms=job['work_ms'] // len(job['sizes'])) for size in job['sizes']]",
    ),
)
def _check_06_2(a: Answers) -> str:
    split_job = a.function("split_job")
    job = {
        "type": "thumbnail",
        "image_id": fresh_id("poster"),
        "sizes": [32, 64, 128, 256, 512, 1024],
        "work_ms": 3600,
    }
    parts = split_job(dict(job))
    if parts is None:
        raise NotAttempted("split_job returned None.")
    parts = list(parts)
    sizes = sorted(size for part in parts for size in part.get("sizes", []))
    if sizes != job["sizes"] or any(part.get("image_id") != job["image_id"] for part in parts):
        raise NotYet("the sub-jobs should cover each size of the same image exactly once.")
    if any(part.get("work_ms", 0) > 1000 for part in parts):
        raise NotYet("some sub-job still takes more than a second; give each one its share of work_ms.")
    options = LAB_PROFILE.replace(VisibilityTimeout=2, InactivityTimeout=2)
    with lessons.sandbox("06", options) as box:
        lessons.send_and_wait(box, parts, timeout=30)
        deliveries = box.ledger.deliveries()
        dead = box.depth().dead_letter
    keys = [f"thumbnail:{job['image_id']}:{size}" for size in job["sizes"]]
    if dead or any(deliveries.get(key) != 1 for key in keys):
        raise NotYet(
            f"with a 2 s visibility timeout some sub-job was delivered twice or failed: {deliveries}."
        )
    return "six short sub-jobs instead of one long one: each finished inside the 2 s timeouts and ran once."


@register(
    "06.3",
    "Enough connections for a flash sale",
    (
        "HttpConnections is how many POSTs the daemon keeps open at once (AWS default 50, range 1-100).",
        "sale_options = LAB_PROFILE.replace(HttpConnections=10)",
    ),
)
def _check_06_3(a: Answers) -> str:
    options = a.options("sale_options")
    with lessons.sandbox("06", options) as box:
        worker_app(box).extensions["lab.concurrency"].reset()
        orders = [
            {"type": "order", "order_id": fresh_id("sale"), "amount": 1, "work_ms": 500} for _ in range(20)
        ]
        started = time.monotonic()
        lessons.send_and_wait(box, orders, timeout=30)
        took = time.monotonic() - started
        peak = worker_app(box).extensions["lab.concurrency"].snapshot()["peak"]
    if took > 4:
        raise NotYet(
            f"20 orders of 0.5 s took {took:.1f} s with at most {peak} at once; allow more connections."
        )
    return "the flash sale drained in a few seconds because the daemon POSTed many orders at once."


# -- 09 ------------------------------------------------------------------------------------------------
@register(
    "09.1",
    "Name the cause",
    (
        "Look at three things in order: is the daemon receiving (lab.events)? What does the worker answer? "
        "Where do the messages end up (metrics, DLQ)?",
        "Every POST is answered 400 and the messages pile up in the DLQ: the worker rejects them.",
    ),
)
def _check_09_1(a: Answers) -> str:
    diagnosis = a.value("diagnosis")
    lab = a.lab
    actual = getattr(lab, "mystery", None)
    if actual is None:
        raise NotYet("no mystery is running in your lab; run the cell with lessons.start_mystery(lab) first.")
    if diagnosis not in lessons.CAUSES:
        raise NotYet(f"diagnosis should be one of {', '.join(lessons.CAUSES)}.")
    if diagnosis == actual:
        return "that is the one. " + lessons.CAUSES[actual]
    counts = lessons.outcome_counts(lab)
    evidence = {
        "daemon-stopped": f"the daemon is running and has received {counts.get('received', 0)} messages",
        "worker-hangs": "every POST got an answer quickly",
        "wrong-path": "the worker answered at the path it was given; look at what it answered",
        "worker-rejects": "",
    }
    raise NotYet(f"not that one: {evidence[diagnosis]} (daemon events: {counts}).")


@register(
    "09.2",
    "Fix it and recover the sale",
    (
        "Two steps, in this order: put a handler back that reads the raw body, then bring the orders back.",
        "lessons.restore_handler(lab); lab.redrive()",
    ),
)
def _check_09_2(a: Answers) -> str:
    fix = a.function("fix")
    with lessons.sandbox("09", FAST_FAIL) as box:
        ids = lessons.start_mystery(box)
        wait_idle(box)
        posts_before = sum(1 for e in box.events if e.kind == "posted")
        fix(box)
        wait_idle(box)
        posts_after = sum(1 for e in box.events if e.kind == "posted")
        applied = sum(box.ledger.applied(f"order:sale-{n}") for n in range(len(ids)))
        dead = box.depth().dead_letter
    if posts_after == posts_before and dead:
        raise NotAttempted("fix(lab) changed nothing: the orders are still in the DLQ.")
    if applied == len(ids) and dead == 0:
        return "the worker reads the raw body again, and every order of the sale came back from the DLQ and was processed."
    raise NotYet(
        f"{applied} of {len(ids)} orders were processed and {dead} are in the DLQ; fix first, then redrive."
    )


# -- 10 ------------------------------------------------------------------------------------------------
@register(
    "10.1",
    "Write the .ebextensions file",
    (
        "The namespace is aws:elasticbeanstalk:sqsd (one 'sqsd'), and the option names are the ones in the table above.",
        "option_settings:\\n  aws:elasticbeanstalk:sqsd:\\n    HttpPath: /worker\\n    HttpConnections: 10\\n    "
        "InactivityTimeout: 120\\n    VisibilityTimeout: 150\\n    MaxRetries: 5",
    ),
)
def _check_10_1(a: Answers) -> str:
    import tempfile

    text = a.value("config_text")
    if not isinstance(text, str):
        raise NotYet("config_text should be the file's text, as a string.")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sqsd.config"
        path.write_text(text, encoding="utf-8")
        try:
            options = load_ebextensions(path)
        except ConfigError as exc:
            raise NotYet(f"EB would not accept it: {exc}") from None
    wanted = {
        "HttpPath": "/worker",
        "HttpConnections": 10,
        "InactivityTimeout": 120,
        "VisibilityTimeout": 150,
        "MaxRetries": 5,
    }
    for name, value in wanted.items():
        if getattr(options, name) != value:
            raise NotYet(f"{name} is {getattr(options, name)!r}; the task asks for {value!r}.")
    with lessons.sandbox("10", options) as box:
        [mid] = lessons.send_and_wait(box, {"type": "order", "order_id": fresh_id("cfg"), "amount": 1})
        line = lessons.request_for(box, mid).request_line
    if not line.startswith("POST /worker "):
        raise NotYet(f"the daemon sent {line!r}.")
    return (
        "the kit's .ebextensions reader accepted the file, and a daemon configured from it POSTed to /worker."
    )


@register(
    "10.2",
    "The worker instance's permissions",
    (
        "Three SQS actions run the daemon; periodic tasks and metrics need three more things.",
        "Add sqs:SendMessage, cloudwatch:PutMetricData, and DynamoDB item actions (GetItem, PutItem, UpdateItem, "
        "DeleteItem) on the leader table, arn:aws:dynamodb:*:*:table/*-stack-AWSEBWorkerCronLeaderRegistry*.",
    ),
)
def _check_10_2(a: Answers) -> str:
    policy = a.value("worker_policy")
    if not isinstance(policy, Mapping) or "Statement" not in policy:
        raise NotYet("worker_policy should be a policy document: a dict with Version and Statement.")
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    for statement in statements:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") == "Allow" and any(action in ("*", "sqs:*") for action in actions):
            raise NotYet("one statement allows every action of a service; list the ones the worker needs.")
    gaps = lessons.iam_gaps(policy)
    if gaps:
        raise NotYet(
            "missing: " + "; ".join(f"{need} ({lessons.WORKER_IAM_NEEDS[need]})" for need in gaps) + "."
        )
    return "the role lets the daemon receive, delete and retry, the leader enqueue periodic tasks, and the daemon report metrics."
