"""Notebook 11, incident drills: a shop's worker environment, and one hidden fault drawn from a seed.

The shop is the lab's own worker behind a reverse proxy (nginx on EB), with sqsd options of its
own. `start_drill(lab)` breaks it in one of seven ways, through the kit's real parts (the worker's
injected failures, its handler, the sqsd options, the proxy's timeout, the queue's RedrivePolicy),
and sends the shop's usual traffic. Which way depends only on the seed: `LAB_LEARNER`, or the
learner's user@host. Instructors see a seed's fault with `labapp drill SEED` or `fault_of_seed`.
Facts: docs/aws-behaviour.md#nginx-504, #nginx-fix, #status-202-redelivered, #no-dlq-cycles.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import threading
import weakref
from typing import Any

from flask import request

from labapp import settings
from labapp.course.handlers import install_handler, process, restore_handler
from labapp.course.lab import Lab
from labapp.errors import WaitTimeout
from labapp.runtime.proxy import NGINX_READ_TIMEOUT_S, ReverseProxy
from labapp.runtime.wait import wait_until
from labapp.sqs.queues import Depth, ensure_queues
from labapp.sqsd.options import LAB_PROFILE
from labapp.worker import state as worker_state
from labapp.worker.scenarios import perform, read_job
from labapp.worker.views import receive_count


class Fault(str, enum.Enum):
    """What can be wrong with the shop; a diagnosis is one of these."""

    WORKER_HANGS = "the worker hangs"
    WRONG_HTTP_PATH = "HttpPath is wrong"
    ANSWERS_202 = "the worker answers 202"
    SHORT_VISIBILITY = "VisibilityTimeout is shorter than the work"
    POISON_MESSAGE = "a poison message"
    PROXY_CUT_OFF = "the proxy cuts long jobs off"
    NO_DLQ = "the queue has no DLQ"

    def __str__(self) -> str:
        return self.value


# -- the shop ------------------------------------------------------------------------------------
#: The lab runs the shop's clocks this many times faster than AWS: one lab second stands for a minute.
SCALE = 60
#: The one path the shop's worker serves.
SHOP_PATH = "/orders"
#: A supplier's price list takes this long to import (150 s on AWS at SCALE).
IMPORT_MS = 2500
#: The shop's proxy_read_timeout, raised a little above InactivityTimeout (docs/aws-behaviour.md#nginx-fix).
PROXY_TIMEOUT_S = 4
#: The shop's sqsd options: the lab profile, its path, and a wait for answers longer than any job.
SHOP_OPTIONS = LAB_PROFILE.replace(HttpPath=SHOP_PATH, InactivityTimeout=3, VisibilityTimeout=5, MaxRetries=2)
#: What the old load-test script still sends now and then; nothing can read it, so it belongs in the DLQ.
STRAY = "ping from loadtest.sh"
#: How long Drill.wait() lets the incident play out at most.
DRILL_WINDOW_S = 15

# The faults' settings. nginx's 60 s default, scaled, is far below the imports' 2.5 s.
_TYPO_PATH = "/order"
_CUT_OFF_S = NGINX_READ_TIMEOUT_S / SCALE
_SHORT_VISIBILITY_S = 1

log = logging.getLogger("labapp.worker")

_proxies: weakref.WeakKeyDictionary[Lab, ReverseProxy] = weakref.WeakKeyDictionary()


def shop_handler() -> Any:
    """The shop's worker, its last good release: orders and price lists at POST /orders, 200 once done."""
    if request.path != SHOP_PATH:
        return f"no route for {request.path}", 404
    try:
        outcome = process(json.loads(request.get_data()))
    except ValueError as exc:  # not JSON, or a BadMessage: this message can never succeed
        return f"rejected: {exc}", 400
    return outcome, 200


def proxy(lab: Lab) -> ReverseProxy:
    """Return the proxy in front of the lab's worker (nginx on EB); its `read_timeout` can change live."""
    found = _proxies.get(lab)
    if found is None or not found.server.running:
        assert lab.worker is not None, "the lab is stopped; start it again"
        found = _proxies[lab] = lab.own(ReverseProxy(lab.worker.url, PROXY_TIMEOUT_S).start())
    return found


def _reopen(lab: Lab) -> None:
    """Stop the daemon and give the lab the shop's empty queues, handler and proxy; start nothing."""
    restore_handler(lab)
    lab.heal()  # first: a hung request would hold the daemon's drain
    lab.stop_daemon()
    lab.fresh_queues()
    # EB writes MaxRetries into the queue's RedrivePolicy; the shop's is not the lab profile's.
    lab.queues = ensure_queues(
        lab.sqs, lab.queues.name, SHOP_OPTIONS.MaxRetries, SHOP_OPTIONS.VisibilityTimeout
    )
    lab.state.reset()
    lab.events.clear()
    lab.sent_at.clear()
    lab.sqsd_log_path.write_text("")
    install_handler(lab, shop_handler)
    front = proxy(lab)
    front.read_timeout = PROXY_TIMEOUT_S
    assert lab.instance is not None
    lab.instance.front = front.url


def open_shop(lab: Lab) -> None:
    """Make the lab the shop's worker environment: its handler, a proxy in front, its sqsd options."""
    _reopen(lab)
    lab.start_daemon(options=SHOP_OPTIONS)
    print(
        f"The shop runs: worker at {SHOP_PATH} behind a proxy (proxy_read_timeout {PROXY_TIMEOUT_S} s), "
        f"HttpPath {SHOP_OPTIONS.HttpPath}, InactivityTimeout {SHOP_OPTIONS.InactivityTimeout} s, "
        f"VisibilityTimeout {SHOP_OPTIONS.VisibilityTimeout} s, MaxRetries {SHOP_OPTIONS.MaxRetries}."
    )


def traffic(wave: int = 1, text_amount: bool = False) -> list[Any]:
    """The shop's usual traffic: orders, two slow price lists and the load-test script's ping."""
    orders: list[Any] = [
        {"type": "order", "order_id": f"W-{wave}0{n}", "amount": 10 + 3 * n} for n in range(1, 7)
    ]
    if text_amount:  # the new checkout writes the amount as text
        orders[3]["amount"] = f"{orders[3]['amount']}.90"
    imports = [
        {
            "type": "csv_import",
            "import_id": f"P-{wave}{n}",
            "csv": "sku,price\nA-1,9.90\nB-2,4.50\n",
            "work_ms": IMPORT_MS,
        }
        for n in (1, 2)
    ]
    return [*orders[:3], imports[0], *orders[3:], imports[1], STRAY]


def send(lab: Lab, bodies: list[Any]) -> dict[str, Any]:
    """Send each body (a dict as JSON, text as it is); return message id -> body."""
    return dict(zip(lab.send(bodies), bodies, strict=True))


def send_usual_traffic(lab: Lab) -> list[str]:
    """Send the shop's usual traffic; return the message ids."""
    return list(send(lab, traffic()))


# -- what normal looks like ----------------------------------------------------------------------
PING: dict[str, Any] = {
    "qid": "11.p1",
    "question": (
        "The load-test script's ping is not JSON, so the shop's worker answers 400 to it. The shop runs "
        "with MaxRetries 2. How many POSTs does the ping get, and where is it at the end of the hour?"
    ),
    "choices": {
        "one POST: a 4xx tells sqsd not to retry, so it is deleted": (
            "sqsd retries every answer but 200, 4xx included (docs/aws-behaviour.md#status-other-retried); "
            "and it deletes a message only after a 200."
        ),
        "two POSTs, then it waits in the DLQ": (
            "Each 400 is a failure; the receive after the second moves the ping to the DLQ, where it waits "
            "for a person, by the queue's RedrivePolicy."
        ),
        "two POSTs, then the daemon deletes it": (
            "The daemon never deletes a message it could not deliver; SQS moves it to the DLQ once its "
            "receives pass maxReceiveCount."
        ),
        "a POST every second until RetentionPeriod drops it": (
            "That is what happens on a queue without a DLQ. The shop's queue has one, with maxReceiveCount "
            "set from MaxRetries."
        ),
    },
    "answer": "two POSTs, then it waits in the DLQ",
}


# -- your drill ----------------------------------------------------------------------------------
# A shuffled cycle, so seats numbered 1, 2, 3, ... (LAB_LEARNER) get seven different faults in a row.
_ROTA = (
    Fault.SHORT_VISIBILITY,
    Fault.WRONG_HTTP_PATH,
    Fault.POISON_MESSAGE,
    Fault.WORKER_HANGS,
    Fault.NO_DLQ,
    Fault.ANSWERS_202,
    Fault.PROXY_CUT_OFF,
)
_SALT = "worker-tier-lab drill 1"


def fault_of_seed(seed: str) -> Fault:
    """Return the fault a drill seed holds (for instructors: the learner's seed is in their drill cell)."""
    text = str(seed).strip()
    if text.isdigit():
        return _ROTA[int(text) % len(_ROTA)]
    digest = hashlib.sha256(f"{_SALT}:{text}".encode()).digest()
    return _ROTA[int.from_bytes(digest[:8], "big") % len(_ROTA)]


def is_quiet(lab: Lab) -> bool:
    """True when nothing is visible, delayed or in flight in the queue, and the daemon POSTs nothing."""
    now = lab.depth()
    busy = lab.daemon is not None and lab.daemon.in_flight > 0
    return now.visible == 0 and now.in_flight == 0 and now.delayed == 0 and not busy


@dataclasses.dataclass
class Drill:
    """One drill: its seed and what the shop sent (message id -> body)."""

    seed: str
    lab: Lab = dataclasses.field(repr=False)
    sent: dict[str, Any] = dataclasses.field(repr=False)

    def __repr__(self) -> str:
        return f"<Drill {self.seed!r}: {len(self.sent)} messages sent to the shop>"

    def wait(self, timeout: float = DRILL_WINDOW_S) -> Depth:
        """Wait until the shop is quiet (nothing visible or in flight), at most `timeout` s; print the depth."""
        lab = self.lab
        try:
            wait_until(lambda: is_quiet(lab), timeout, "the shop to go quiet", interval=0.2)
            print("The shop's queue is quiet:", lab.depth())
        except WaitTimeout:
            print(f"After {timeout:g} s the shop is still busy:", lab.depth())
        return lab.depth()


def _answers_early() -> Any:
    """Release 42 of the shop's worker: the work goes to a thread, and the answer comes at once."""
    data = json.loads(request.get_data())
    ledger = worker_state.current().ledger
    message_id, count = request.headers.get("X-Aws-Sqsd-Msgid"), receive_count()

    def work() -> None:
        try:
            perform(read_job(data), ledger, message_id, count)
        except ValueError as exc:  # nobody hears of it but the log: the answer was already sent
            log.warning("worker: background work on %s failed: %s", message_id, exc)

    threading.Thread(target=work, name="background-work", daemon=True).start()
    return "accepted", 202


_answers_early.__name__ = shop_handler.__name__  # as a deploy would: same name, new code


def _break(lab: Lab, fault: Fault) -> Any:
    """Break the shop the way `fault` says; return the sqsd options to run with."""
    options = SHOP_OPTIONS
    if fault is Fault.WORKER_HANGS:
        lab.inject(hang=True)
    elif fault is Fault.WRONG_HTTP_PATH:
        options = options.replace(HttpPath=_TYPO_PATH)
    elif fault is Fault.ANSWERS_202:
        install_handler(lab, _answers_early)
    elif fault is Fault.SHORT_VISIBILITY:
        options = options.replace(VisibilityTimeout=_SHORT_VISIBILITY_S)
    elif fault is Fault.PROXY_CUT_OFF:
        proxy(lab).read_timeout = _CUT_OFF_S
    elif fault is Fault.NO_DLQ:
        # Like a queue of your own that nobody gave a DLQ (docs/aws-behaviour.md#dlq-own-queue).
        lab.sqs.set_queue_attributes(QueueUrl=lab.queues.url, Attributes={"RedrivePolicy": ""})
    return options


def start_drill(lab: Lab, seed: str | None = None, quiet: bool = False) -> Drill:
    """Break the shop in the way your seed (LAB_LEARNER, or user@host) says, and send its usual traffic."""
    seed = str(seed) if seed is not None else settings.learner()
    fault = fault_of_seed(seed)
    _reopen(lab)
    lab.start_daemon(options=_break(lab, fault))
    sent = send(lab, traffic(1, text_amount=fault is Fault.POISON_MESSAGE))
    if not quiet:
        print(
            f"Drill {seed!r}: the shop's usual {len(sent)} messages are on their way, and something in the "
            "shop is not right. Find out what from the evidence."
        )
    return Drill(seed, lab, sent)
