"""The resident engine: a process with the engine imported that runs each command in a child.

Started in the background by the ``bin/pulumi`` launcher (``offline_pulumi/launcher.py``, which
also describes the protocol) when it finds none, one per launcher stamp (interpreter and engine
code). The child of a command becomes that command's process: the launcher's descriptors, its
environment, working directory and umask, a process group of its own. A command still runs the
same code as when the launcher runs it itself, minus about 0.1-0.3 s of imports. A child
that ran a light command may serve the next light one (``offline_pulumi/reuse.py``); every
other command gets a fresh child.

The resident also remembers derived passphrase keys, in memory only: a child that derives a key
reports it on a pipe, later children inherit it, and new stacks take the salt of the key
already known for their passphrase, so one derivation serves every stack of that passphrase.

It ends when idle for ``OFFLINE_PULUMI_PROGRAM_HOST_IDLE`` seconds (600), within a second of
its socket file's removal (``offline_pulumi.engine.hosted.stop_hosts``), or, once no command
runs, within a second of the death of every process that ran commands through it (a service
killed outright): it then stops the program hosts of its directory too. Commands already
running finish on their own.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from offline_pulumi.engine.hosted import DEFAULT_IDLE_SECONDS
from offline_pulumi.reuse import (
    IDLE,
    KEY,
    MAX_REQUEST,
    REQUEST,
    ReusableChildren,
    is_reusable,
    serves_again,
)

EXIT_INTERRUPTED = 8
# Children that ran a command and wait for the next (offline_pulumi/reuse.py): as many as a
# service runs operations at once by default (two gunicorn workers of 8), or each surplus
# child exits and the next command forks again. Each serves this many commands at most, so
# that nothing one of them accumulates grows for ever.
MAX_IDLE_CHILDREN = 16
MAX_COMMANDS_PER_CHILD = 1000

# Imported once here so that no command pays for them; a module that fails to import (an
# optional driver) just stays cold.
WARM_MODULES = (
    "offline_pulumi.cli",
    "offline_pulumi.commands.update",
    "offline_pulumi.engine.runner",
    "offline_pulumi.engine.monitor",
    "offline_pulumi.engine.event_sinks",
    "offline_pulumi.engine.hosted",
    "offline_pulumi.crypto",
    "offline_pulumi.templates",
    "offline_pulumi.storage.file",
    "offline_pulumi.storage.proxy",
    "offline_pulumi.storage.postgres",
    "offline_pulumi.providers.random",
    "cryptography.hazmat.primitives.ciphers.aead",
    "cryptography.exceptions",
    # What commands import lazily (so that the launcher's own runs stay cheap): here each
    # would cost every command that needs it 5-25 ms.
    "yaml",
    "grpc._channel",
    "grpc._server",
    "grpc._simple_stubs",
    "grpc._utilities",
    "grpc.experimental",
    "concurrent.futures.thread",
    "bcrypt",
    "decimal",
    "getpass",
    "platform",
    "pwd",
    "uuid",
    "subprocess",
    "tempfile",
)


def main(argv: list[str]) -> None:
    """Entry point: ``argv`` is the socket path."""
    idle = float(os.environ.get("OFFLINE_PULUMI_PROGRAM_HOST_IDLE", DEFAULT_IDLE_SECONDS))
    serve(argv[0], idle)


def serve(path: str, idle_seconds: float) -> None:
    """Serve commands on ``path`` until idle or until the socket file is removed."""
    from offline_pulumi.fileio import owned_dir

    try:
        owned_dir(Path(path).parent, private=True)
    except OSError:
        return
    lock = _take_lock(path + ".lock")
    if lock is None:
        return  # another resident serves (or is about to serve) this path
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a resident that died
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    # Launchers that connect while the engine is still being imported wait in the backlog.
    listener.listen(128)
    inode = os.stat(path).st_ino
    os.chdir("/")  # the directory it was started from may be a workspace that goes away
    _warm_up()
    keys_read, keys_write = os.pipe()
    os.set_blocking(keys_read, False)
    keys = _KeyInbox(keys_read)
    private = (lock, listener.fileno(), keys_read)
    last_used = time.monotonic()
    callers: set[int] = set()  # the processes that started the launchers
    running: set[int] = set()  # this process's children that run a command
    children = ReusableChildren(MAX_IDLE_CHILDREN)
    try:
        while _still_ours(path, inode):
            watched = [listener.fileno(), keys_read, *children.busy_fds()]
            readable, _, _ = select.select(watched, [], [], 0.25)
            running -= _reap()
            for fd in readable:
                if fd not in (listener.fileno(), keys_read):
                    running.discard(children.readable(fd))
            if keys_read in readable:
                for report in keys.read():
                    children.share_key(report)
            if listener.fileno() in readable:
                last_used = time.monotonic()
                _accept(listener, keys_write, private, callers, running, children)
            elif time.monotonic() - last_used > idle_seconds:
                return
            elif callers and not running and not _keep_alive(callers):
                # Whoever used this resident is gone without stopping it: so is its service.
                from offline_pulumi.engine.hosted import stop_hosts

                stop_hosts(Path(path).parent)
                return
    finally:
        children.close()
        listener.close()
        if _still_ours(path, inode):
            with contextlib.suppress(OSError):
                os.unlink(path)
        # Still holding the lock: a resident that opened this file meanwhile finds it unlinked.
        # (Only our own: the directory may have been removed and made again by a newer one.)
        with contextlib.suppress(OSError):
            if os.stat(path + ".lock").st_ino == os.fstat(lock).st_ino:
                os.unlink(path + ".lock")
        os.close(lock)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))  # only if nothing else lives there


def _take_lock(path: str) -> int | None:
    """The lock file's descriptor, locked; None if another resident holds it."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # the directory went away with the last resident: the launcher copes
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Locked a file that its last holder unlinked on its way out: not the lock any more.
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            raise OSError("stale lock file")
    except OSError:
        os.close(fd)
        return None
    return fd


def _warm_up() -> None:
    import gc

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    # What is imported now stays: keeping it out of the collector's reach spares each forked
    # child the copy-on-write of every page a collection would touch.
    gc.collect()
    gc.freeze()


def _still_ours(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _reap() -> set[int]:
    """Reap the children that ended; return their pids."""
    # Children report their exit codes themselves; reaping leaves no zombies and accounts
    # their CPU time to this process, as to any parent.
    ended: set[int] = set()
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.add(pid)


def _keep_alive(callers: set[int]) -> bool:
    """Forget the callers that died; whether any is left."""
    callers.intersection_update([pid for pid in callers if _alive(pid)])
    return bool(callers)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parent_of(pid: int) -> int | None:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
        return int(stat.rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class _KeyInbox:
    """Reads the keys children derived (``<digest> <salt> <key>`` lines) into this process."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._partial = b""

    def read(self) -> list[bytes]:
        """Remember the keys that arrived; return their report lines."""
        from offline_pulumi import crypto

        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return []
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            crypto.remember_report(line)
        return lines


def _accept(listener: socket.socket, keys_write: int, private: tuple[int, ...],
            callers: set[int], running: set[int], children: ReusableChildren) -> None:
    conn, _ = listener.accept()
    fds: list[int] = []
    with conn:
        conn.settimeout(5.0)
        try:
            launcher, uid, _ = struct.unpack("3i", conn.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            if uid != os.getuid():
                return
            caller = _parent_of(launcher)
            if caller is not None and caller > 1:
                callers.add(caller)
            header, fds, _, _ = socket.recv_fds(conn, 8, 3)
            header += _read_exact(conn, 8 - len(header))
            raw = _read_exact(conn, int(header))
            request = Request.parse(raw)
        except (OSError, ValueError, EOFError):
            request = None
        try:
            if request is not None and len(fds) == 3:
                _start(conn, fds, raw, request, keys_write, private, running, children)
        finally:
            for fd in fds:
                os.close(fd)


def _start(conn: socket.socket, fds: list[int], raw: bytes, request: Request, keys_write: int,
           private: tuple[int, ...], running: set[int], children: ReusableChildren) -> None:
    """Run the command in an idle child if it may and one waits, else in a new child."""
    reusable = is_reusable(request.argv)
    if reusable:
        pid = children.hand_over(raw, [conn.fileno(), *fds])
        if pid is not None:
            running.add(pid)
            return
    control, theirs = children.channel() if reusable else (None, None)
    inherited = (*private, *children.all_fds(), *([control.fileno()] if control else []))
    child = os.fork()
    if child == 0:
        code = 1
        try:
            for fd in inherited:
                os.close(fd)
            code = _serve_commands(conn, fds, request, keys_write, theirs)
        finally:
            os._exit(code)
    running.add(child)
    if control is not None and theirs is not None:
        theirs.close()
        children.started(child, control)


def _read_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class Request:
    """One command as the launcher sent it."""

    def __init__(self, cwd: str, umask: int, argv: list[str], env: dict[str, str]) -> None:
        self.cwd = cwd
        self.umask = umask
        self.argv = argv
        self.env = env

    @classmethod
    def parse(cls, data: bytes) -> Request:
        """Decode the launcher's NUL-separated fields; raise ValueError if malformed."""
        fields = data.decode("utf-8", "surrogateescape").split("\0")
        count = int(fields[2])
        argv = fields[3:3 + count]
        if len(argv) != count:
            raise ValueError("truncated request")
        env = dict(entry.split("=", 1) for entry in fields[3 + count:] if "=" in entry)
        return cls(fields[0], int(fields[1]), argv, env)


def _serve_commands(conn: socket.socket, fds: list[int], request: Request, keys_write: int,
                    control: socket.socket | None) -> int:
    """In a forked child: run the command; with ``control``, then the commands the resident
    hands over, while each leaves the child fit to serve again. Return the last exit code."""
    served = 0
    while True:
        code = _run_child(conn, fds, request, keys_write)
        served += 1
        if (control is None or code == EXIT_INTERRUPTED or served == MAX_COMMANDS_PER_CHILD
                or not serves_again(request.argv, code, threading.active_count())):
            return code
        # The caller waits for EOF on the pipes it gave as stdin, stdout and stderr.
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)
        try:
            control.send(IDLE)
            message, received = _next_request(control)
        except OSError:
            return code
        if len(received) != 4:  # not taken back, or the resident is gone
            for fd in received:
                os.close(fd)
            return code
        conn, fds = socket.socket(fileno=received[0]), received[1:]
        request = Request.parse(message)


def _replace_environ(env: dict[str, str]) -> None:
    """Make ``os.environ`` exactly ``env``, touching only what differs: successive commands
    mostly share their environment, and each change is a putenv or unsetenv."""
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _next_request(control: socket.socket) -> tuple[bytes, list[int]]:
    """Wait for the resident's next request, taking in the keys it passes on meanwhile."""
    from offline_pulumi import crypto

    while True:
        message, received, _, _ = socket.recv_fds(control, MAX_REQUEST, 4)
        if message.startswith(KEY) and not received:
            crypto.remember_report(message[len(KEY):])
            continue
        if message.startswith(REQUEST):
            return message[len(REQUEST):], received
        return b"", received


def _run_child(conn: socket.socket, fds: list[int], request: Request, keys_write: int) -> int:
    """In a child: become the command's process, run it, report its exit code."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    # A fresh reader: a reused child's sys.stdin may hold what it buffered from the last
    # command's stdin (sys.__stdin__ keeps the original, which owns descriptor 0, alive).
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    conn.settimeout(None)
    os.chdir(request.cwd)
    os.umask(request.umask)
    _replace_environ(request.env)
    sys.argv = ["pulumi", *request.argv]
    # tempfile remembers the first temp dir it computed; this command's TMPDIR decides.
    import tempfile

    tempfile.tempdir = None
    from offline_pulumi import crypto
    from offline_pulumi.cli import main

    crypto.report_keys_to(keys_write)
    conn.sendall(b"%d\n" % os.getpid())
    _killed_with_launcher(conn, True)
    code = 1
    try:
        code = main(request.argv)
    except KeyboardInterrupt:  # before the command's own handler was reached
        code = EXIT_INTERRUPTED
    except SystemExit as exc:  # as the interpreter would exit with it
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        import atexit

        atexit._run_exitfuncs()
        atexit._clear()  # a child that serves again must not run them twice
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        with contextlib.suppress(OSError):
            # Disarmed first: the launcher closes its end once it has the code.
            _killed_with_launcher(conn, False)
            conn.sendall(b"%d\n" % code)
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()
    return code


def _killed_with_launcher(conn: socket.socket, armed: bool) -> None:
    """While ``armed``, the kernel SIGKILLs this command's process group as soon as its
    launcher's socket reaches EOF (the launcher sends nothing after its request).

    A launcher that is only interrupted forwards the signal and waits; one that disappears
    was SIGKILLed, which would have killed the command had it run in the launcher itself.
    The kernel watches the socket (``O_ASYNC`` with ``F_SETSIG``): no thread waits for it.
    """
    fd = conn.fileno()
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if not armed:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_ASYNC)
        return
    fcntl.fcntl(fd, fcntl.F_SETOWN, -os.getpgid(0))
    fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGKILL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_ASYNC)
    # An EOF that came before the socket was armed raised no signal.
    with contextlib.suppress(BlockingIOError):
        if conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
            os.killpg(0, signal.SIGKILL)
