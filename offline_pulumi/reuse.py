"""Command children of the resident engine that serve more than one command.

A forked child pays for its fork and, above all, for the copy-on-write faults of every page its
Python touches: 5-8 ms of CPU for a command whose own work is under 1 ms, and 10-20 ms for an
``up``, which also starts gRPC. A child that ran a light command (one that starts no thread or
server and holds nothing open when it ends) may therefore stay: it tells the resident it is
idle over a socketpair and waits there for the next command, which comes as the launcher's
request bytes with four descriptors (the launcher's connection, stdin, stdout, stderr). A child
that ran a heavy command (``up``, ``preview``, ``refresh``, ``destroy``) stays only if it
succeeded and every thread it started has ended; any other command gets a fresh child.

A key that another child derives reaches these children on the same socketpair, ahead of any
later command, as it reaches the resident: so they share one salt per passphrase too. The
resident keeps at most ``limit`` idle children, and closes every socketpair when it stops,
which ends them.
"""

from __future__ import annotations

import contextlib
import socket

# Commands whose children may serve again: none starts a thread, a server or a program.
LIGHT_COMMANDS = frozenset({
    ("version",), ("whoami",), ("cancel",),
    ("stack", "init"), ("stack", "select"), ("stack", "output"), ("stack", "history"),
    ("stack", "rm"), ("stack", "ls"),
    ("config",), ("config", "get"), ("config", "set"), ("config", "set-all"),
    ("config", "rm"), ("config", "rm-all"),
})
# Commands whose children may serve again after a success that left no thread behind.
HEAVY_COMMANDS = frozenset({("up",), ("preview",), ("refresh",), ("destroy",)})
IDLE = b"i"
# A message to a child: a request (with four descriptors), or a derived key's report line.
REQUEST = b"R"
KEY = b"K"
# A request is argv plus the whole environment: far below this.
MAX_REQUEST = 1 << 20


def _command(argv: list[str]) -> tuple[str, ...]:
    from offline_pulumi.cli import resolve
    from offline_pulumi.errors import CLIError

    try:
        path, _ = resolve(argv)
    except CLIError:
        return ()
    return path


def is_reusable(argv: list[str]) -> bool:
    """Whether the command may run in a child that served before (and then serve again)."""
    command = _command(argv)
    return command in LIGHT_COMMANDS or command in HEAVY_COMMANDS


def serves_again(argv: list[str], code: int, threads: int) -> bool:
    """Whether a child that ran this command, ending with ``code`` and ``threads`` threads
    alive (its own included), may take another: light commands always, heavy ones only after
    a success that left no thread behind."""
    command = _command(argv)
    if command in LIGHT_COMMANDS:
        return True
    return command in HEAVY_COMMANDS and code == 0 and threads == 1


class ReusableChildren:
    """The resident's side: which children wait for a light command, which run one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._idle: list[tuple[int, socket.socket]] = []
        self._busy: dict[int, tuple[int, socket.socket]] = {}  # control fd -> (pid, control)

    def channel(self) -> tuple[socket.socket, socket.socket]:
        """A socketpair for a child about to be forked: (the resident's end, the child's)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return ours, theirs

    def started(self, pid: int, control: socket.socket) -> None:
        """A forked child with a channel runs its first command."""
        self._busy[control.fileno()] = (pid, control)

    def busy_fds(self) -> list[int]:
        """Control descriptors to watch: a busy child says there when it is idle."""
        return list(self._busy)

    def all_fds(self) -> list[int]:
        """Every control descriptor of the resident (a new child closes them all)."""
        return [*self._busy, *(control.fileno() for _, control in self._idle)]

    def hand_over(self, request: bytes, fds: list[int]) -> int | None:
        """Give a command to an idle child; its pid, or None if none could take it."""
        while self._idle:
            pid, control = self._idle.pop()
            try:
                socket.send_fds(control, [REQUEST + request], fds)
            except OSError:  # it died while idle
                control.close()
                continue
            self._busy[control.fileno()] = (pid, control)
            return pid
        return None

    def readable(self, fd: int) -> int | None:
        """Read a busy child's word; the pid of a child that became idle (or retired)."""
        pid, control = self._busy.pop(fd)
        try:
            word = control.recv(16)
        except OSError:
            word = b""
        if word == IDLE and len(self._idle) < self.limit:
            self._idle.append((pid, control))
        else:
            control.close()  # gone, or one idle child too many: it exits
        return pid

    def share_key(self, report: bytes) -> None:
        """Pass a derived key's report line to every child, busy or idle."""
        for control in [control for _, control in self._idle] + [
                control for _, control in self._busy.values()]:
            # Never blocks the resident: a child that cannot take it derives the key itself.
            with contextlib.suppress(OSError):
                control.send(KEY + report, socket.MSG_DONTWAIT)

    def close(self) -> None:
        """Let every child exit once its command is done."""
        for _, control in self._idle:
            control.close()
        self._idle.clear()
        for _, control in self._busy.values():
            with contextlib.suppress(OSError):
                control.close()
        self._busy.clear()
