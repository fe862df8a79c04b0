"""One client-streaming gRPC call over a plain TCP socket: the least HTTP/2 such a call needs.

The engine streams its events to the Automation API this way (``event_sinks.GrpcSink``).
grpcio hands every message to a thread of its own and starts a thread pool in each command
process that uses it: about 5 ms of CPU per command for a few dozen events. Here a message is
one ``sendall`` from the thread that emits it, and one thread per call reads what the server
sends: its settings and pings (answered), window updates (HTTP/2 flow control is kept), and
the end of the call. Messages go uncompressed, the request headers as HPACK literals (no
table, no Huffman). The response is not decoded: the call has ended when the server ends
its stream (trailers or a reset), sends GOAWAY, or closes the connection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Frame types and flags (RFC 9113, section 6).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 0x4, 0x5
# What holds until the server's settings say otherwise.
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
# The call's stream: the first a client opens.
STREAM = 1
# Frame header: length (24 bits) and type in the first word, then flags and the stream.
_FRAME = struct.Struct(">IBI")
_WORD = struct.Struct(">I")
_SETTING = struct.Struct(">HI")


class CallEnded(Exception):
    """The server ended the call (or the connection) before the message could go."""


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    return _FRAME.pack(len(payload) << 8 | kind, flags, stream) + payload


def _hpack_string(data: bytes) -> bytes:
    """An HPACK string literal, not Huffman-coded (length as a 7-bit-prefix integer)."""
    size = len(data)
    if size < 127:
        return bytes((size,)) + data
    encoded = bytearray((127,))
    size -= 127
    while size >= 128:
        encoded.append(size & 0x7F | 0x80)
        size >>= 7
    encoded.append(size)
    return bytes(encoded) + data


def header_block(headers: list[tuple[str, str]]) -> bytes:
    """The headers as HPACK "literal without indexing, new name" fields."""
    return b"".join(b"\x00" + _hpack_string(name.encode()) + _hpack_string(value.encode())
                    for name, value in headers)


class ClientStream:
    """A client-streaming call: ``send`` each request message, then ``close``.

    ``send`` may be called from any thread; it waits while the server's flow-control windows
    are spent, at most ``stall_seconds``, then raises TimeoutError (a client that stopped
    reading must not hold the engine). Raises OSError if the server cannot be reached.
    """

    def __init__(self, host: str, port: int, path: str, stall_seconds: float) -> None:
        self._stall_seconds = stall_seconds
        self._sock = socket.create_connection((host, port), timeout=stall_seconds)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._input = self._sock.makefile("rb")
        self._write_lock = threading.Lock()  # whole frames, from senders and the reader
        self._send_lock = threading.Lock()  # one message's frames in a row
        self._state = threading.Condition()
        self._connection_window = DEFAULT_WINDOW
        self._stream_window = DEFAULT_WINDOW
        self._initial_window = DEFAULT_WINDOW
        self._max_frame = DEFAULT_MAX_FRAME
        self._ended = False
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
                   (":authority", f"{host}:{port}"), ("content-type", "application/grpc"),
                   ("te", "trailers")]
        self._write(PREFACE + frame(SETTINGS, 0, 0)
                    + frame(HEADERS, END_HEADERS, STREAM, header_block(headers)))
        # The server's first frame is its settings: with them applied, the windows are known.
        kind, flags, _, payload = self._read_frame()
        if kind != SETTINGS or flags & ACK:
            self._sock.close()
            raise OSError(f"not an HTTP/2 server at {host}:{port}")
        self._settle(payload)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_frames, daemon=True)
        self._reader.start()

    def send(self, message: bytes) -> None:
        """Send one request message (gRPC framing: uncompressed, length first)."""
        data = b"\x00" + _WORD.pack(len(message)) + message
        with self._send_lock:
            sent = 0
            while sent < len(data):
                with self._state:
                    if not self._state.wait_for(self._may_send, self._stall_seconds):
                        raise TimeoutError("the server took no data for "
                                           f"{self._stall_seconds:g} s")
                    if self._ended:
                        raise CallEnded("the server ended the call")
                    size = min(len(data) - sent, self._max_frame, self._connection_window,
                               self._stream_window)
                    self._connection_window -= size
                    self._stream_window -= size
                self._write(frame(DATA, 0, STREAM, data[sent:sent + size]))
                sent += size

    def close(self, timeout: float) -> bool:
        """End the request stream and wait up to ``timeout`` for the server to end the call;
        whether it did."""
        with contextlib.suppress(OSError), self._send_lock:
            self._write(frame(DATA, END_STREAM, STREAM))
        self._reader.join(timeout)
        ended = not self._reader.is_alive()
        self.abort()
        return ended

    def abort(self) -> None:
        """Drop the connection (the reader then ends and closes its side)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def _may_send(self) -> bool:
        return self._ended or (self._connection_window > 0 and self._stream_window > 0)

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            self._sock.sendall(data)

    def _read_frame(self) -> tuple[int, int, int, bytes]:
        header = self._input.read(_FRAME.size)
        if len(header) < _FRAME.size:
            raise EOFError
        first, flags, stream = _FRAME.unpack(header)
        size = first >> 8
        payload = self._input.read(size) if size else b""
        if len(payload) < size:
            raise EOFError
        return first & 0xFF, flags, stream & 0x7FFFFFFF, payload

    def _settle(self, payload: bytes) -> None:
        """Apply the server's settings and acknowledge them."""
        with self._state:
            for at in range(0, len(payload) - len(payload) % _SETTING.size, _SETTING.size):
                key, value = _SETTING.unpack_from(payload, at)
                if key == INITIAL_WINDOW_SIZE:
                    self._stream_window += value - self._initial_window
                    self._initial_window = value
                elif key == MAX_FRAME_SIZE:
                    self._max_frame = value
            self._state.notify_all()
        self._write(frame(SETTINGS, ACK, 0))

    def _read_frames(self) -> None:
        try:
            while True:
                kind, flags, stream, payload = self._read_frame()
                if kind == SETTINGS and not flags & ACK:
                    self._settle(payload)
                elif kind == PING and not flags & ACK:
                    self._write(frame(PING, ACK, 0, payload))
                elif kind == WINDOW_UPDATE:
                    increment = _WORD.unpack(payload)[0] & 0x7FFFFFFF
                    with self._state:
                        if stream == 0:
                            self._connection_window += increment
                        else:
                            self._stream_window += increment
                        self._state.notify_all()
                elif kind == GOAWAY or (stream == STREAM and (
                        kind == RST_STREAM or (kind in (DATA, HEADERS) and flags & END_STREAM))):
                    return
        except (OSError, EOFError, ValueError, struct.error):
            return
        finally:
            with self._state:
                self._ended = True
                self._state.notify_all()
            self._input.close()
