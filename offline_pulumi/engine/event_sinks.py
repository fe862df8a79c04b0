"""Where ``--event-log`` events go: a file the client tails, or the client's gRPC stream.

The Automation API picks the transport from the CLI version it sees (``version.py``): up to
3.205.0 it passes a file path and polls it; after that it serves ``pulumirpc.Events`` and
passes ``tcp://127.0.0.1:PORT``. Either way each event is one JSON text.
"""

from __future__ import annotations

from typing import Protocol

from offline_pulumi.engine.grpc_stream import CallEnded, ClientStream

GRPC_PREFIX = "tcp://"
EVENTS_METHOD = "/pulumirpc.Events/StreamEvents"
# How long the engine waits for the client to take events (the last ones, or any while the
# client's flow-control window is spent) before it gives up on the stream.
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
    """The client side of ``pulumirpc.Events/StreamEvents``: one ``EventRequest`` per event.

    A client that cannot be reached, stops reading or ends the call loses the events from then
    on; the operation itself goes on, as with the real CLI.
    """

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.error: Exception | None = None
        self._call: ClientStream | None = None
        try:
            self._call = ClientStream(host.strip("[]"), int(port), EVENTS_METHOD,
                                      CLOSE_TIMEOUT_SECONDS)
        except (OSError, ValueError) as exc:
            self.error = exc

    def send(self, text: str) -> None:
        if self._call is None:
            return
        try:
            self._call.send(event_request(text))
        except (OSError, CallEnded) as exc:  # TimeoutError is an OSError
            self.error = exc
            self._call.abort()
            self._call = None

    def close(self) -> None:
        if self._call is not None:
            self._call.close(CLOSE_TIMEOUT_SECONDS)
            self._call = None


def event_request(text: str) -> bytes:
    """A serialized ``pulumirpc.EventRequest``: its one field, ``string event = 1``."""
    data = text.encode()
    size = len(data)
    length = bytearray()
    while size >= 0x80:
        length.append(size & 0x7F | 0x80)
        size >>= 7
    length.append(size)
    return b"\x0a" + bytes(length) + data


def open_sink(target: str | None) -> EventSink | None:
    """The sink ``--event-log`` names (None: no event log)."""
    if not target:
        return None
    if target.startswith(GRPC_PREFIX):
        return GrpcSink(target[len(GRPC_PREFIX):])
    return FileSink(target)
