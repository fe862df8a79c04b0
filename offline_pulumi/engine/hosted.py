"""Running programs in a warm program host (opt-in: ``OFFLINE_PULUMI_PROGRAM_HOST=1``).

The host (``offline_pulumi/program_host.py``) is started on first use with the program's own
interpreter, imports the Pulumi SDK once, and forks a child per run, which saves the SDK's
import time on every ``up``. The child is a process like any other: the engine gets its
output on pipes, can signal it, and learns its exit code. Without a running host the program
is started the ordinary way and a host is started in the background for the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import IO

HOST_SCRIPT = Path(__file__).resolve().parent.parent / "program_host.py"
DEFAULT_IDLE_SECONDS = 600


def enabled() -> bool:
    """Whether the caller asked for warm program hosts."""
    return os.environ.get("OFFLINE_PULUMI_PROGRAM_HOST", "").lower() in ("1", "true", "yes")


def host_dir() -> Path:
    """Where host sockets live: ``OFFLINE_PULUMI_HOST_DIR``, else a per-user temp directory."""
    chosen = os.environ.get("OFFLINE_PULUMI_HOST_DIR")
    if chosen:
        return Path(chosen)
    return Path(tempfile.gettempdir()) / f"offline-pulumi-hosts-{os.getuid()}"


def stop_hosts(directory: Path) -> int:
    """Stop the hosts of ``directory``: each ends within a second of its socket's removal."""
    stopped = 0
    for path in directory.glob("*.sock"):
        path.unlink(missing_ok=True)
        stopped += 1
    return stopped


def socket_path(python: str) -> Path | None:
    """The host socket of an interpreter; None if the private directory is not safe to use."""
    from offline_pulumi.fileio import owned_dir

    try:
        # Whoever can reach the socket can run programs as us: the directory must be private.
        directory = owned_dir(host_dir(), private=True)
    except OSError:  # UnsafePathError included: no host, programs start the ordinary way
        return None
    # A new interpreter, engine code or set of installed packages gets a new host.
    venv_lib = Path(python).resolve().parent.parent / "lib"
    stamp = [python, *(str(p.stat().st_mtime_ns) for p in
                       (HOST_SCRIPT, HOST_SCRIPT.with_name("language_exec.py")))]
    if venv_lib.is_dir():
        stamp += [str(p.stat().st_mtime_ns) for p in venv_lib.glob("python*/site-packages")]
    digest = hashlib.sha256("\0".join(stamp).encode()).hexdigest()[:20]
    path = directory / f"{digest}.sock"
    # A unix socket path must fit in 108 bytes; a deep TMPDIR just means no host.
    return path if len(str(path)) < 100 else None


class HostedProcess:
    """A program child of the host, with the parts of ``Popen`` the engine uses."""

    def __init__(self, pid: int, lines: _Lines, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self._lines = lines
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child's exit code (a child killed by a signal reports none)."""
        if self.returncode is None:
            try:
                line = self._lines.next(timeout)
            except TimeoutError:
                raise subprocess.TimeoutExpired("program", timeout or 0) from None
            self.returncode = int(line) if line and line.strip() else -signal.SIGKILL
            self._lines.close()
        return self.returncode

    def poll(self) -> int | None:
        """The exit code if the child has finished."""
        try:
            return self.wait(0.001)
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, signum: int) -> None:
        """Signal the child."""
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            return

    def kill(self) -> None:
        """Kill the child."""
        self.send_signal(signal.SIGKILL)


def spawn(python: str, argv: list[str], env: dict[str, str], cwd: Path) -> HostedProcess | None:
    """Run ``argv`` (the exec script's arguments) in the warm host; None if there is none yet."""
    path = socket_path(python)
    if path is None:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        _start_host(python, path, env)
        return None
    payload = json.dumps({"argv": argv, "env": env, "cwd": str(cwd)}).encode()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    stdin = os.open(os.devnull, os.O_RDONLY)
    lines = _Lines(conn)
    try:
        socket.send_fds(conn, [f"{len(payload):08d}".encode()], [stdin, out_write, err_write])
        conn.sendall(payload)
        pid = int(lines.next(None) or b"0")
    except (OSError, ValueError):
        pid = 0
    finally:
        for fd in (stdin, out_write, err_write):
            os.close(fd)
    if pid <= 0:
        # No child started: the program has not run, and the engine runs it itself.
        lines.close()
        os.close(out_read)
        os.close(err_read)
        return None
    return HostedProcess(pid, lines, os.fdopen(out_read, "rb"), os.fdopen(err_read, "rb"))


class _Lines:
    """The lines a hosted child writes on its connection, none lost between reads: its pid
    and its exit code may arrive together."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._buffer = b""

    def next(self, timeout: float | None) -> bytes | None:
        """The next line (without its newline), None at EOF; TimeoutError if none came."""
        self._conn.settimeout(timeout)
        while b"\n" not in self._buffer:
            chunk = self._conn.recv(64)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def close(self) -> None:
        self._conn.close()


def _start_host(python: str, path: Path, env: dict[str, str]) -> None:
    """Start a host in the background for the next run (a stale socket file is replaced)."""
    path.unlink(missing_ok=True)
    idle = os.environ.get("OFFLINE_PULUMI_PROGRAM_HOST_IDLE", str(DEFAULT_IDLE_SECONDS))
    subprocess.Popen([python, str(HOST_SCRIPT), str(path), idle], env=env,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
