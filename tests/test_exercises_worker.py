"""Notebooks 03-06: each exercise's solution passes, the tempting wrong answers are 'not yet' with what the
daemon saw, and the pictures and props the notebooks use behave.

Every check runs a private lab of its own (course.sandbox) on the session's SQS endpoint, so these
tests are slow; the answers are written here as a learner would write them.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest
from flask import request
from matplotlib.backends.backend_agg import FigureCanvasAgg

from labapp import course
from labapp.course import nb03 as props03
from labapp.course import nb04 as props04
from labapp.course import nb05 as props05
from labapp.course.checks import core as checks
from labapp.course.checks import nb03, nb04, nb05, nb06  # noqa: F401 - importing registers the checks
from labapp.course.handlers import process
from labapp.sqsd.options import LAB_PROFILE


@pytest.fixture(autouse=True)
def _endpoint(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks start their own labs on the session's endpoint, never on a learner's 4566."""
    monkeypatch.setenv("LAB_ENDPOINT_URL", emulator.url)
    monkeypatch.setenv("LAB_PROGRESS", "off")


def run(exercise_id: str, **namespace: Any) -> checks.Outcome:
    return checks.run_check(checks.REGISTRY[exercise_id], namespace)


def assert_not_yet(outcome: checks.Outcome, *says: str) -> None:
    assert outcome.status == checks.NOT_YET, outcome
    for words in says:
        assert words in outcome.reason, outcome


# -- 03 -------------------------------------------------------------------------------------------------
def handle_order_right() -> Any:
    try:
        process(json.loads(request.get_data()))
    except ValueError as exc:
        return f"bad message: {exc}", 400
    return "done", 200


def handle_order_unguarded() -> Any:
    process(json.loads(request.get_data()))  # a bad message raises, and Flask answers for you
    return "done", 200


@pytest.mark.slow
def test_03_1_a_handler_that_lets_flask_answer_hears_what_the_log_would_show() -> None:
    assert run("03.1", handle_order=handle_order_right).status == checks.CORRECT
    assert_not_yet(
        run("03.1", handle_order=handle_order_unguarded), "Flask answered 500 with its own error page"
    )


def handle_thumbnail_early() -> Any:
    """Answer 200 and leave the work to later (a timer stands in for the thread's work)."""
    threading.Timer(0.8, lambda: None).start()
    return "started", 200


@pytest.mark.slow
def test_03_2_a_200_before_the_work_is_caught_and_a_202_is_described() -> None:
    assert_not_yet(run("03.2", handle_thumbnail=handle_thumbnail_early), "before the thumbnails existed")
    outcome = run("03.2", handle_thumbnail=lambda: ("Accepted", 202))
    assert_not_yet(outcome, "still answers 202", "ended in the DLQ")


# -- 04 -------------------------------------------------------------------------------------------------
def test_04_1_the_lab_profile_calls_the_provider_too_soon() -> None:
    assert_not_yet(run("04.1", outage_options=LAB_PROFILE), "at least 2 s between calls")


@pytest.mark.slow
def test_04_1_too_few_retries_lose_the_order_and_enough_save_it() -> None:
    few = run("04.1", outage_options=LAB_PROFILE.replace(MaxRetries=2, ErrorVisibilityTimeout=2))
    assert_not_yet(few, "all inside the 3.5 s outage", "never charged")
    enough = run("04.1", outage_options=LAB_PROFILE.replace(MaxRetries=3, ErrorVisibilityTimeout=2))
    assert enough.status == checks.CORRECT, enough


def recover_backwards(lab: Any) -> None:
    lab.redrive()
    lab.heal()


def recover_right(lab: Any) -> None:
    lab.heal()
    lab.redrive()


@pytest.mark.slow
def test_04_2_a_redrive_before_the_fix_says_what_the_daemon_saw() -> None:
    assert_not_yet(
        run("04.2", recover=recover_backwards),
        "while the deploy still failed",
        "back to the DLQ",
        "afterwards",
    )
    assert run("04.2", recover=recover_right).status == checks.CORRECT
    assert run("04.2", recover=lambda lab: None).status == checks.NOT_ATTEMPTED


@pytest.mark.slow
def test_04_3_bringing_everything_back_returns_the_poison_to_the_dlq() -> None:
    assert_not_yet(run("04.3", worth_retrying=lambda message: True), "you brought back the", "400")
    by_type = run("04.3", worth_retrying=lambda m: json.loads(m["Body"])["type"] == "order")
    assert by_type.status == checks.NOT_YET, by_type
    right = run("04.3", worth_retrying=lambda m: props04.what_is_wrong(m) is None)
    assert right.status == checks.CORRECT, right


def test_what_is_wrong_uses_the_workers_rules() -> None:
    assert props04.what_is_wrong('{"type": "order", "order_id": "A", "amount": 3}') is None
    assert "header has 2" in str(
        props04.what_is_wrong(
            {"Body": json.dumps({"type": "csv_import", "import_id": "i", "csv": "sku,qty\nA1\n"})}
        )
    )
    assert "not valid JSON" in str(props04.what_is_wrong("SQSMessageBody=x"))


# -- 05 -------------------------------------------------------------------------------------------------
def payment_handler(key: Callable[[dict[str, Any]], str], copy_status: int = 200) -> dict[str, Any]:
    payments, done = props05.PaymentGateway(), props05.DoneStore()

    def handle_payment() -> Any:
        data = json.loads(request.get_data())
        if done.add_if_new(key(data)):
            payments.charge(data["order_id"], data["amount"])
            return "charged", 200
        return "already charged", copy_status

    return {"handle_payment": handle_payment, "payments": payments}


@pytest.mark.slow
def test_05_1_only_the_business_id_charges_each_order_once() -> None:
    right = run("05.1", **payment_handler(lambda data: f"order:{data['order_id']}"))
    assert right.status == checks.CORRECT, right
    by_body = payment_handler(lambda data: hashlib.sha256(json.dumps(data).encode()).hexdigest())
    assert_not_yet(run("05.1", **by_body), "charged 3 times")
    by_customer = payment_handler(lambda data: f"{data.get('customer')}:{data['amount']}")
    assert_not_yet(run("05.1", **by_customer), "never charged")
    refusing = payment_handler(lambda data: f"order:{data['order_id']}", copy_status=409)
    assert_not_yet(run("05.1", **refusing), "answered 409", "DLQ")


# -- 06 -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_06_1_the_lab_profile_runs_a_hung_report_twice_at_once() -> None:
    assert_not_yet(run("06.1", report_options=LAB_PROFILE), "while the daemon was still waiting")
    short = run("06.1", report_options=LAB_PROFILE.replace(InactivityTimeout=1, VisibilityTimeout=3))
    assert_not_yet(short, "gave up on the 1.5 s report")
    right = run("06.1", report_options=LAB_PROFILE.replace(InactivityTimeout=2, VisibilityTimeout=3))
    assert right.status == checks.CORRECT, right


def split_into(size: int, name: Callable[[dict[str, Any], int], str]) -> Callable[[dict[str, Any]], Any]:
    def split_import(job: dict[str, Any]) -> list[dict[str, Any]]:
        header, *rows = [line for line in job["csv"].splitlines() if line.strip()]
        starts = range(0, len(rows), size)
        return [
            dict(job, import_id=name(job, n), csv="\n".join([header, *rows[i : i + size]]))
            for n, i in enumerate(starts)
        ]

    return split_import


@pytest.mark.slow
def test_06_2_pieces_need_short_work_and_keys_that_survive_a_second_split() -> None:
    right = run("06.2", split_import=split_into(300, lambda job, n: f"{job['import_id']}-{n}"))
    assert right.status == checks.CORRECT, right
    fresh = run("06.2", split_import=split_into(300, lambda job, n: uuid.uuid4().hex))
    assert_not_yet(fresh, "new keys")
    shared = run("06.2", split_import=split_into(300, lambda job, n: job["import_id"]))
    assert_not_yet(shared, "same keys")
    whole = run("06.2", split_import=split_into(900, lambda job, n: f"{job['import_id']}-{n}"))
    assert_not_yet(whole, "InactivityTimeout")


@pytest.mark.slow
def test_06_3_the_unchanged_profile_is_too_slow_and_too_many_connections_are_refused() -> None:
    assert_not_yet(run("06.3", sale_options=LAB_PROFILE), "with at most 10 POSTs at once")
    assert_not_yet(run("06.3", sale_options=LAB_PROFILE.replace(HttpConnections=40)), "429")
    right = run("06.3", sale_options=LAB_PROFILE.replace(HttpConnections=20))
    assert right.status == checks.CORRECT, right


# -- the pictures and the two logs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def failed_run(emulator: Any) -> Iterator[tuple[course.Lab, str, str]]:
    """A lab with a transient failure (503, then 200) and a poison CSV in its DLQ."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_ENDPOINT_URL", emulator.url)
        lab = course.Lab(f"t04-{uuid.uuid4().hex[:6]}").start()
        try:
            lab.inject(error_rate=1.0, status=503)
            [flaky] = lab.send({"type": "order", "order_id": "C-77", "amount": 30})
            course.wait_for(lab, "retry_scheduled")
            lab.heal()
            [poison] = lab.send({"type": "csv_import", "import_id": "imp-42", "csv": "sku,qty\nA1,3\nB2\n"})
            lab.wait_until_idle()
            yield lab, flaky, poison
        finally:
            lab.stop()


@pytest.mark.slow
def test_plot_posts_gives_each_message_its_own_row_and_keeps_the_legend_off_them(
    failed_run: tuple[course.Lab, str, str],
) -> None:
    lab, flaky, poison = failed_run
    figure = course.plot_posts(lab, [flaky, poison], ["transient", "poison"])
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)  # lay out first: the legend's place is known only after a draw
    rows = figure.axes
    assert len(rows) == 2, "one row per message, so one run cannot hide the other"
    [legend] = figure.legends
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(axes.get_tightbbox(renderer)) for axes in rows)
    assert figure.bbox.contains(*box.p0) and figure.bbox.contains(*box.p1)
    assert [len(axes.lines) > 0 for axes in rows] == [True, True]
    assert round(figure.get_figwidth() * figure.dpi) == 820
    assert "1 moved to the DLQ" in repr(figure)


@pytest.mark.slow
def test_both_logs_print_the_apps_lines_and_sqsds_for_one_message(
    failed_run: tuple[course.Lab, str, str],
) -> None:
    lab, _, poison = failed_run
    out = io.StringIO()
    with redirect_stdout(out):
        props03.both_logs(lab, poison)
    app, _, daemon = out.getvalue().partition("sqsd's log")
    assert app.count(poison) == 3 and "header has 2" in app
    assert "http-err" in daemon and daemon.count(poison) >= 3


def test_plot_statuses_and_plot_effects_say_what_they_show() -> None:
    statuses = course.plot_statuses([(200, 1, "deleted"), (400, 3, "dead-letter queue")])
    assert "deleted after one POST: [200]" in repr(statuses)
    effects = course.plot_effects({"order:A": 3, "order:B": 1}, {"order:A": 1, "order:B": 1})
    assert repr(effects) == "2 business ids: 1 delivered more than once, 0 applied more than once."
    assert effects.legends and not effects.axes[0].get_legend()
