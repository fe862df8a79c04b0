"""The engine's wire to its own exec script: gRPC's unary calls over a Unix socket.

gRPC over loopback TCP costs the program and the engine together about 0.5 ms of CPU per
call, more than most calls' work, and a channel and a server to start on every run. Between
the engine and its exec script (``language_exec.py``) a call here is one frame each way:

    request:  payload length (4 bytes), method length (2 bytes), method, payload
    response: payload length (4 bytes), status (1 byte, gRPC's code), payload or details

Each calling thread has a connection of its own, so calls never wait for each other's
answers; the server reads each connection in a thread and runs the same handlers a gRPC
server would (the generated ``add_*Servicer_to_server`` functions register them here).
Inline programs, which run in the Automation API's process, still reach the engine by gRPC.

The exec script loads this file by path: it imports nothing but the standard library and
``grpc`` (for its status codes and error type).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import tempfile
import threading
from collections.abc import Callable
from typing import Any

import grpc

logger = logging.getLogger(__name__)

SCHEME = "unix:"
_REQUEST = struct.Struct(">IH")
_RESPONSE = struct.Struct(">IB")
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED.value[0]
_UNKNOWN = grpc.StatusCode.UNKNOWN.value[0]


class Failure(grpc.RpcError):
    """A call that ended with a status other than OK, as the SDK expects gRPC errors."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def __str__(self) -> str:
        return f"{self._code.name}: {self._details}"


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = sock.recv(size)
    if len(data) == size:
        return data
    buffer = bytearray(data)
    while len(buffer) < size:
        chunk = sock.recv(size - len(buffer))
        if not chunk:
            raise EOFError
        buffer += chunk
    return bytes(buffer)


# -- the program's side ------------------------------------------------------------------------

class Channel:
    """What generated gRPC stubs ask of a channel, on the wire at ``address`` (``unix:path``)."""

    def __init__(self, address: str) -> None:
        if not address.startswith(SCHEME):
            raise ValueError(f"not a wire address: {address!r}")
        self._path = address[len(SCHEME):]
        self._local = threading.local()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def unary_unary(self, method: str, request_serializer: Callable[[Any], bytes] | None = None,
                    response_deserializer: Callable[[bytes], Any] | None = None,
                    **_: Any) -> Callable[..., Any]:
        name = method.encode()

        def call(request: Any, *args: Any, **kwargs: Any) -> Any:
            payload = request_serializer(request) if request_serializer else request
            body = self.call(name, payload)
            return response_deserializer(body) if response_deserializer else body
        return call

    def call(self, method: bytes, payload: bytes) -> bytes:
        """Send one request on this thread's connection and return the answer's payload;
        raise ``Failure`` (UNAVAILABLE when the engine cannot be reached)."""
        try:
            sock = self._connection()
            sock.sendall(b"".join((_REQUEST.pack(len(payload), len(method)), method, payload)))
            size, status = _RESPONSE.unpack(_recv_exact(sock, _RESPONSE.size))
            body = _recv_exact(sock, size) if size else b""
        except (OSError, EOFError) as exc:
            self._forget()
            raise Failure(grpc.StatusCode.UNAVAILABLE, f"the engine is gone ({exc!r})") from None
        if status:
            raise Failure(_CODES.get(status, grpc.StatusCode.UNKNOWN),
                          body.decode("utf-8", "replace"))
        return body

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def _connection(self) -> socket.socket:
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self._path)
            except OSError:
                sock.close()
                raise
            self._local.sock = sock
            with self._lock:
                self._sockets.append(sock)
        return sock

    def _forget(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            sock.close()


# -- the engine's side -------------------------------------------------------------------------

class Aborted(Exception):
    """A handler ended its call with a status (``context.abort``)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _Context:
    """The part of a gRPC servicer context that handlers use (the generated base servicer
    sets a code before it raises)."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class Registry:
    """Unary handlers by method path, registered as on a gRPC server."""

    def __init__(self) -> None:
        self._generic: list[Any] = []
        self._found: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self._found.update({f"/{service}/{name}": handler for name, handler in handlers.items()})

    def handle(self, method: str, payload: bytes) -> tuple[int, bytes]:
        """Run the method's handler; its status code and payload (or error details)."""
        handler = self._found.get(method)
        if handler is None:
            handler = next((found for generic in self._generic
                            if (found := generic.service(_Details(method))) is not None), None)
            self._found[method] = handler
        if handler is None or handler.unary_unary is None:
            return _UNIMPLEMENTED, f"method {method} is not served".encode()
        context = _Context()
        try:
            decode, encode = handler.request_deserializer, handler.response_serializer
            response = handler.unary_unary(decode(payload) if decode else payload, context)
        except Aborted as exc:
            return exc.code.value[0], exc.details.encode()
        except Exception as exc:
            if context.code is not None:
                return context.code.value[0], context.details.encode()
            logger.exception("a call of %s failed", method)
            return _UNKNOWN, f"Exception calling application: {exc}".encode()
        if context.code not in (None, grpc.StatusCode.OK):
            return context.code.value[0], context.details.encode()
        return 0, encode(response) if encode else response


class Server:
    """Serves a registry on a Unix socket in a private directory; ``slots`` calls at a time."""

    def __init__(self, registry: Registry, slots: int) -> None:
        self._registry = registry
        self._slots = threading.BoundedSemaphore(slots)
        self._directory = tempfile.mkdtemp(prefix="offline-pulumi-wire-")
        path = os.path.join(self._directory, "engine")
        self.address = SCHEME + path
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(64)
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, name="wire-accept", daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        """Stop accepting, end every connection and remove the socket."""
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join()
        with contextlib.suppress(OSError):
            os.unlink(self.address[len(SCHEME):])
        with contextlib.suppress(OSError):
            os.rmdir(self._directory)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), name="wire-call",
                                      daemon=True)
            with self._lock:
                self._connections.append(conn)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    size, name_size = _REQUEST.unpack(_recv_exact(conn, _REQUEST.size))
                    body = _recv_exact(conn, name_size + size)
                except (OSError, EOFError, struct.error):
                    return
                with self._slots:
                    status, reply = self._registry.handle(body[:name_size].decode(),
                                                          body[name_size:])
                try:
                    conn.sendall(_RESPONSE.pack(len(reply), status) + reply)
                except OSError:
                    return
