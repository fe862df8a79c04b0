"""A warm PostgreSQL connection pool per host, shared by the engine's short-lived processes.

Every ``pulumi`` command is a new process, and importing psycopg and logging in to the database
cost more than the rest of a command. With ``OFFLINE_PULUMI_STATE_PROXY=1``, the first command
that opens a ``postgres://`` backend starts a proxy (one per backend URL, in the private
program-host directory) and uses the database directly; later commands send their storage
calls to the proxy over a unix socket: one JSON line per call, blobs in base64. The proxy ends
after ``OFFLINE_PULUMI_PROGRAM_HOST_IDLE`` idle seconds or when its socket file is removed; one
that a racing proxy replaced ends once the engines connected to it are done.
Whoever can reach the socket can use the database as we do, so the directory must be private.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

from offline_pulumi.storage import BlobNotFound, Storage, StorageError

URL_VARIABLE = "OFFLINE_PULUMI_STATE_PROXY_URL"
CALL_TIMEOUT = 120.0


def enabled() -> bool:
    """Whether the caller asked for the state proxy."""
    return os.environ.get("OFFLINE_PULUMI_STATE_PROXY", "").lower() in ("1", "true", "yes")


def socket_path(url: str) -> Path | None:
    """The proxy socket of a backend URL; None if the private directory is not safe to use."""
    from offline_pulumi.engine.hosted import host_dir
    from offline_pulumi.fileio import owned_dir

    try:
        directory = owned_dir(host_dir(), private=True)
    except OSError:
        return None
    code = Path(__file__).resolve()
    stamp = f"{url}\0{sys.executable}\0{code.stat().st_mtime_ns}"
    path = directory / f"{hashlib.sha256(stamp.encode()).hexdigest()[:20]}.state.sock"
    return path if len(str(path)) < 100 else None


def open_proxied(url: str) -> Storage | None:
    """A client of the running proxy for ``url``; else start one for next time and return None."""
    path = socket_path(url)
    if path is None:
        return None
    try:
        return ProxiedStorage(path)
    except OSError:
        _spawn(path, url)
        return None


def _spawn(path: Path, url: str) -> None:
    # The URL (it may hold a password) goes in the environment, never in argv.
    bootstrap = (f"import sys; sys.path[:0] = {sys.path!r}\n"
                 "from offline_pulumi.storage.proxy import main; main()")
    with suppress(OSError):
        subprocess.Popen([sys.executable, "-SE", "-c", bootstrap, str(path)],
                         env={**os.environ, URL_VARIABLE: url}, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)


class ProxiedStorage:
    """The storage interface, answered by the proxy (one connection per engine process)."""

    def __init__(self, path: Path) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(str(path))
        except OSError:
            self._sock.close()
            raise
        self._sock.settimeout(CALL_TIMEOUT)
        self._reader = self._sock.makefile("rb")
        self._lock = threading.Lock()
        self.display_url = str(self._call({"op": "hello"}))

    def _call(self, request: dict[str, Any]) -> Any:
        with self._lock:
            try:
                self._sock.sendall(json.dumps(request).encode() + b"\n")
                line = self._reader.readline()
            except OSError as exc:
                raise StorageError(f"lost the state proxy: {exc}") from None
        if not line:
            raise StorageError("lost the state proxy (it stopped mid-call)")
        reply = json.loads(line)
        if "missing" in reply:
            raise BlobNotFound(reply["missing"])
        if "error" in reply:
            raise StorageError(reply["error"])
        return reply.get("result")

    def get(self, key: str) -> bytes:
        """The blob's bytes; raise BlobNotFound if there is no row."""
        return base64.b64decode(self._call({"op": "get", "key": key}))

    def put(self, key: str, data: bytes) -> None:
        """Insert or replace the row."""
        self._call({"op": "put", "key": key, "data": base64.b64encode(data).decode()})

    def ensure(self, key: str, data: bytes) -> None:
        """Insert the row unless there is one (the proxy does so once per key)."""
        self._call({"op": "ensure", "key": key, "data": base64.b64encode(data).decode()})

    def list(self, prefix: str, delimiter: str | None = None) -> list[str]:
        """Keys under ``prefix``, the delimiter applied."""
        keys: list[str] = self._call({"op": "list", "prefix": prefix, "delimiter": delimiter})
        return keys

    def copy(self, src: str, dst: str) -> None:
        """Copy the row inside the database."""
        self._call({"op": "copy", "src": src, "dst": dst})

    def delete(self, *keys: str) -> None:
        """Delete the rows there are, in one call."""
        if keys:
            self._call({"op": "delete", "keys": list(keys)})

    def remove_empty(self, prefix: str) -> None:
        """Rows have no directories."""

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """The proxy holds the advisory lock for us (and drops it if we die)."""
        self._call({"op": "lock", "name": name})
        try:
            yield
        finally:
            self._call({"op": "unlock"})

    def location(self, key: str) -> str:
        """The URL (no credentials) and the row's key."""
        prefix: str = self._call({"op": "prefix"})
        return f"{self.display_url}#{prefix}{key}"

    def check(self) -> None:
        """Raise StorageError unless the database answers."""
        self._call({"op": "check"})

    def close(self) -> None:
        """Close the connection to the proxy."""
        self._reader.close()
        self._sock.close()


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        held: AbstractContextManager[None] | None = None
        self.server.clients += 1
        try:
            for line in self.rfile:
                self.server.last_used = time.monotonic()
                request = json.loads(line)
                try:
                    if request["op"] == "lock":
                        held = self.server.storage.exclusive(request["name"])
                        held.__enter__()
                        reply: dict[str, Any] = {"result": None}
                    elif request["op"] == "unlock":
                        if held is not None:
                            held.__exit__(None, None, None)
                            held = None
                        reply = {"result": None}
                    else:
                        reply = {"result": self.server.answer(request)}
                except BlobNotFound as exc:
                    reply = {"missing": exc.args[0]}
                except StorageError as exc:
                    reply = {"error": str(exc)}
                self.wfile.write(json.dumps(reply).encode() + b"\n")
        finally:
            if held is not None:  # the client died holding it
                with suppress(StorageError):
                    held.__exit__(None, None, None)
            self.server.clients -= 1
            self.server.last_used = time.monotonic()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, url: str) -> None:
        from offline_pulumi.storage.postgres import PostgresStorage

        # Each client in exclusive() holds a connection; the rest share the others.
        self.storage = PostgresStorage.from_url(url, max_connections=16)
        self.clients = 0
        self.last_used = time.monotonic()
        # Keys made sure of: every command makes sure of the store's meta.yaml, and a row once
        # there stays (nothing deletes it), so the database is asked once per proxy.
        self.ensured: set[str] = set()
        tmp = path.with_name(f".{os.getpid()}.{path.name}")
        tmp.unlink(missing_ok=True)
        super().__init__(str(tmp), _Handler)
        os.replace(tmp, path)  # appears only once it accepts; a racing proxy's is replaced
        self.inode = path.stat().st_ino

    def answer(self, request: dict[str, Any]) -> Any:
        """Run one storage call."""
        op, storage = request["op"], self.storage
        if op == "get":
            return base64.b64encode(storage.get(request["key"])).decode()
        if op == "put":
            return storage.put(request["key"], base64.b64decode(request["data"]))
        if op == "ensure":
            if request["key"] not in self.ensured:
                storage.ensure(request["key"], base64.b64decode(request["data"]))
                self.ensured.add(request["key"])
            return None
        if op == "list":
            return storage.list(request["prefix"], request["delimiter"])
        if op == "copy":
            return storage.copy(request["src"], request["dst"])
        if op == "delete":
            return storage.delete(*request["keys"])
        if op == "check":
            return storage.check()
        if op == "prefix":
            return storage.prefix
        if op == "hello":
            return storage.display_url
        raise StorageError(f"unknown state proxy call {op!r}")


def main() -> None:
    """Serve the proxy on the socket named in argv until idle or its socket file goes away."""
    path = Path(sys.argv[1])
    url = os.environ.pop(URL_VARIABLE)
    idle_seconds = float(os.environ.get("OFFLINE_PULUMI_PROGRAM_HOST_IDLE", "600"))
    try:
        server = _Server(path, url)
        server.storage.check()
    except (OSError, StorageError):
        return
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ours = True
    while True:
        time.sleep(0.5)
        try:
            ours = path.stat().st_ino == server.inode
        except OSError:
            ours = False
            break  # the socket file was removed: our owner is stopping us
        idle = time.monotonic() - server.last_used > idle_seconds
        if ours and server.clients == 0 and idle:
            break
        # Replaced by a racing proxy: new engines connect to that one; those connected here
        # (mid-command) are served to their end, or until they fall idle.
        if not ours and (server.clients == 0 or idle):
            break
    server.shutdown()
    if ours:
        path.unlink(missing_ok=True)
    server.storage.close()
