"""The engine's wire to its exec script: generated gRPC stubs and servicers, over a Unix socket."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from offline_pulumi import wire
from offline_pulumi.engine.protos import module

resource_pb2 = module("resource_pb2")
resource_pb2_grpc = module("resource_pb2_grpc")
_Servicer: Any = resource_pb2_grpc.ResourceMonitorServicer


class Monitor(_Servicer):
    """Answers RegisterResource with its inputs; fails, blocks or aborts on request."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any, context: Any) -> Any:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if request.name == "abort":
                context.abort(grpc.StatusCode.UNAVAILABLE, "monitor going away")
            if request.name == "crash":
                raise RuntimeError("handler bug")
            if self.gate is not None:
                self.gate.wait(10)
            return resource_pb2.RegisterResourceResponse(urn=f"urn:{request.name}",
                                                         object=request.object)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def monitor() -> Monitor:
    return Monitor()


@pytest.fixture
def server(monitor: Monitor) -> Iterator[wire.Server]:
    registry = wire.Registry()
    resource_pb2_grpc.add_ResourceMonitorServicer_to_server(monitor, registry)
    served = wire.Server(registry, slots=2)
    yield served
    served.stop()


@pytest.fixture
def stub(server: wire.Server) -> Iterator[Any]:
    channel = wire.Channel(server.address)
    yield resource_pb2_grpc.ResourceMonitorStub(channel)
    channel.close()


def register(stub: Any, name: str, inputs: dict[str, Any] | None = None) -> Any:
    obj = struct_pb2.Struct()
    obj.update(inputs or {})
    return stub.RegisterResource(resource_pb2.RegisterResourceRequest(
        type="test:index:Thing", name=name, object=obj))


@pytest.mark.parametrize("size", [0, 10, 70_000, 5_000_000])
def test_a_call_round_trips_messages_of_any_size(stub: Any, size: int) -> None:
    answer = register(stub, "thing", {"blob": "x" * size})
    assert answer.urn == "urn:thing"
    assert answer.object["blob"] == "x" * size


def test_an_abort_reaches_the_caller_as_a_grpc_error_with_its_code(stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        register(stub, "abort")
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == "monitor going away"
    # The connection is still good for the next call.
    assert register(stub, "after").urn == "urn:after"


def test_a_failing_handler_is_logged_and_reported_unknown(
        stub: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger=wire.__name__), \
            pytest.raises(grpc.RpcError) as raised:
        register(stub, "crash")
    assert raised.value.code() == grpc.StatusCode.UNKNOWN
    assert "handler bug" in raised.value.details()
    assert "RegisterResource" in caplog.text


def test_a_method_nobody_serves_is_unimplemented(stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.SupportsFeature(resource_pb2.SupportsFeatureRequest(id="secrets"))
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_calls_from_threads_run_at_once_up_to_the_slots(stub: Any, monitor: Monitor) -> None:
    monitor.gate = threading.Event()  # every call waits in its handler until the gate opens
    answers: dict[int, str] = {}

    def call(index: int) -> None:
        answers[index] = register(stub, f"r{index}").urn

    threads = [threading.Thread(target=call, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while monitor.running < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # room for a third call to get in, if the slots let it
    assert monitor.running == 2
    monitor.gate.set()
    for thread in threads:
        thread.join(20)
    assert answers == {index: f"urn:r{index}" for index in range(6)}
    assert monitor.most == 2


def test_a_stopped_server_leaves_nothing_and_callers_see_it_unavailable(
        server: wire.Server, stub: Any) -> None:
    assert register(stub, "before").urn == "urn:before"
    path = server.address.removeprefix(wire.SCHEME)
    server.stop()
    assert not os.path.exists(os.path.dirname(path))
    with pytest.raises(grpc.RpcError) as raised:
        register(stub, "after")
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_wire_directory_is_private(server: wire.Server) -> None:
    directory = os.path.dirname(server.address.removeprefix(wire.SCHEME))
    assert os.stat(directory).st_mode & 0o777 == 0o700
