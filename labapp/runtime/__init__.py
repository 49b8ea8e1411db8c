"""How the lab runs things: one child-process class, servers on threads, one wait, the stack and instances.

Names load on first use, so the CLI can import `labapp.runtime.wait` without the whole runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labapp import lazy

__getattr__, __dir__, __all__ = lazy.exports(
    __name__,
    {
        "labapp.runtime.emulator": ("Emulator",),
        "labapp.runtime.endpoint": ("Endpoint", "find_or_start_endpoint", "identify"),
        "labapp.runtime.instance": ("Instance", "InstanceProcess"),
        "labapp.runtime.localstack": ("LocalStack",),
        "labapp.runtime.ports": ("free_port", "port_is_free"),
        "labapp.runtime.process": ("ChildProcess",),
        "labapp.runtime.servers": ("HttpServer", "Server"),
        "labapp.runtime.stack": ("Stack",),
        "labapp.runtime.wait": ("stop_on_signals", "wait_until"),
    },
)

if TYPE_CHECKING:
    from labapp.runtime.emulator import Emulator
    from labapp.runtime.endpoint import Endpoint, find_or_start_endpoint, identify
    from labapp.runtime.instance import Instance, InstanceProcess
    from labapp.runtime.localstack import LocalStack
    from labapp.runtime.ports import free_port, port_is_free
    from labapp.runtime.process import ChildProcess
    from labapp.runtime.servers import HttpServer, Server
    from labapp.runtime.stack import Stack
    from labapp.runtime.wait import stop_on_signals, wait_until
