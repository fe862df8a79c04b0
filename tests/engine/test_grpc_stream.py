"""The engine's own client-streaming gRPC call (``grpc_stream``), against a real grpcio server
(the one the Automation API serves events from) and against servers that misbehave."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from offline_pulumi.engine.event_sinks import GrpcSink, event_request
from offline_pulumi.engine.grpc_stream import SETTINGS, CallEnded, ClientStream, frame
from offline_pulumi.engine.protos import module

METHOD = "/test.Sink/Collect"


def _serve(handler: Callable[[Iterator[bytes], Any], bytes]) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Sink", {
        "Collect": grpc.stream_unary_rpc_method_handler(handler)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_every_message_arrives_whole_and_in_order_whatever_its_size() -> None:
    received: list[bytes] = []
    ended = threading.Event()

    def collect(requests: Iterator[bytes], context: Any) -> bytes:
        received.extend(requests)
        ended.set()
        return b""

    server, port = _serve(collect)
    try:
        # Empty, small, above the default 16 KiB frame and 64 KiB window, many small ones,
        # and more in all than the 4 MiB windows grpcio grants before it has read anything.
        messages = [b"", b"x", bytes(range(256)) * 80, b"w" * 300_000,
                    *(f"event {n}".encode() for n in range(500)),
                    *(bytes([n]) * 1_000_000 for n in range(10))]
        call = ClientStream("127.0.0.1", port, METHOD, stall_seconds=10)
        for message in messages:
            call.send(message)
        assert call.close(timeout=10) is True
        assert ended.is_set()
        assert received == messages
    finally:
        server.stop(None)


def test_messages_from_many_threads_each_arrive_whole() -> None:
    received: list[bytes] = []

    def collect(requests: Iterator[bytes], context: Any) -> bytes:
        received.extend(requests)
        return b""

    server, port = _serve(collect)
    try:
        call = ClientStream("127.0.0.1", port, METHOD, stall_seconds=10)

        def send(worker: int) -> None:
            for n in range(50):
                call.send(f"{worker}:{n}:".encode() + b"p" * 3000)

        threads = [threading.Thread(target=send, args=(worker,)) for worker in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert call.close(timeout=10) is True
        assert len(received) == 200
        for worker in range(4):
            mine = [m for m in received if m.startswith(f"{worker}:".encode())]
            assert [m.split(b":")[1] for m in mine] == [str(n).encode() for n in range(50)]
            assert all(m.endswith(b"p" * 3000) for m in mine)
    finally:
        server.stop(None)


def test_a_server_that_ends_the_call_early_stops_the_sender() -> None:
    def refuse(requests: Iterator[bytes], context: Any) -> bytes:
        next(requests)
        context.abort(grpc.StatusCode.INTERNAL, "no more")
        raise AssertionError("abort returns only by raising")

    server, port = _serve(refuse)
    try:
        call = ClientStream("127.0.0.1", port, METHOD, stall_seconds=5)
        with pytest.raises(CallEnded):
            for _ in range(1000):
                call.send(b"event")
                time.sleep(0.005)
        assert call.close(timeout=5) is True
    finally:
        server.stop(None)


def test_a_server_that_stops_reading_makes_send_give_up_instead_of_hanging() -> None:
    """An HTTP/2 peer that never grants more window than the default 64 KiB."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def silent_server() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        conn.sendall(frame(SETTINGS, 0, 0))  # its settings, then nothing more

    thread = threading.Thread(target=silent_server)
    thread.start()
    try:
        call = ClientStream("127.0.0.1", listener.getsockname()[1], METHOD, stall_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            for _ in range(100):
                call.send(b"z" * 10_000)
        assert time.monotonic() - started < 5
        call.abort()
    finally:
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_the_events_sink_speaks_the_automation_apis_events_service() -> None:
    """What the Automation API's servicer decodes is the engine's JSON text."""
    events_pb2 = module("events_pb2")
    texts = ['{"sequence": 0, "preludeEvent": {"config": {}}}', '{"x": "' + "é" * 70_000 + '"}']
    assert [events_pb2.EventRequest.FromString(event_request(t)).event for t in texts] == texts


def test_an_unreachable_client_loses_its_events_but_not_the_operation() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        sink = GrpcSink(f"127.0.0.1:{port}")
        sink.send('{"sequence": 0}')
        sink.close()
    assert isinstance(sink.error, ConnectionRefusedError)
