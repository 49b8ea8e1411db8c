"""The embedded SQS endpoint and the loopback HTTP server: free ports, clean stops, honest errors."""

from __future__ import annotations

import os
import socket
import threading
import uuid

import pytest
import requests
from botocore.exceptions import EndpointConnectionError

from labapp.errors import PortInUseError
from labapp.runtime.emulator import Emulator
from labapp.runtime.endpoint import identify
from labapp.runtime.ports import port_is_free
from labapp.runtime.servers import HttpServer
from labapp.settings import HOST
from labapp.sqs.client import sqs_client


@pytest.mark.skipif(
    os.environ.get("LAB_BACKEND", "moto") != "moto", reason="the session endpoint is not moto"
)
def test_session_emulator_is_moto_on_loopback(emulator: Emulator) -> None:
    assert emulator.host == HOST == "127.0.0.1"
    assert emulator.port > 0
    assert emulator.url == f"http://127.0.0.1:{emulator.port}"
    assert identify(emulator.url) == "moto"
    assert not port_is_free(emulator.port)


def test_identify_nothing() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    assert port_is_free(port)
    assert identify(f"http://127.0.0.1:{port}", timeout=0.5) is None


def test_taken_port_is_one_sentence() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"Port {port}") as caught:
            Emulator(port=port).start()
        assert "\n" not in str(caught.value)
        with pytest.raises(PortInUseError):
            HttpServer(lambda e, s: [], port=port).start()


def test_stop_refuses_connections_and_restart_keeps_queues() -> None:
    name = f"restart-{uuid.uuid4().hex[:8]}"
    first = Emulator(port=0).start()
    port = first.port
    try:
        client = sqs_client(first.url)
        url = client.create_queue(QueueName=name)["QueueUrl"]
        client.send_message(QueueUrl=url, MessageBody="kept")
    finally:
        first.stop()
    assert port_is_free(port)
    with pytest.raises(EndpointConnectionError):
        client.get_queue_url(QueueName=name)
    first.stop()  # stopping twice is harmless

    with Emulator(port=port) as again:  # the same port, and moto's state lives on in this process
        assert again.url == f"http://127.0.0.1:{port}"
        assert client.get_queue_url(QueueName=name)["QueueUrl"] == url
        [message] = client.receive_message(QueueUrl=url)["Messages"]
        assert message["Body"] == "kept"
    assert port_is_free(port)


def test_http_server_binds_loopback_on_a_free_port() -> None:
    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])  # type: ignore[operator]
        return [b"ok"]

    with HttpServer(app) as server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        assert server.running
        assert requests.get(server.url, timeout=5).text == "ok"
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url, timeout=2)
    server.stop()  # stopping twice is harmless


def test_http_server_crash_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="crash"):
        HttpServer(lambda e, s: [], crash="explode")  # type: ignore[arg-type]


def test_receive_and_delete_take_the_queue_lock_like_send(emulator: Emulator) -> None:
    # moto deleted by rebuilding the message list without the queue's lock (a message sent meanwhile
    # vanished) and let two receives take the same message. Both now wait for the lock, as sends do.
    from moto.sqs.models import sqs_backends

    sqs = sqs_client(emulator.url)
    name = f"lock-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    account = url.rstrip("/").split("/")[-2]
    queue = sqs_backends[account]["us-east-1"].get_queue(name)
    handles: list[str] = []

    def receive() -> None:
        reply = sqs.receive_message(QueueUrl=url, VisibilityTimeout=60, WaitTimeSeconds=0)
        handles.extend(m["ReceiptHandle"] for m in reply.get("Messages", []))

    for call in (receive, lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle=handles[0])):
        with queue._messages_lock:
            thread = threading.Thread(target=call)
            thread.start()
            thread.join(timeout=0.3)
            assert thread.is_alive()  # waiting for the lock
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert len(handles) == 1
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "0",
    )
