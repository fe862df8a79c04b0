"""Where ``--event-log`` events go: a file the client tails, or the client's gRPC stream.

The Automation API picks the transport from the CLI version it sees (``version.py``): up to
3.205.0 it passes a file path and polls it; after that it serves ``pulumirpc.Events`` and
passes ``tcp://127.0.0.1:PORT``. Either way each event is one JSON text.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Protocol

GRPC_PREFIX = "tcp://"
# How long the engine waits for the client to take the last events before it exits.
CLOSE_TIMEOUT_SECONDS = 10.0


class EventSink(Protocol):
    """One destination of engine events."""

    def send(self, text: str) -> None:
        """Deliver one event (its JSON text)."""

    def close(self) -> None:
        """Deliver everything still buffered and release the destination."""


class FileSink:
    """The file event log: one JSON object per line, flushed after each."""

    def __init__(self, path: str) -> None:
        # Held open for the whole operation and closed after the final event.
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115

    def send(self, text: str) -> None:
        self._file.write(text + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class GrpcSink:
    """A client-streaming ``Events.StreamEvents`` call, fed from a queue by one thread."""

    def __init__(self, address: str) -> None:
        import grpc

        from offline_pulumi.engine.protos import module

        self._events_pb2 = module("events_pb2")
        events_pb2_grpc = module("events_pb2_grpc")
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._channel = grpc.insecure_channel(address)
        self._stub = events_pb2_grpc.EventsStub(self._channel)
        self.error: Exception | None = None
        # A daemon thread: a client that stopped listening must not keep the CLI alive.
        self._thread = threading.Thread(target=self._stream, daemon=True)
        self._thread.start()

    def _requests(self) -> Any:
        while True:
            text = self._queue.get()
            if text is None:
                return
            yield self._events_pb2.EventRequest(event=text)

    def _stream(self) -> None:
        import grpc

        try:
            self._stub.StreamEvents(self._requests(), wait_for_ready=True)
        except grpc.RpcError as exc:
            self.error = exc

    def send(self, text: str) -> None:
        self._queue.put(text)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(CLOSE_TIMEOUT_SECONDS)
        self._channel.close()


def open_sink(target: str | None) -> EventSink | None:
    """The sink ``--event-log`` names (None: no event log)."""
    if not target:
        return None
    if target.startswith(GRPC_PREFIX):
        return GrpcSink(target[len(GRPC_PREFIX):])
    return FileSink(target)
