"""The body of the Python launcher: hand the command to a resident engine, or run it.

``install_root`` writes this file's text into ``bin/pulumi-launcher`` followed by one call of
``launch``; the launcher is never imported as part of the package. It imports only what
Python's start-up already loaded plus two C modules (``_socket``, ``_signal``), because the
Automation API starts one launcher per command. ``bin/pulumi`` is the native client
(``launcher.c``), which does what ``through_resident`` does without starting Python and execs
this launcher for everything else; without a C compiler ``bin/pulumi`` is this text too.

With ``OFFLINE_PULUMI_RESIDENT=1`` the launcher connects to the resident engine
(``offline_pulumi/resident.py``) of its host directory, sends argv, environment, working
directory and umask with its stdin, stdout and stderr descriptors, and waits: the command runs
in a child of the resident that already has the engine imported, writes straight to those
descriptors, and reports its exit code. SIGINT and SIGTERM sent to the launcher are forwarded
to that child; if the launcher's own caller dies, the child is interrupted, as an engine
started directly interrupts itself. Without a resident (none yet, a crash, an unsafe
directory) the launcher starts one in the background and runs the command itself.

Protocol on the unix socket: ``<8-digit length>`` with the three descriptors, then the request
(NUL-separated: cwd, umask, argument count, arguments, ``NAME=value`` environment entries); the
child answers ``<its pid>\\n`` when it starts and ``<exit code>\\n`` when it ends. EOF before the
pid means the command never started; EOF after it without a code means the child was killed.
"""

import os
import sys

RESIDENT_VARIABLE = "OFFLINE_PULUMI_RESIDENT"
POLL_SECONDS = 0.5
EXIT_INTERRUPTED = 8


def resident_socket(stamp: str) -> str | None:
    """The resident engine's socket path for this launcher, if its directory is private."""
    directory = os.environ.get("OFFLINE_PULUMI_HOST_DIR") or os.path.join(
        os.environ.get("TMPDIR") or "/tmp", f"offline-pulumi-hosts-{os.getuid()}")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.stat(directory)
    except OSError:
        return None
    # Whoever can reach the socket runs commands as us; the resident creates the directory
    # 0700 and checks it too, this only avoids talking to a socket in an unsafe place.
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    path = os.path.join(directory, f"engine-{stamp}.sock")
    return path if len(path) < 100 else None


class _Forwarder:
    """Signals for the command: remembered until its pid is known, then passed on."""

    def __init__(self) -> None:
        self.pid = 0
        self.sent: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.sent.append(signum)
        if self.pid:
            self.forward(signum)

    def forward(self, signum: int) -> None:
        try:  # noqa: SIM105 - contextlib would be one more import per command
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass


def _request(argv: list[str]) -> bytes:
    umask = os.umask(0)
    os.umask(umask)
    fields = [os.getcwd(), str(umask), str(len(argv)), *argv,
              *(f"{name}={value}" for name, value in os.environ.items())]
    return "\0".join(fields).encode("utf-8", "surrogateescape")


def through_resident(path: str, argv: list[str]) -> int | None:
    """Run argv in the resident engine; None if the command did not start there."""
    import _signal
    import _socket

    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    forwarder = _Forwarder()
    previous = {signum: _signal.signal(signum, forwarder)
                for signum in (_signal.SIGINT, _signal.SIGTERM)}
    answer = b""
    try:
        payload = _request(argv)
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))  # three C ints
        conn.sendmsg([b"%08d" % len(payload)],
                     [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        conn.sendall(payload)
        caller = os.getppid()
        conn.settimeout(POLL_SECONDS)
        while True:
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                if os.getppid() != caller and forwarder.pid:
                    # Nobody waits for this command any more: cancel it, once.
                    caller = os.getppid()
                    forwarder.forward(_signal.SIGINT)
                continue
            if not chunk:
                break
            answer += chunk
            if not forwarder.pid and b"\n" in answer:
                forwarder.pid = int(answer.split(b"\n", 1)[0])
                for signum in forwarder.sent:
                    forwarder.forward(signum)
    except OSError:
        pass
    finally:
        conn.close()
        for signum, handler in previous.items():
            _signal.signal(signum, handler)
    lines = answer.split(b"\n")
    if not forwarder.pid:
        if forwarder.sent:  # interrupted before anything ran
            print("error: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        return None
    if len(lines) >= 3 and lines[1]:
        return int(lines[1])
    # The child died without a word: die of the signal it was sent, as it did.
    signum = forwarder.sent[-1] if forwarder.sent else _signal.SIGKILL
    _signal.signal(signum, _signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum


def start_resident(path: str, paths: list[str]) -> None:
    """Start a resident engine in the background, detached from this command."""
    code = ("import sys\n"
            f"sys.path[:0] = {paths!r}\n"
            "from offline_pulumi.resident import main\n"
            "main(sys.argv[1:])\n")
    # The resident serves many commands with their own environments; the operator's
    # passphrase and backend URL of this one are no business of it.
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("PULUMI_")}
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execve(sys.executable, [sys.executable, "-SE", "-c", code, path], env)
    finally:
        os._exit(127)


def own_session() -> None:
    """Leave the caller's session: a Ctrl-C meant for its terminal never reaches the command.

    Done here rather than by ``setsid`` in the shebang, which costs two more programs to
    start per command. A process group leader cannot do it itself; ``setsid -w`` forks first.
    The native client (``launcher.c``) may have done it already before handing over to this.
    """
    if os.getsid(0) == os.getpid():
        return
    try:
        os.setsid()
    except PermissionError:
        os.execvp("setsid", ["setsid", "-w", sys.executable, "-SE", *sys.argv])


def launch(paths: list[str], stamp: str) -> int:
    """Run the command of ``sys.argv`` and return its exit code."""
    own_session()
    if os.environ.get(RESIDENT_VARIABLE, "").lower() in ("1", "true", "yes"):
        path = resident_socket(stamp)
        if path is not None:
            code = through_resident(path, sys.argv[1:])
            if code is not None:
                return code
            start_resident(path, paths)
    sys.path[:0] = paths
    from offline_pulumi.cli import main

    return main()
