"""Notebook 01, queues and messages: a web tier in front of the lab's queue, stopped with the lab."""

from __future__ import annotations

import dataclasses

from flask import Flask

from labapp import webtier
from labapp.course.lab import Lab
from labapp.runtime.servers import HttpServer
from labapp.worker.ledger import Ledger

__all__ = ["WORK_MS", "WebTierRun", "start_web_tier"]

#: How long one order's work takes in notebook 01, in either tier: long enough to see, short
#: enough that the notebook runs in seconds.
WORK_MS = 100


@dataclasses.dataclass
class WebTierRun:
    """The web tier of a notebook: its server (`url`) and app; `close()` stops both."""

    server: HttpServer
    app: Flask

    @property
    def url(self) -> str:
        """The web tier's base URL, e.g. http://127.0.0.1:PORT."""
        return self.server.url

    def close(self) -> None:
        """Stop serving and close the ledger files."""
        self.server.stop()
        webtier.of(self.app).close()


def start_web_tier(lab: Lab, work_ms: int = WORK_MS) -> WebTierRun:
    """Start a web tier that takes orders in the request or sends them to the lab's queue.

    Its own ledger starts empty; it also reads the worker's ledger, so an order's status URL
    says "applied" once the worker has done it. `lab.stop()` stops it.
    """
    path = lab.ledger_path.with_name(f"lab-{lab.name}-web-ledger.sqlite")
    ledger = Ledger(path)
    ledger.clear()  # each run starts from no orders, as the worker's ledger does
    ledger.close()
    app = webtier.create_app(
        lab.sqs, lab.queues.url, ledger_path=path, worker_ledger_path=lab.ledger_path, work_ms=work_ms
    )
    return lab.own(WebTierRun(webtier.serve(app).start(), app))
