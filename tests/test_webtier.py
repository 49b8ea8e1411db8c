"""The web tier against the real endpoint and real HTTP on loopback: its two endpoints, the load generator, the plots."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib
import pytest
import requests
from flask import Flask, Response, request

from labapp.runtime.servers import HttpServer
from labapp.sqs import MAX_MESSAGE_BYTES, QueuePair, SqsClient, depth
from labapp.webtier import (
    REQUEST_ID_ATTRIBUTE,
    REQUEST_ID_HEADER,
    LoadResult,
    Outcome,
    create_app,
    flash_sale,
    format_seconds,
    load_test,
    of,
    order_bodies,
    percentile,
    plot_flash_sale,
    plot_latency,
    schedule,
    serve,
)
from labapp.webtier.plots import log_ticks
from labapp.worker import state as worker_state

matplotlib.use("Agg")


@pytest.fixture
def make_web(sqs: SqsClient, tmp_path: Path) -> Iterator[Callable[..., HttpServer]]:
    """Serve a web tier app on a free loopback port; each one started is stopped and closed in teardown."""
    started: list[tuple[HttpServer, Flask]] = []

    def make(queue_url: str, **kwargs: Any) -> HttpServer:
        kwargs.setdefault("ledger_path", tmp_path / f"web-{len(started)}.sqlite")
        app = create_app(sqs, queue_url, **kwargs)
        server = serve(app).start()
        started.append((server, app))
        return server

    yield make
    for server, app in started:
        server.stop()
        of(app).close()


def receive_all(sqs: SqsClient, queue_url: str) -> list[dict[str, Any]]:
    reply = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )
    return list(reply.get("Messages", []))


# -- the two endpoints -------------------------------------------------------------------------
def test_the_sync_endpoint_holds_the_customer_for_the_work_and_counts_an_order_once(
    queues: QueuePair, make_web: Callable[..., HttpServer]
) -> None:
    web = make_web(queues.url)
    order = {"type": "order", "order_id": "A1", "amount": 12.5, "work_ms": 300}
    started = time.perf_counter()
    first = requests.post(f"{web.url}/orders/sync", json=order, timeout=10)
    took = time.perf_counter() - started
    again = requests.post(f"{web.url}/orders/sync", json=order, timeout=10)

    assert first.status_code == 200, first.text
    assert took >= 0.3
    assert first.json()["result"] == "applied"
    assert (again.status_code, again.json()["result"]) == (200, "duplicate")
    assert of(web.app).ledger.applications() == {"order:A1": 1}
    assert requests.get(f"{web.url}/orders/A1", timeout=5).json()["status"] == "applied"


def test_the_async_endpoint_answers_202_at_once_and_queues_the_body_byte_for_byte(
    sqs: SqsClient, queues: QueuePair, make_web: Callable[..., HttpServer]
) -> None:
    web = make_web(queues.url)
    # Odd spacing, key order and an escaped accent: any re-encoding would change these bytes.
    body = '{ "order_id":"B7",  "type": "order", "amount": 3, "work_ms": 1000, "note": "caf\\u00e9" }'
    requests.post(f"{web.url}/orders/async", data=body, timeout=10)  # a first connection, warmed up
    started = time.perf_counter()
    reply = requests.post(
        f"{web.url}/orders/async", data=body, headers={REQUEST_ID_HEADER: "req-42"}, timeout=10
    )
    took = time.perf_counter() - started

    assert reply.status_code == 202, reply.text
    assert took < 0.25, f"the async endpoint took {took * 1000:.0f} ms; it must not do the 1000 ms of work"
    answer = reply.json()
    assert answer["status_url"] == f"{web.url}/orders/B7" == reply.headers["Location"]
    assert reply.headers[REQUEST_ID_HEADER] == "req-42"
    messages = {m["MessageId"]: m for m in receive_all(sqs, queues.url)}
    message = messages[answer["message_id"]]
    assert message["Body"] == body
    assert message["MessageAttributes"][REQUEST_ID_ATTRIBUTE]["StringValue"] == "req-42"
    assert requests.get(answer["status_url"], timeout=5).json()["status"] == "queued"
    assert of(web.app).ledger.applications() == {}


def test_the_status_turns_applied_once_the_worker_has_done_the_order(
    queues: QueuePair,
    make_web: Callable[..., HttpServer],
    worker: HttpServer,
    run_daemon: Callable[..., Any],
    tmp_path: Path,
    wait_for: Callable[..., Any],
) -> None:
    # The worker fixture keeps its ledger at tmp_path / "ledger.sqlite".
    web = make_web(queues.url, worker_ledger_path=tmp_path / "ledger.sqlite")
    reply = requests.post(
        f"{web.url}/orders/async", json={"type": "order", "order_id": "C3", "amount": 1}, timeout=10
    )
    status_url = reply.json()["status_url"]
    assert requests.get(status_url, timeout=5).json()["status"] == "queued"
    run_daemon(queues.url, worker.url)

    def applied() -> bool:
        return requests.get(status_url, timeout=5).json()["status"] == "applied"

    wait_for(applied, timeout=15)
    posted = [r for r in worker_state.of(worker.app).inspector.last() if r.path == "/"]
    assert posted[-1].header(f"X-Aws-Sqsd-Attr-{REQUEST_ID_ATTRIBUTE}") == reply.headers[REQUEST_ID_HEADER]


BAD_ORDERS = [
    (b"", "body is empty"),
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b"\xff\xfe", "not valid UTF-8"),
    (b'{"type": "thumbnail", "image_id": "x"}', "takes orders"),
    (b'{"type": "order", "amount": 1}', "'order_id'"),
    (b'{"type": "order", "order_id": "D", "amount": -1}', "'amount'"),
    (b'{"type": "order", "order_id": "D", "amount": 1, "work_ms": 99999999}', "work_ms"),
    # U+FFFF itself, not its JSON escape: valid UTF-8 and valid JSON, but not a character SQS takes.
    ('{"type": "order", "order_id": "D", "amount": 1, "x": "\uffff"}'.encode(), "SQS does not allow"),
]


@pytest.mark.parametrize("endpoint", ["sync", "async"])
@pytest.mark.parametrize("body, reason", BAD_ORDERS, ids=[reason for _, reason in BAD_ORDERS])
def test_a_bad_order_gets_400_with_one_reason_and_is_not_queued(
    sqs: SqsClient,
    queues: QueuePair,
    make_web: Callable[..., HttpServer],
    endpoint: str,
    body: bytes,
    reason: str,
) -> None:
    web = make_web(queues.url)
    reply = requests.post(f"{web.url}/orders/{endpoint}", data=body, timeout=10)
    if endpoint == "sync" and reason == "SQS does not allow":
        # Only the queue refuses that character; done in the request, the order is fine.
        assert reply.status_code == 200, reply.text
        return
    assert reply.status_code == 400, reply.text
    assert reason in reply.json()["error"]
    assert "Traceback" not in reply.text
    assert depth(sqs, queues).visible == 0


def test_the_web_tier_refuses_in_json_what_flask_refuses(
    queues: QueuePair, make_web: Callable[..., HttpServer]
) -> None:
    web = make_web(queues.url)
    too_big = b'{"type": "order", "order_id": "E", "amount": 1, "pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}'
    answers = {
        404: requests.get(f"{web.url}/orders/never-taken", timeout=5),
        405: requests.put(f"{web.url}/orders/sync", timeout=5),
        413: requests.post(f"{web.url}/orders/async", data=too_big, timeout=10),
    }
    for code, reply in answers.items():
        assert reply.status_code == code
        assert reply.json()["error"]


def test_a_default_work_time_out_of_range_is_refused_when_the_app_is_built(
    sqs: SqsClient, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="work_ms must be"):
        create_app(sqs, "http://unused", ledger_path=tmp_path / "l.sqlite", work_ms=-1)


def test_a_queue_that_cannot_take_the_order_gives_503_not_a_traceback(
    queues: QueuePair, make_web: Callable[..., HttpServer]
) -> None:
    web = make_web(queues.url.rsplit("/", 1)[0] + "/no-such-queue")
    reply = requests.post(
        f"{web.url}/orders/async", json={"type": "order", "order_id": "F", "amount": 1}, timeout=10
    )
    assert reply.status_code == 503
    assert "the queue did not take the order" in reply.json()["error"]


# -- the load generator ------------------------------------------------------------------------
def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert [percentile(values, q) for q in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert percentile([7.0], 99) == 7
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 0)


def test_a_load_result_reports_its_figures() -> None:
    outcomes = [Outcome(n * 0.1, (n + 1) / 1000, 200) for n in range(98)]
    outcomes += [Outcome(9.8, 5.0, None, error="ReadTimeout"), Outcome(9.9, 0.2, 503)]
    result = LoadResult(tuple(outcomes), wall_s=10.0)
    assert (result.p50, result.p90, result.p99, result.max) == (0.05, 0.09, 0.2, 5.0)
    assert result.errors == 2
    assert result.statuses == {200: 98, None: 1, 503: 1}
    assert result.throughput_per_s == pytest.approx(9.9)
    assert result.summary()["p99_ms"] == 200.0


def test_a_schedule_is_steady() -> None:
    due = schedule(30, 3)
    assert len(due) == 90 and due[0] == 0 and due[-1] < 3
    assert all(b - a == pytest.approx(1 / 30) for a, b in itertools.pairwise(due))
    assert schedule(10, 0.25) == [0.0, 0.1]
    with pytest.raises(ValueError, match="above 0"):
        schedule(0, 1)


class Sleeper:
    """A loopback app that sleeps the body's number of milliseconds, counting connections and concurrency."""

    def __init__(self) -> None:
        self.app = Flask("sleeper")
        self.ports: set[str] = set()
        self.now = self.peak = 0
        self.lock = threading.Lock()
        self.app.add_url_rule("/", view_func=self.sleep, methods=["POST"])

    def sleep(self) -> Response:
        with self.lock:
            self.ports.add(request.environ["REMOTE_PORT"])
            self.now += 1
            self.peak = max(self.peak, self.now)
        threading.Event().wait(float(request.get_data()) / 1000)
        with self.lock:
            self.now -= 1
        return Response("slept")


@pytest.fixture
def sleeper() -> Iterator[tuple[Sleeper, str]]:
    app = Sleeper()
    with HttpServer(app.app, threads=32) as server:
        yield app, server.url


def test_the_load_test_measures_known_latencies_on_kept_alive_connections(
    sleeper: tuple[Sleeper, str],
) -> None:
    app, url = sleeper
    # Nine requests in ten sleep 5 ms and the tenth 200 ms: p50 and p90 are short, p99 is long.
    result = load_test(url, lambda n: "200" if n % 10 == 9 else "5", clients=4, requests_per_client=25)
    assert len(result.outcomes) == 100 and result.errors == 0
    assert 0.005 <= result.p50 < 0.1
    assert 0.005 <= result.p90 < 0.1
    assert 0.2 <= result.p99 < 1.0
    assert 0.2 <= result.max < 1.0
    assert result.throughput_per_s > 10
    assert len(app.ports) == 4, "each client keeps one connection alive"


def test_a_flash_sale_sends_on_schedule_whatever_the_answers(sleeper: tuple[Sleeper, str]) -> None:
    app, url = sleeper
    reads: list[int] = []
    result = flash_sale(
        url, ["300"], rate_per_s=20, seconds=1, clients=32, probe=lambda: reads.append(1) or len(reads),
        probe_every_s=0.1, observe_after_s=0.5,
    )  # fmt: skip
    assert [o.due_s for o in result.outcomes] == schedule(20, 1)
    assert max(o.waited_s for o in result.outcomes) < 0.15
    assert result.errors == 0 and min(result.latencies_s) >= 0.3
    # Closed, 20 requests of 300 ms from one client would take 6 s; open, they overlap.
    assert result.wall_s < 2.5
    assert app.peak >= 4
    times = [t for t, _ in result.probes]
    assert times == sorted(times) and times[-1] >= result.wall_s + 0.4


def test_a_flash_sale_counts_the_wait_for_a_free_client_in_the_latency(sleeper: tuple[Sleeper, str]) -> None:
    app, url = sleeper
    result = flash_sale(url, ["300"], rate_per_s=20, seconds=0.5, clients=2)
    assert app.peak <= 2
    # Two clients serve 6.7 requests a second; the tenth customer, due at 0.45 s, is sent near 1.2 s.
    assert max(o.waited_s for o in result.outcomes) > 0.5
    assert all(o.latency_s >= o.waited_s + 0.3 for o in result.outcomes)


def test_in_a_flash_sale_the_sync_p99_grows_far_above_the_async_one(
    sqs: SqsClient, queues: QueuePair, make_web: Callable[..., HttpServer]
) -> None:
    web = make_web(queues.url)  # four threads: the sync endpoint serves 20 orders of 200 ms a second
    runs = {
        name: flash_sale(
            f"{web.url}/orders/{name}",
            order_bodies(name, work_ms=200),
            rate_per_s=30,
            seconds=2,
            probe=lambda: depth(sqs, queues).visible,
        )
        for name in ("sync", "async")
    }
    sync, later = runs["sync"], runs["async"]
    assert sync.errors == later.errors == 0
    assert sync.p99 > 0.6, sync.summary()
    assert later.p99 < sync.p99 / 5, (later.summary(), sync.summary())
    assert max(v for _, v in later.probes) == 60  # no worker runs, so every order waits in the queue
    assert max(v for _, v in sync.probes) == 0


# -- the plots ---------------------------------------------------------------------------------
def test_durations_read_plainly() -> None:
    assert [format_seconds(s) for s in (0, 0.0005, 0.03, 0.0025, 0.2, 1.5, 3)] == [
        "0", "500 µs", "30 ms", "2.5 ms", "200 ms", "1.5 s", "3 s",
    ]  # fmt: skip
    assert log_ticks(0.004, 1.7) == pytest.approx([0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2])


def _result(latencies: list[float], probes: tuple[tuple[float, float], ...] = ()) -> LoadResult:
    return LoadResult(tuple(Outcome(n * 0.05, s, 202) for n, s in enumerate(latencies)), 3.0, probes)


def _check_layout(fig: Any) -> None:
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    try:
        assert fig.get_size_inches()[0] * fig.dpi == 900
        legend = fig.legends[0].get_window_extent()
        for ax in fig.axes:
            assert not legend.overlaps(ax.get_window_extent()), "the legend covers an axes"
            labels = [t.get_text() for t in ax.get_yticklabels()]
            assert not any("$" in t or "10^" in t or "×" in t for t in labels), labels
            assert ax.get_ylabel()
    finally:
        plt.close(fig)


def test_latency_bars_turn_logarithmic_only_when_needed_with_plain_labels() -> None:
    wide = plot_latency({"sync": _result([1.0, 1.5, 2.0] * 10), "async": _result([0.004, 0.006, 0.02] * 10)})
    assert wide.axes[0].get_yscale() == "log"
    assert "500 ms" in [t.get_text() for t in wide.axes[0].get_yticklabels()]
    _check_layout(wide)
    narrow = plot_latency({"sync": _result([0.3, 0.4]), "async": _result([0.05, 0.08])})
    assert narrow.axes[0].get_yscale() == "linear"
    _check_layout(narrow)


def test_the_flash_sale_plot_has_the_queue_depth_on_a_second_axis_with_units() -> None:
    fig = plot_flash_sale(
        {
            "sync": _result([0.2 + n / 50 for n in range(60)]),
            "async": _result([0.01] * 60, ((0, 0), (1, 20), (5, 0))),
        }
    )
    latency, queue = fig.axes
    assert latency.get_xlabel().endswith("(s)")
    assert "(messages)" in queue.get_ylabel()
    assert latency.get_xlim()[1] >= 5, "the view covers what the probe saw after the sale"
    _check_layout(fig)
