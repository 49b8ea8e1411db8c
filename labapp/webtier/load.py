"""A small load generator: clients in a closed loop, or customers arriving on a schedule (open loop).

In `load_test` each of N clients sends its next request as soon as its last one is answered, as a
benchmark tool does: a slow server slows the clients down, so it is never offered more than N
requests at once. In `flash_sale` requests fall due on a schedule whatever happened to the earlier
ones, as customers arrive at a shop; a slow server then faces a growing crowd. A request's latency
counts from when it fell due, so time spent waiting for a free client counts too, as it does for a
customer (load testers call leaving it out "coordinated omission").

Every client is a thread with one `requests.Session`, so connections are kept alive between requests.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import requests

log = logging.getLogger("labapp.webtier")

Body = str | bytes
Bodies = Sequence[Body] | Callable[[int], Body]
Clock = Callable[[], float]
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One request: when it fell due, how long its customer waited, and the answer."""

    #: Seconds from the start of the run to when the request fell due (was sent, in a closed loop).
    due_s: float
    #: Seconds from falling due to the answer, or to the failure.
    latency_s: float
    #: The HTTP status, or None when no answer came (refused, reset or timed out).
    status: int | None
    #: Seconds the request waited for a free client before it was sent (open loop only).
    waited_s: float = 0.0
    #: The exception's name when no answer came.
    error: str = ""

    @property
    def ok(self) -> bool:
        """True for an answer with a 2xx status."""
        return self.status is not None and 200 <= self.status < 300


def percentile(values: Sequence[float], q: float) -> float:
    """Return the nearest-rank q-th percentile: the smallest value with q% of the values at or below it."""
    if not values:
        raise ValueError("there are no values to take a percentile of")
    if not 0 < q <= 100:
        raise ValueError(f"q must be above 0 and at most 100; got {q!r}")
    ordered = sorted(values)
    # Rounded first, so that 90% of 100 is rank 90 and not 91 through a floating-point crumb.
    rank = math.ceil(round(q * len(ordered) / 100, 9))
    return ordered[max(rank, 1) - 1]


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """Every request of one run, and what a probe (a queue's depth, say) read while it ran."""

    outcomes: tuple[Outcome, ...]
    #: Seconds from the start of the run to its last answer.
    wall_s: float
    #: (seconds since the start, value) pairs from the run's probe, if it had one.
    probes: tuple[tuple[float, float], ...] = ()

    @property
    def latencies_s(self) -> list[float]:
        """Return each request's latency in seconds, in the order the requests fell due."""
        return [o.latency_s for o in sorted(self.outcomes, key=lambda o: o.due_s)]

    def percentile(self, q: float) -> float:
        """Return the q-th percentile of the latencies in seconds (nearest rank)."""
        return percentile([o.latency_s for o in self.outcomes], q)

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def max(self) -> float:
        return self.percentile(100)

    @property
    def errors(self) -> int:
        """Return how many requests got no answer or an answer outside 2xx."""
        return sum(not o.ok for o in self.outcomes)

    @property
    def statuses(self) -> dict[int | None, int]:
        """Return status -> how many requests got it (None: no answer)."""
        return dict(collections.Counter(o.status for o in self.outcomes))

    @property
    def throughput_per_s(self) -> float:
        """Return the answers per second over the run."""
        answered = sum(o.status is not None for o in self.outcomes)
        return answered / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict[str, float]:
        """Return the run's figures: requests, errors, throughput and latency percentiles in ms."""
        return {
            "requests": len(self.outcomes),
            "errors": self.errors,
            "requests_per_s": round(self.throughput_per_s, 1),
            **{f"{name}_ms": round(self.percentile(q) * 1000, 1) for name, q in PERCENTILES.items()},
            "max_ms": round(self.max * 1000, 1),
        }


#: The percentiles the lab reports and plots.
PERCENTILES: Mapping[str, float] = {"p50": 50, "p90": 90, "p99": 99}


def schedule(rate_per_s: float, seconds: float) -> list[float]:
    """Return when each request of a steady rate falls due, in seconds from the start."""
    if not rate_per_s > 0 or not seconds > 0:
        raise ValueError(f"rate_per_s and seconds must be above 0; got {rate_per_s!r} and {seconds!r}")
    count = math.floor(round(rate_per_s * seconds, 9))
    return [n / rate_per_s for n in range(count)]


def _body_source(bodies: Bodies) -> Callable[[int], Body]:
    if callable(bodies):
        return bodies
    fixed = list(bodies)
    if not fixed:
        raise ValueError("bodies is empty; give at least one body, or a function of the request number")
    return lambda n: fixed[n % len(fixed)]


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1; got {value!r}")


class _Sessions:
    """One requests.Session per thread, all closed at the end."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            for session in self._all:
                session.close()
            self._all.clear()


def _post(
    session: requests.Session, url: str, body: Body, headers: Mapping[str, str], timeout: float
) -> tuple[int | None, str]:
    try:
        response = session.post(url, data=body, headers=dict(headers), timeout=timeout)
    except requests.RequestException as exc:
        return None, type(exc).__name__
    # Read to the end, so that the connection goes back to the session's pool for the next request.
    _ = response.content
    return response.status_code, ""


def load_test(
    url: str,
    bodies: Bodies,
    *,
    clients: int = 4,
    requests_per_client: int = 10,
    timeout: float = 10.0,
    headers: Mapping[str, str] = JSON_HEADERS,
    clock: Clock = time.perf_counter,
) -> LoadResult:
    """POST to url from `clients` concurrent clients, each sending `requests_per_client` one after another.

    `bodies` is a list (request n sends bodies[n % len]) or a function of the request number n,
    from 0 to clients * requests_per_client - 1; `timeout` is each request's, in seconds; `clock`
    is what latencies are read from.
    """
    _positive("clients", clients)
    _positive("requests_per_client", requests_per_client)
    body_for = _body_source(bodies)
    sessions = _Sessions()
    found: list[list[Outcome]] = [[] for _ in range(clients)]
    started = clock()

    def client(index: int) -> None:
        session = sessions.get()
        for k in range(requests_per_client):
            sent = clock()
            status, error = _post(session, url, body_for(index * requests_per_client + k), headers, timeout)
            found[index].append(Outcome(sent - started, clock() - sent, status, error=error))

    threads = [
        threading.Thread(target=client, args=(i,), name=f"load-client-{i}", daemon=True)
        for i in range(clients)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sessions.close()
    return LoadResult(tuple(o for outcomes in found for o in outcomes), clock() - started)


def flash_sale(
    url: str,
    bodies: Bodies,
    *,
    rate_per_s: float,
    seconds: float,
    clients: int = 32,
    timeout: float = 10.0,
    headers: Mapping[str, str] = JSON_HEADERS,
    probe: Callable[[], float] | None = None,
    probe_every_s: float = 0.25,
    observe_after_s: float = 0.0,
    clock: Clock = time.perf_counter,
) -> LoadResult:
    """POST to url at a steady rate for `seconds`, each request on time whether or not earlier ones are answered.

    `bodies` is a list or a function of the request number; `rate_per_s` requests fall due each
    second; at most `clients` are in flight at once (a request due while all are busy waits, and
    its wait counts in its latency); `timeout` is each request's, in seconds. `probe` (for
    example the queue's depth) is read every `probe_every_s` from the start until
    `observe_after_s` after the last answer, so the result also shows what came after the sale.
    """
    _positive("clients", clients)
    if not probe_every_s > 0 or observe_after_s < 0:
        raise ValueError("probe_every_s must be above 0 and observe_after_s at least 0")
    due = schedule(rate_per_s, seconds)
    body_for = _body_source(bodies)
    sessions = _Sessions()
    found: list[Outcome] = []
    found_lock = threading.Lock()
    pacer = threading.Event()  # never set: its wait() is the pause between requests
    done = threading.Event()
    started = clock()

    def customer(n: int, due_s: float) -> None:
        sent = clock()
        status, error = _post(sessions.get(), url, body_for(n), headers, timeout)
        answered = clock()
        outcome = Outcome(due_s, answered - started - due_s, status, sent - started - due_s, error)
        with found_lock:
            found.append(outcome)

    samples: list[tuple[float, float]] = []
    watcher = None
    if probe is not None:
        watcher = threading.Thread(
            target=_watch, args=(probe, probe_every_s, done, samples, clock, started), name="flash-sale-probe"
        )
        watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="flash-sale") as pool:
            for n, due_s in enumerate(due):
                delay = started + due_s - clock()
                if delay > 0:
                    pacer.wait(delay)
                pool.submit(customer, n, due_s)
        wall_s = clock() - started
        if watcher is not None:
            pacer.wait(observe_after_s)
    finally:
        done.set()
        if watcher is not None:
            watcher.join()
        sessions.close()
    return LoadResult(tuple(sorted(found, key=lambda o: o.due_s)), wall_s, tuple(samples))


def _watch(
    probe: Callable[[], float],
    every_s: float,
    done: threading.Event,
    samples: list[tuple[float, float]],
    clock: Clock,
    started: float,
) -> None:
    """Read the probe every `every_s` until done is set, and once more then."""
    while True:
        finished = done.is_set()
        try:
            samples.append((clock() - started, float(probe())))
        except Exception as exc:  # a learner's probe may fail any way; the sale goes on without it
            log.warning("webtier: the flash sale's probe failed (%s); this sample is skipped", exc)
        if finished:
            return
        done.wait(every_s)
