"""A warm program host: a process of the program's interpreter that has already imported the
Pulumi SDK and forks one child per program run.

Executed by the program's own interpreter (like ``language_exec.py``), so it imports nothing
from ``offline_pulumi``. Importing ``pulumi`` costs about 0.2 s; a fork costs milliseconds.
Protocol on a unix socket (private 0700 directory): the engine sends an 8-byte length with
three descriptors (stdin, stdout, stderr), then a JSON request ``{argv, env, cwd}``; the child
the host forks for it answers ``<its pid>\\n`` before the program starts and ``<exit code>\\n``
when it ends (EOF without it means the child was killed). Only the child writes: were the host
to send the pid, a host held up after the fork could send it after the exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))


def _read_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _warm_up() -> Callable[[list[str]], int]:
    """Import the SDK, the installed provider SDKs and the exec script's ``main``."""
    import importlib
    import pkgutil

    import pulumi
    import pulumi.runtime  # noqa: F401

    # What runs may import later on: gRPC's channel code (the SDK's callbacks for transforms
    # use it), and what the exec script and runpy use.
    for name in ("grpc._channel", "grpc.experimental", "encodings.idna", "argparse", "runpy",
                 "asyncio"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue

    for module in pkgutil.iter_modules():
        if module.name.startswith("pulumi_"):
            try:
                importlib.import_module(module.name)
            except Exception:  # a provider SDK that fails to import just stays cold
                continue
    sys.path.insert(0, HERE)
    try:
        import language_exec
    finally:
        sys.path.remove(HERE)
    language_exec.load_wire()
    _read_sources()
    return language_exec.main


def _read_sources() -> None:
    """Have the source lines of every frame a run's stacks hold below the program in
    ``linecache``: the SDK takes a stack trace, lines included, of every resource, and each
    child would read these files again (about 2 ms a run)."""
    import linecache

    for name, module in list(sys.modules.items()):
        top = name.split(".")[0]
        if top in ("pulumi", "asyncio", "language_exec", "__main__") or top.startswith("pulumi_"):
            source = getattr(module, "__file__", None)
            if source and source.endswith(".py"):
                linecache.getlines(source)


def _killed_with_engine(conn: socket.socket, armed: bool) -> None:
    """While ``armed``, the kernel SIGKILLs this child as soon as its engine's socket reaches
    EOF (the engine sends nothing, so EOF means gone); no thread waits for it."""
    import fcntl

    fd = conn.fileno()
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if not armed:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_ASYNC)
        return
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGKILL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_ASYNC)
    # An EOF that came before the socket was armed raised no signal.
    with contextlib.suppress(BlockingIOError):
        if conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
            os.kill(os.getpid(), signal.SIGKILL)


class Run(NamedTuple):
    """A program run, in the child the host forked for it."""

    conn: socket.socket
    fds: list[int]
    request: dict
    main: Callable[[list[str]], int]


def _become_program(run: Run) -> None:
    """In the forked child: take the run's descriptors, directory and environment."""
    _killed_with_engine(run.conn, True)
    run.conn.sendall(f"{os.getpid()}\n".encode())
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setpgid(0, 0)
    for target, fd in enumerate(run.fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(run.request["cwd"])
    os.environ.clear()
    os.environ.update(run.request["env"])


def _report_exit(run: Run, code: int) -> None:
    """End the child, its exit code sent to the engine."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # Disarmed first: the engine closes its end once it has the code.
        _killed_with_engine(run.conn, False)
        run.conn.sendall(f"{code}\n".encode())
    finally:
        os._exit(code)


def serve(path: str, idle_seconds: float) -> Run | None:
    """Accept program runs until idle for ``idle_seconds`` or until the socket file is removed.

    Returns None in the host; in each child it forks, returns that child's run, which the
    caller runs from the top of the stack (see the end of this file).
    """
    import gc

    main = _warm_up()
    # What programs import from now on, their own sources above all, is compiled once and
    # cached in this private directory, never beside the sources (a compile cost a burner
    # run 1.5 ms).
    sys.pycache_prefix = os.path.join(os.path.dirname(path), "bytecode")
    sys.dont_write_bytecode = False
    # What is imported now stays: out of the collector's reach, a child's collections neither
    # scan it nor copy the pages it lives on.
    gc.collect()
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
    except OSError:
        return None  # another host won the race for this socket
    listener.listen(64)
    # Removing (or replacing) the socket file is how the host's owner stops it.
    inode = os.stat(path).st_ino
    # Children report their own exit codes; the host reaps them so that they leave no
    # zombies and their CPU time is accounted to it, as to any parent.
    listener.settimeout(1.0)
    last_used = time.monotonic()
    forked: Run | None = None
    try:
        while forked is None:
            _reap()
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                if time.monotonic() - last_used > idle_seconds or not _still_ours(path, inode):
                    return None
                continue
            last_used = time.monotonic()
            with conn:
                try:
                    header, fds, _, _ = socket.recv_fds(conn, 8, 3)
                    header += _read_exact(conn, 8 - len(header))
                    request = json.loads(_read_exact(conn, int(header)))
                except (OSError, ValueError, EOFError):
                    continue
                if len(fds) != 3:
                    for fd in fds:
                        os.close(fd)
                    continue
                try:
                    pid = os.fork()
                except OSError:
                    pid = -1  # the engine, reading EOF instead of a pid, runs it itself
                if pid == 0:
                    # The child keeps the connection (detached from ``with``) and leaves the
                    # socket file to the host.
                    forked = Run(socket.socket(fileno=conn.detach()), fds, request, main)
                    continue
                for fd in fds:
                    os.close(fd)
    finally:
        listener.close()
        if forked is None and _still_ours(path, inode):
            with contextlib.suppress(OSError):
                os.unlink(path)
    return forked


def _still_ours(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if __name__ == "__main__":
    run = serve(sys.argv[1], float(sys.argv[2]))
    if run is not None:
        # A forked child. The program runs from here, not from inside serve(): the SDK records
        # the stack under every resource it registers, about 10 us a frame.
        code = 1
        try:
            _become_program(run)
            code = run.main(run.request["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # the run could not start (a missing working directory): say why
            traceback.print_exc()
        finally:
            _report_exit(run, code)
